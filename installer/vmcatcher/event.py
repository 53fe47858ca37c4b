"""The vmcatcher event, read once from the environment vmcatcher sets.

vmcatcher exports only non-empty values, so every variable may be absent.
"""

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from installer.errors import InputError

AVAILABLE = "AvailablePostfix"
EXPIRE = ("ExpirePostfix", "ExpirePosfix")  # vmcatcher has shipped both spellings
PREFIX = "VMCATCHER_EVENT_"
_ATTRIBUTE = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Event:
    type: str
    identifier: str
    filename: str
    hv_format: str
    title: str
    description: str
    sha512: str
    cache_dir: str
    expire_dir: str
    # every VMCATCHER_EVENT_* variable, sorted, for the image's template
    metadata: Tuple[Tuple[str, str], ...]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Event":
        def get(name: str) -> str:
            return environ.get(name, "").strip()

        return cls(
            type=get(PREFIX + "TYPE"),
            identifier=get(PREFIX + "DC_IDENTIFIER"),
            filename=get(PREFIX + "FILENAME"),
            hv_format=get(PREFIX + "HV_FORMAT"),
            title=get(PREFIX + "DC_TITLE"),
            description=get(PREFIX + "DC_DESCRIPTION"),
            sha512=get(PREFIX + "SL_CHECKSUM_SHA512").lower(),
            cache_dir=get("VMCATCHER_CACHE_DIR_CACHE"),
            expire_dir=get("VMCATCHER_CACHE_DIR_EXPIRE"),
            metadata=tuple(sorted(
                (k, v) for k, v in environ.items()
                if k.startswith(PREFIX) and _ATTRIBUTE.match(k) and v != "")),
        )

    @property
    def is_available(self) -> bool:
        return self.type == AVAILABLE

    @property
    def is_expire(self) -> bool:
        return self.type in EXPIRE

    def require_identifier(self) -> str:
        if not self.identifier:
            raise InputError(f"{self.type} event without {PREFIX}DC_IDENTIFIER",
                             hint="the handler must be run by vmcatcher")
        return self.identifier

    def cached_file(self) -> str:
        """The downloaded image of an AvailablePostfix event, in vmcatcher's cache."""
        name = self.filename or self.identifier
        if not name:
            raise InputError(f"{self.type} event without {PREFIX}FILENAME")
        path = name if os.path.isabs(name) or not self.cache_dir \
            else os.path.join(self.cache_dir, name)
        if not os.path.isfile(path):
            hint: Optional[str] = None
            if not self.cache_dir and not os.path.isabs(name):
                hint = "VMCATCHER_CACHE_DIR_CACHE is not set"
            raise InputError(f"the image file of {self.identifier} is missing: {path}",
                             hint=hint)
        return path

    def describe(self) -> str:
        if self.title and self.description:
            return f"{self.title}: {self.description}"
        return self.title or self.description or f"vmcatcher image {self.identifier}"
