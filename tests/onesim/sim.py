"""A stateful OpenNebula XML-RPC simulator for the image calls pyone makes.

It listens on 127.0.0.1 (ephemeral port) in a thread and keeps users, groups,
datastores and images.  It enforces the rules of oned that the vmcatcher
handler can break: the session, USE/MANAGE/ADMIN rights from the nine
permission bits, image names (length, forbidden characters, unique per owner on
allocate, rename and chown), enable/disable only between READY and DISABLED, an
image LOCKED after allocate until oned has copied its PATH, and faults a test
can switch on (allocate fails, the copy fails, the image never becomes READY).
"""

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from .xmlbody import (
    Template,
    TemplateSyntaxError,
    el,
    merge_template,
    parse_template,
    permissions_xml,
    template_get,
    template_xml,
)

AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION, INTERNAL = 0x100, 0x200, 0x400, 0x800, 0x2000
INIT, READY, USED, DISABLED, LOCKED, ERROR = 0, 1, 2, 3, 4, 5
USED_PERS, LOCKED_USED, LOCKED_USED_PERS = 8, 9, 10
IMAGE_TYPES = ("OS", "CDROM", "DATABLOCK", "KERNEL", "RAMDISK", "CONTEXT", "FILESYSTEM")
NAME_FORBIDDEN = set("&|:\\\";/'#{}$<>")
UMASK_PERMS = (1, 1, 0, 0, 0, 0, 0, 0, 0)  # oned's default umask 177


class Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class User:
    id: int
    name: str
    password: str
    gid: int
    groups: Set[int]


@dataclass
class Image:
    id: int
    uid: int
    gid: int
    name: str
    perms: Tuple[int, ...]
    type: int
    ds_id: int
    template: Template
    state: int = LOCKED
    prev_state: int = INIT
    regtime: int = field(default_factory=lambda: int(time.time()))
    fate: str = "ready"
    polls_left: int = 0
    ready_at: float = 0.0
    format: str = ""
    size_mb: int = 0
    sha512: str = ""  # of the file oned copied from PATH


