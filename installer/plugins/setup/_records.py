"""A FileWrite whose state-registry record says more: which setup plugin wrote the
file (so a later run finds its own earlier files), extra facts (a certificate's
fingerprint), or, for a secret, no checksum at all."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from installer import engine


class RecordedFileWrite(engine.FileWrite):
    """FileWrite(path, data, mode, owner, group) whose file record carries `info`;
    a `secret` one records sha256 None (a checksum of a short password could be
    brute-forced) and `secret: true`."""

    def __init__(self, path: str, data: bytes, mode: int, secret: bool = False,
                 info: Optional[Dict[str, Any]] = None, owner: Any = "root",
                 group: Any = "root") -> None:
        super().__init__(path, data, mode=mode, owner=owner, group=group)
        self.secret, self.info = secret, dict(info or {})

    def describe(self) -> str:
        return f"write {self.path}" + (" (secret)" if self.secret else
                                       f" ({len(self.data)} bytes)")

    def records(self) -> List[Dict[str, Any]]:
        out = super().records()
        for rec in out:
            if rec.get("kind") == "file":
                rec.update(self.info)
                if self.secret:
                    rec["sha256"], rec["secret"] = None, True
        return out
