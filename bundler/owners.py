"""Owner names as the source root knows them.

An archive keeps each file's owner by name and number, and the import maps the
name through the target's own passwd and group. So the name must be the one the
*source* gives that number: on a live node (`--source-root /`) that is the
host's name service (files, LDAP, sssd); in a prepared root (a chroot, an image
tree, a copied node) it is that root's own `etc/passwd` and `etc/group`. The
build host's users have nothing to do with it: uid 1 is `daemon` on Debian and
`bin` on EL, and an appliance's own users (say uid 4711 `demoapp`) usually do
not exist on the build host at all.

A number the source does not name gets no name; the import then keeps the number.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Optional, TypeVar

log = logging.getLogger("satchel")
T = TypeVar("T")


def _table(path: Path) -> tuple[dict[int, str], dict[str, int]]:
    """(number -> name, name -> number) of a passwd or group file; the first entry
    wins either way, as with the `files` NSS module. A missing file is empty."""
    by_id: dict[int, str] = {}
    by_name: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        log.warning("%s does not exist: owners there are kept by number only", path)
        return by_id, by_name
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or not fields[0] or fields[0].startswith(("#", "+", "-")):
            continue
        if not fields[2].isdigit():
            continue
        number = int(fields[2])
        by_id.setdefault(number, fields[0])
        by_name.setdefault(fields[0], number)
    return by_id, by_name


class OwnerNames:
    """uid/gid <-> name for one system root.

    `OwnerNames(Path("/"))` asks the host's name service (each answer cached); any
    other root is read from its own `etc/passwd` and `etc/group`, once, and a
    number or name they do not list has no answer.
    """

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(root)
        self.host = os.path.realpath(self.root) == "/"
        self._users: dict[int, Optional[str]] = {}
        self._uids: dict[str, Optional[int]] = {}
        self._groups: dict[int, Optional[str]] = {}
        self._gids: dict[str, Optional[int]] = {}
        if not self.host:
            users, uids = _table(self.root / "etc/passwd")
            groups, gids = _table(self.root / "etc/group")
            self._users, self._uids = dict(users), dict(uids)
            self._groups, self._gids = dict(groups), dict(gids)

    def user(self, uid: int) -> Optional[str]:
        if self.host and uid not in self._users:
            self._users[uid] = _ask(lambda: pwd.getpwuid(uid).pw_name)
        return self._users.get(uid)

    def group(self, gid: int) -> Optional[str]:
        if self.host and gid not in self._groups:
            self._groups[gid] = _ask(lambda: grp.getgrgid(gid).gr_name)
        return self._groups.get(gid)

    def uid(self, name: str) -> Optional[int]:
        if self.host and name not in self._uids:
            self._uids[name] = _ask(lambda: pwd.getpwnam(name).pw_uid)
        return self._uids.get(name)

    def gid(self, name: str) -> Optional[int]:
        if self.host and name not in self._gids:
            self._gids[name] = _ask(lambda: grp.getgrnam(name).gr_gid)
        return self._gids.get(name)


def _ask(lookup: Callable[[], T]) -> Optional[T]:
    """The host's answer, or None when it does not know the number or name."""
    try:
        return lookup()
    except KeyError:
        return None
