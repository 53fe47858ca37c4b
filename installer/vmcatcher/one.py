"""The few OpenNebula calls the handler makes, through pyone (imported lazily).

Every failure of pyone becomes an OpenNebulaError naming the call; the session
string is held by pyone only and never appears in a message or the log.
"""

import logging
import re
import time
import xmlrpc.client
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

from installer.errors import SatchelError

from .config import format_permissions
from .errors import OpenNebulaError

log = logging.getLogger("satchel.vmcatcher")

READY, DISABLED, LOCKED, ERROR = 1, 3, 4, 5
STATE_NAMES = {0: "INIT", 1: "READY", 2: "USED", 3: "DISABLED", 4: "LOCKED", 5: "ERROR",
               6: "CLONE", 7: "DELETE", 8: "USED_PERS", 9: "LOCKED_USED",
               10: "LOCKED_USED_PERS"}
PERM_NAMES = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A",
              "OTHER_U", "OTHER_M", "OTHER_A")
NAME_FORBIDDEN = re.compile(r"[&|:\\\";/'#{}$<>\x00-\x1f\x7f]")
NAME_MAX = 128
# template attributes the handler keeps in every image it registers
SHA512_ATTR = "SATCHEL_SHA512"
IDENTIFIER_ATTR = "SATCHEL_IDENTIFIER"
STATUS_ATTR = "SATCHEL_STATUS"  # "registering" until owner/permissions are applied


def name_problem(name: str) -> Optional[str]:
    """Why OpenNebula would refuse `name`, or None."""
    if not name:
        return "it is empty"
    if len(name) > NAME_MAX:
        return f"it is longer than {NAME_MAX} characters"
    m = NAME_FORBIDDEN.search(name)
    return f"it contains {m.group(0)!r}" if m else None


def escape(value: str) -> str:
    """A double-quoted OpenNebula template value."""
    value = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_template(attrs: List[Tuple[str, str]]) -> str:
    return "".join(f"{key} = {escape(value)}\n" for key, value in attrs)


@dataclass(frozen=True)
class ImageFacts:
    """What the handler remembers of an image, and puts back on rollback."""

    id: int
    name: str
    uid: int
    gid: int
    perms: Tuple[int, ...]
    state: int
    sha512: str
    identifier: str
    attrs: Tuple[Tuple[str, str], ...] = ()  # the template's SATCHEL_* strings

    def attr(self, key: str) -> str:
        return dict(self.attrs).get(key, "")

    @property
    def disabled(self) -> bool:
        return self.state == DISABLED

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


def _template_value(image: Any, key: str) -> str:
    tmpl = getattr(image, "TEMPLATE", None) or {}
    value = tmpl.get(key, "") if hasattr(tmpl, "get") else ""
    return value if isinstance(value, str) else ""


def facts(image: Any) -> ImageFacts:
    p = image.PERMISSIONS
    tmpl = getattr(image, "TEMPLATE", None) or {}
    keys = [k for k in tmpl if isinstance(k, str) and k.startswith("SATCHEL_")] \
        if hasattr(tmpl, "keys") else []
    return ImageFacts(
        id=int(image.ID), name=str(image.NAME), uid=int(image.UID), gid=int(image.GID),
        perms=tuple(int(getattr(p, n)) for n in PERM_NAMES), state=int(image.STATE),
        sha512=_template_value(image, SHA512_ATTR).lower(),
        identifier=_template_value(image, IDENTIFIER_ATTR),
        attrs=tuple((k, _template_value(image, k)) for k in sorted(keys)))


def import_pyone() -> Any:
    try:
        import pyone  # lazily: only the handler needs it
    except ImportError:
        raise SatchelError("the Python module pyone is missing",
                           hint="install the package python3-pyone") from None
    return pyone