def check_name(name: str) -> None:
    if not name:
        raise Fail(ACTION, "Invalid NAME, it cannot be empty")
    if len(name) > 128:
        raise Fail(ACTION, "Invalid NAME, max length is 128 chars")
    bad = sorted({c for c in name if c in NAME_FORBIDDEN or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise Fail(ACTION, f"Invalid NAME, char {bad[0]!r} is not allowed")


class OneSim:
    """The simulated oned.  Test-side API: add_user, add_group, add_image, image."""

    def __init__(self, lock_polls: int = 2, lock_seconds: float = 0.0) -> None:
        self.lock_polls = lock_polls
        self.lock_seconds = lock_seconds
        self.allocate_error: Optional[str] = None  # fault: every allocate fails
        self.new_image_fate = "ready"  # fault: "error" or "never" for new images
        self.calls: List[Tuple[str, tuple]] = []  # (method, params without session)
        self.users: Dict[int, User] = {}
        self.groups: Dict[int, str] = {}
        self.datastores: Dict[int, Tuple[str, int]] = {0: ("system", 1), 1: ("default", 0),
                                                       2: ("files", 2)}
        self.images: Dict[int, Image] = {}
        self._next_image = 0
        self._mutex = threading.RLock()
        self.add_group("oneadmin", gid=0)
        self.add_group("users", gid=1)
        self.add_user("oneadmin", "onepass", group="oneadmin", uid=0)
        self._server: Optional[SimpleXMLRPCServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- test-side API -----------------------------------------------------
    def add_group(self, name: str, gid: Optional[int] = None) -> int:
        with self._mutex:
            gid = max(self.groups, default=-1) + 1 if gid is None else gid
            self.groups[gid] = name
            return gid

    def add_user(self, name: str, password: str, group: str = "users",
                 uid: Optional[int] = None) -> int:
        with self._mutex:
            gid = self.gid_of(group)
            uid = max(self.users, default=-1) + 1 if uid is None else uid
            self.users[uid] = User(uid, name, password, gid, {gid})
            return uid

    def uid_of(self, name: str) -> int:
        return next(u.id for u in self.users.values() if u.name == name)

    def gid_of(self, name: str) -> int:
        return next(g for g, n in self.groups.items() if n == name)

    def add_image(self, name: str, owner: str = "oneadmin", group: str = "oneadmin",
                  perms: Tuple[int, ...] = UMASK_PERMS, state: int = READY,
                  template: str = "", ds_id: int = 1) -> int:
        """Seed an image as if registered long ago (no rule checks but uniqueness)."""
        with self._mutex:
            uid, gid = self.uid_of(owner), self.gid_of(group)
            self._check_unique(name, uid)
            img = Image(self._next_image, uid, gid, name, tuple(perms), 0, ds_id,
                        parse_template(template), state=state)
            self.images[img.id] = img
            self._next_image += 1
            return img.id

    def image(self, iid: int) -> Image:
        with self._mutex:
            return self.images[iid]

    def named(self, name: str) -> List[Image]:
        with self._mutex:
            return [i for i in self.images.values() if i.name == name]

    def method_calls(self, method: str) -> List[tuple]:
        return [p for m, p in self.calls if m == method]

    # ---- server --------------------------------------------------------------
    def start(self) -> str:
        class Handler(SimpleXMLRPCRequestHandler):
            rpc_paths = ("/", "/RPC2")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = SimpleXMLRPCServer(("127.0.0.1", 0), requestHandler=Handler,
                                          logRequests=False, allow_none=False)
        self._server.register_instance(self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02},
                                        name="onesim", daemon=True)
        self._thread.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/RPC2"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def _dispatch(self, method: str, params: tuple) -> list:
        fn: Optional[Callable[..., Any]] = self._methods().get(method)
        with self._mutex:
            self.calls.append((method, tuple(params[1:])))
            try:
                if fn is None:
                    raise Fail(0x1000, f"Method {method} not found")
                user = self._authenticate(params[0] if params else "")
                return [True, fn(user, *params[1:]), 0]
            except Fail as e:
                return [False, f"[{method}] {e}", e.code]
            except TypeError as e:  # wrong number of parameters
                return [False, f"[{method}] {e}", 0x1000]

    def _methods(self) -> Dict[str, Callable[..., Any]]:
        return {
            "one.system.version": lambda user: "7.0.0",
            "one.image.allocate": self.image_allocate,
            "one.image.info": self.image_info,
            "one.imagepool.info": self.imagepool_info,
            "one.image.rename": self.image_rename,
            "one.image.chown": self.image_chown,
            "one.image.chmod": self.image_chmod,
            "one.image.enable": self.image_enable,
            "one.image.update": self.image_update,
            "one.image.delete": self.image_delete,
            "one.datastorepool.info": self.datastorepool_info,
            "one.user.info": self.user_info,
            "one.userpool.info": lambda user: self._pool("USER", self.users),
            "one.group.info": self.group_info,
            "one.grouppool.info": lambda user: self._pool("GROUP", self.groups),
        }

    # ---- rules ---------------------------------------------------------------
    def _authenticate(self, session: str) -> User:
        name, _, password = str(session).partition(":")
        for u in self.users.values():
            if u.name == name and u.password == password:
                return u
        raise Fail(AUTHENTICATION, "User couldn't be authenticated, aborting call.")

    def _get(self, iid: int) -> Image:
        if iid not in self.images:
            raise Fail(NO_EXISTS, f"Error getting image [{iid}].")
        return self.images[iid]

    @staticmethod
    def _admin(user: User) -> bool:
        return user.id == 0 or 0 in user.groups

    def _authorize(self, user: User, img: Image, right: int, op: str) -> None:
        """right: 0 use, 1 manage, 2 admin (the column in the nine bits)."""
        if self._admin(user):
            return
        p = img.perms
        if ((img.uid == user.id and p[right]) or (img.gid in user.groups and p[3 + right])
                or p[6 + right]):
            return
        raise Fail(AUTHORIZATION, f"Not authorized to perform {op} IMAGE [{img.id}].")

    def _check_unique(self, name: str, uid: int, skip: int = -1) -> None:
        for i in self.images.values():
            if i.uid == uid and i.name == name and i.id != skip:
                raise Fail(ACTION, f"NAME is already taken by IMAGE {i.id}.")

    def _observe(self, img: Image) -> None:
        """One look at a LOCKED image: oned copies PATH when the lock time is up."""
        if img.state != LOCKED or img.fate == "never":
            return
        img.polls_left -= 1
        if img.polls_left > 0 or time.monotonic() < img.ready_at:
            return
        path = template_get(img.template, "PATH")
        if img.fate == "error" or not os.path.isfile(path):
            img.state = ERROR
            img.template = merge_template(img.template, [("ERROR", f"cannot copy {path}")])
            return
        with open(path, "rb") as f:
            data = f.read()
        img.sha512 = hashlib.sha512(data).hexdigest()
        img.format = "qcow2" if data[:4] == b"QFI\xfb" else "raw"
        img.size_mb = max(1, len(data) // (1 << 20))
        img.state = READY

    # ---- image methods -------------------------------------------------------
    def image_allocate(self, user: User, text: str, ds_id: int, *_check: bool) -> int:
        try:
            tmpl = parse_template(text)
        except TemplateSyntaxError as e:
            raise Fail(INTERNAL, f"Parse error: {e}") from None
        if ds_id not in self.datastores:
            raise Fail(NO_EXISTS, f"Error getting datastore [{ds_id}].")
        if self.datastores[ds_id][1] != 0:
            raise Fail(INTERNAL, "Datastore is not an image datastore")
        name = template_get(tmpl, "NAME")
        if not name:
            raise Fail(INTERNAL, "No NAME in template for Image.")
        check_name(name)
        self._check_unique(name, user.id)
        kind = (template_get(tmpl, "TYPE") or "OS").upper()
        if kind not in IMAGE_TYPES:
            raise Fail(INTERNAL, f"Unknown value for TYPE: {kind}")
        if not template_get(tmpl, "PATH") and not template_get(tmpl, "SOURCE"):
            raise Fail(INTERNAL, "No PATH nor SOURCE in template for Image.")
        if self.allocate_error is not None:
            raise Fail(INTERNAL, f"Cannot allocate image: {self.allocate_error}")
        img = Image(self._next_image, user.id, user.gid, name, UMASK_PERMS,
                    IMAGE_TYPES.index(kind), ds_id,
                    [(k, v) for k, v in tmpl if k not in ("NAME", "PATH")] +
                    [("PATH", template_get(tmpl, "PATH"))],
                    fate=self.new_image_fate, polls_left=self.lock_polls,
                    ready_at=time.monotonic() + self.lock_seconds)
        self.images[img.id] = img
        self._next_image += 1
        return img.id

    def image_info(self, user: User, iid: int, *_decrypt: bool) -> str:
        img = self._get(iid)
        self._authorize(user, img, 0, "INFO")
        self._observe(img)
        return self._image_xml(img)

    def imagepool_info(self, user: User, who: int, start: int, end: int) -> str:
        out = []
        for img in sorted(self.images.values(), key=lambda i: i.id):
            if (start >= 0 and img.id < start) or (end >= 0 and img.id > end):
                continue
            mine, group = img.uid == user.id, img.gid in user.groups
            wanted = {-2: True, -3: mine, -4: group, -1: mine or group}.get(who, img.uid == who)
            if not wanted:
                continue
            try:
                self._authorize(user, img, 0, "INFO")
            except Fail:
                continue
            self._observe(img)
            out.append(self._image_xml(img))
        return "<IMAGE_POOL>" + "".join(out) + "</IMAGE_POOL>"

    def image_rename(self, user: User, iid: int, name: str) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "RENAME")
        check_name(name)
        self._check_unique(name, img.uid, skip=iid)
        img.name = name
        return iid

    def image_chown(self, user: User, iid: int, uid: int, gid: int) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "CHOWN")
        if uid != -1 and uid not in self.users:
            raise Fail(NO_EXISTS, f"Error getting user [{uid}].")
        if gid != -1 and gid not in self.groups:
            raise Fail(NO_EXISTS, f"Error getting group [{gid}].")
        if not self._admin(user) and (uid not in (-1, user.id) or
                                      gid not in (-1, *user.groups)):
            raise Fail(AUTHORIZATION, f"Not authorized to perform CHOWN IMAGE [{iid}].")
        new_uid = img.uid if uid == -1 else uid
        self._check_unique(img.name, new_uid, skip=iid)
        img.uid, img.gid = new_uid, img.gid if gid == -1 else gid
        return iid

    def image_chmod(self, user: User, iid: int, *bits: int) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "MANAGE")
        if len(bits) != 9 or any(b not in (-1, 0, 1) for b in bits):
            raise Fail(ACTION, "Permission bits must be 9 values of -1, 0 or 1")
        new = tuple(old if b == -1 else b for old, b in zip(img.perms, bits))
        if any(new[i] != img.perms[i] for i in (2, 5, 8)):
            self._authorize(user, img, 2, "ADMIN")
        img.perms = new
        return iid

    def image_enable(self, user: User, iid: int, enable: bool) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "ENABLE")
        allowed = (READY, DISABLED)
        if img.state not in allowed:
            verb = "enable" if enable else "disable"
            raise Fail(ACTION, f"Could not {verb} image: Image cannot be in state "
                               f"{img.state}.")
        img.state = READY if enable else DISABLED
        return iid

    def image_update(self, user: User, iid: int, text: str, kind: int = 0) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "UPDATE")
        try:
            tmpl = parse_template(text)
        except TemplateSyntaxError as e:
            raise Fail(INTERNAL, f"Parse error: {e}") from None
        img.template = merge_template(img.template, tmpl) if kind == 1 else tmpl
        return iid

    def image_delete(self, user: User, iid: int, *_force: bool) -> int:
        img = self._get(iid)
        self._authorize(user, img, 1, "DELETE")
        if img.state in (USED, USED_PERS, LOCKED_USED, LOCKED_USED_PERS):
            raise Fail(ACTION, "Cannot delete image in use")
        del self.images[iid]
        return iid

    # ---- pools and XML -------------------------------------------------------
    def datastorepool_info(self, user: User) -> str:
        body = "".join(
            f"<DATASTORE>{el('ID', i)}{el('UID', 0)}{el('GID', 0)}{el('UNAME', 'oneadmin')}"
            f"{el('GNAME', 'oneadmin')}{el('NAME', name)}{permissions_xml(UMASK_PERMS)}"
            f"{el('TYPE', kind)}{el('STATE', 0)}<TEMPLATE/></DATASTORE>"
            for i, (name, kind) in sorted(self.datastores.items()))
        return f"<DATASTORE_POOL>{body}</DATASTORE_POOL>"

    def user_info(self, user: User, uid: int, *_decrypt: bool) -> str:
        uid = user.id if uid == -1 else uid
        if uid not in self.users:
            raise Fail(NO_EXISTS, f"Error getting user [{uid}].")
        return self._user_xml(self.users[uid])

    def group_info(self, user: User, gid: int, *_decrypt: bool) -> str:
        gid = user.gid if gid == -1 else gid
        if gid not in self.groups:
            raise Fail(NO_EXISTS, f"Error getting group [{gid}].")
        return self._group_xml(gid)

    def _pool(self, kind: str, items: Dict[int, Any]) -> str:
        render = self._user_xml if kind == "USER" else self._group_xml
        body = "".join(render(items[k] if kind == "USER" else k) for k in sorted(items))
        return f"<{kind}_POOL>{body}</{kind}_POOL>"

    def _user_xml(self, u: User) -> str:
        groups = "".join(el("ID", g) for g in sorted(u.groups))
        return (f"<USER>{el('ID', u.id)}{el('GID', u.gid)}<GROUPS>{groups}</GROUPS>"
                f"{el('GNAME', self.groups[u.gid])}{el('NAME', u.name)}"
                f"{el('PASSWORD', '*')}{el('AUTH_DRIVER', 'core')}{el('ENABLED', 1)}"
                f"<TEMPLATE/></USER>")

    def _group_xml(self, gid: int) -> str:
        users = "".join(el("ID", u.id) for u in self.users.values() if gid in u.groups)
        return (f"<GROUP>{el('ID', gid)}{el('NAME', self.groups[gid])}<TEMPLATE/>"
                f"<USERS>{users}</USERS><ADMINS/></GROUP>")

    def _image_xml(self, img: Image) -> str:
        return (
            f"<IMAGE>{el('ID', img.id)}{el('UID', img.uid)}{el('GID', img.gid)}"
            f"{el('UNAME', self.users[img.uid].name)}{el('GNAME', self.groups[img.gid])}"
            f"{el('NAME', img.name)}{permissions_xml(img.perms)}{el('TYPE', img.type)}"
            f"{el('DISK_TYPE', 0)}{el('PERSISTENT', 0)}{el('REGTIME', img.regtime)}"
            f"{el('SOURCE', img.sha512 and f'/datastores/{img.ds_id}/{img.sha512[:32]}')}"
            f"{el('PATH', template_get(img.template, 'PATH'))}{el('FORMAT', img.format)}"
            f"{el('FS', '')}{el('SIZE', img.size_mb)}{el('STATE', img.state)}"
            f"{el('PREV_STATE', img.prev_state)}{el('RUNNING_VMS', 0)}"
            f"{el('CLONING_OPS', 0)}{el('CLONING_ID', -1)}{el('TARGET_SNAPSHOT', -1)}"
            f"{el('DATASTORE_ID', img.ds_id)}{el('DATASTORE', self.datastores[img.ds_id][0])}"
            f"<VMS/><CLONES/><APP_CLONES/>{template_xml(img.template)}</IMAGE>")