class OpenNebula:
    def __init__(self, endpoint: str, session: str) -> None:
        self._pyone = import_pyone()
        self.endpoint = endpoint
        self._server = self._pyone.OneServer(endpoint, session=session)

    def _call(self, what: str, method: str, *args: Any) -> Any:
        fn: Callable[..., Any] = self._server
        for part in method.split("."):
            fn = getattr(fn, part)
        try:
            return fn(*args)
        except (self._pyone.OneException, OSError, xmlrpc.client.Error) as e:
            raise OpenNebulaError(f"OpenNebula at {self.endpoint} refused to {what}: {e}") \
                from None

    # ---- lookups -----------------------------------------------------------
    def images(self) -> List[ImageFacts]:
        pool = self._call("list images", "imagepool.info", -2, -1, -1)
        return [facts(i) for i in (pool.IMAGE or [])]

    def image(self, iid: int) -> Tuple[ImageFacts, Any]:
        raw = self._call(f"show image {iid}", "image.info", iid)
        return facts(raw), raw

    def datastore_id(self, name: str) -> int:
        pool = self._call("list datastores", "datastorepool.info")
        for ds in pool.DATASTORE or []:
            if name == ds.NAME:
                return int(ds.ID)
        raise OpenNebulaError(f"OpenNebula has no datastore named {name!r}",
                              hint="fix `datastore` in vmcatcher.conf")

    def oneadmin(self) -> Tuple[int, int]:
        """The ids of the user oneadmin and of the group oneadmin."""
        users = self._call("list users", "userpool.info")
        groups = self._call("list groups", "grouppool.info")
        uid = next((int(u.ID) for u in users.USER or [] if u.NAME == "oneadmin"), None)
        gid = next((int(g.ID) for g in groups.GROUP or [] if g.NAME == "oneadmin"), None)
        if uid is None or gid is None:
            raise OpenNebulaError("OpenNebula has no user or group named oneadmin")
        return uid, gid

    # ---- changes -----------------------------------------------------------
    def rename(self, iid: int, name: str) -> None:
        log.info("image %d: rename to %r", iid, name)
        self._call(f"rename image {iid}", "image.rename", iid, name)

    def chown(self, iid: int, uid: int, gid: int) -> None:
        log.info("image %d: chown %d:%d", iid, uid, gid)
        self._call(f"chown image {iid}", "image.chown", iid, uid, gid)

    def chmod(self, iid: int, perms: Tuple[int, ...]) -> None:
        log.info("image %d: chmod %s", iid, format_permissions(perms))
        self._call(f"chmod image {iid}", "image.chmod", iid, *perms)

    def enable(self, iid: int, enable: bool) -> None:
        log.info("image %d: %s", iid, "enable" if enable else "disable")
        self._call(f"{'enable' if enable else 'disable'} image {iid}", "image.enable",
                   iid, enable)

    def allocate(self, template: str, ds_id: int) -> int:
        iid = int(self._call("register the image", "image.allocate", template, ds_id))
        log.info("registered image %d in datastore %d", iid, ds_id)
        return iid

    def update(self, iid: int, attrs: List[Tuple[str, str]]) -> None:
        log.info("image %d: set %s", iid, ", ".join(f"{k}={v}" for k, v in attrs))
        self._call(f"update image {iid}", "image.update", iid, render_template(attrs), 1)

    def delete(self, iid: int) -> None:
        log.info("image %d: delete", iid)
        self._call(f"delete image {iid}", "image.delete", iid)

    def wait_ready(self, iid: int, timeout: float, interval: float) -> ImageFacts:
        deadline = time.monotonic() + timeout
        while True:
            img, raw = self.image(iid)
            if img.state == READY:
                log.info("image %d is READY", iid)
                return img
            if img.state == ERROR:
                why = _template_value(raw, "ERROR") or "no reason given"
                raise OpenNebulaError(f"image {iid} went to ERROR: {why}")
            if time.monotonic() >= deadline:
                raise OpenNebulaError(
                    f"image {iid} is still {img.state_name} after {timeout:g} s",
                    hint="raise ready_timeout in vmcatcher.conf if the datastore is slow")
            time.sleep(interval)
