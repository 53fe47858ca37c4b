"""What the handler does for one event, and how it puts OpenNebula back on failure.

New version (AvailablePostfix): remember the current image `$dc:identifier`
(owner, group, nine permission bits, disabled), retire it (rename to
`$dc:identifier $TIMESTAMP`, chown oneadmin:oneadmin, chmod 700, disable),
register the new file as `$dc:identifier`, wait until READY, give it what was
remembered.  Any failure after the first change deletes the new image and gives
the previous one its name, owner, permissions and state back.

Expired (ExpirePostfix): retire the current image when it is the version that
expired (its SATCHEL_SHA512 is the event's checksum, or either is unknown).
When the current image holds another sha512, a newer version has already
replaced the expired one and nothing is done.

Replay: an image whose template records the same identifier and sha512 means
this version was registered before; nothing is registered twice.  The new
image's template also records what it must become (SATCHEL_OWNER,
SATCHEL_PERMISSIONS, SATCHEL_DISABLED, SATCHEL_PREVIOUS_IMAGE) and
SATCHEL_STATUS "registering" until that is applied, so a run killed while
waiting for READY is finished, or rolled back, by the replayed event.
"""

import logging
import os
import shutil
import tempfile
from datetime import datetime
from typing import Callable, Iterable, List, Optional, Set, Tuple

from installer.errors import InputError

from .config import Config, format_permissions, parse_permissions
from .errors import HandlerError, OpenNebulaError, RollbackIncomplete
from .event import Event
from .images import check_sha512, prepare
from .one import (
    DISABLED,
    IDENTIFIER_ATTR,
    NAME_FORBIDDEN,
    READY,
    SHA512_ATTR,
    STATUS_ATTR,
    ImageFacts,
    OpenNebula,
    name_problem,
    render_template,
)

log = logging.getLogger("satchel.vmcatcher")
# `chmod 700`: the owner (oneadmin once retired) may use, manage and administer
OWNER_ONLY = (1, 1, 1, 0, 0, 0, 0, 0, 0)


def timestamp(now: Optional[datetime] = None) -> str:
    """Local time with its zone, like 2014-06-04_12-54-44_+0200-CEST, name-safe."""
    now = now or datetime.now().astimezone()
    text = now.strftime("%Y-%m-%d_%H-%M-%S_%z-%Z")
    return "-".join(NAME_FORBIDDEN.sub("-", text).split())


def retired_name(identifier: str, taken: Set[str], now: Optional[datetime] = None) -> str:
    base = f"{identifier} {timestamp(now)}"
    name, n = base, 2
    while name in taken:  # two retirements in one second
        name, n = f"{base}-{n}", n + 1
    problem = name_problem(name)
    if problem:
        raise InputError(f"cannot name the previous image {name!r}: {problem}")
    return name


def current_image(images: Iterable[ImageFacts], identifier: str) -> Optional[ImageFacts]:
    named = [i for i in images if i.name == identifier]
    if len(named) > 1:
        ours = [i for i in named if i.identifier == identifier]
        named = ours if ours else named
    if len(named) > 1:
        ids = ", ".join(str(i.id) for i in named)
        raise HandlerError(f"several images are named {identifier!r} (ids {ids})",
                           hint="rename all but the current one")
    return named[0] if named else None


class Undo:
    """Enough to put OpenNebula back: the image registered, the image retired."""

    def __init__(self, one: OpenNebula) -> None:
        self.one = one
        self.new_id: Optional[int] = None
        self.previous: Optional[ImageFacts] = None

    def _try(self, problems: List[str], what: str, fn: Callable[..., None],
             *args: object) -> None:
        try:
            fn(*args)
        except OpenNebulaError as e:
            problems.append(f"{what}: {e}")

    def rollback(self, cause: BaseException) -> None:
        log.error("failed: %s; rolling back", cause)
        problems: List[str] = []
        if self.new_id is not None:
            self._try(problems, f"delete image {self.new_id}", self.one.delete, self.new_id)
        prev = self.previous
        if prev is not None:
            try:
                now, _ = self.one.image(prev.id)
            except OpenNebulaError as e:
                problems.append(str(e))
            else:
                if now.name != prev.name:
                    self._try(problems, "rename back", self.one.rename, prev.id, prev.name)
                if (now.uid, now.gid) != (prev.uid, prev.gid):
                    self._try(problems, "chown back", self.one.chown, prev.id, prev.uid,
                              prev.gid)
                if now.perms != prev.perms:
                    self._try(problems, "chmod back", self.one.chmod, prev.id, prev.perms)
                if now.state != prev.state and prev.state in (READY, DISABLED) \
                        and now.state in (READY, DISABLED):
                    self._try(problems, "restore state", self.one.enable, prev.id,
                              prev.state == READY)
        if problems:
            raise RollbackIncomplete(
                f"{cause}; the rollback is incomplete: {'; '.join(problems)}",
                hint="check the images in OpenNebula by hand")
        log.info("rolled back: OpenNebula is as it was before the event")


def retire(one: OpenNebula, image: ImageFacts, admin: Tuple[int, int],
           images: List[ImageFacts], identifier: str) -> None:
    """Rename with the timestamp, chown oneadmin:oneadmin, chmod 700, disable."""
    taken = {i.name for i in images if i.uid in (image.uid, admin[0])}
    one.rename(image.id, retired_name(identifier, taken))
    one.chown(image.id, *admin)
    one.chmod(image.id, OWNER_ONLY)
    if image.state == READY:
        one.enable(image.id, False)
    elif image.state != DISABLED:
        log.warning("image %d is %s and cannot be disabled; left as it is",
                    image.id, image.state_name)


# what the new image must become, kept in its template until it is applied, so an
# interrupted run can be finished (and rolled back) by the next one
OWNER_ATTR, PERMS_ATTR = "SATCHEL_OWNER", "SATCHEL_PERMISSIONS"
DISABLED_ATTR, PREVIOUS_ATTR = "SATCHEL_DISABLED", "SATCHEL_PREVIOUS_IMAGE"


def remembered(current: Optional[ImageFacts], cfg: Config) -> List[Tuple[str, str]]:
    if current is None:  # a first version stays oneadmin's, with the configured bits
        return [(OWNER_ATTR, ""), (PERMS_ATTR, format_permissions(
            cfg.first_version_permissions)), (DISABLED_ATTR, "NO"), (PREVIOUS_ATTR, "")]
    return [(OWNER_ATTR, f"{current.uid}:{current.gid}"),
            (PERMS_ATTR, format_permissions(current.perms)),
            (DISABLED_ATTR, "YES" if current.disabled else "NO"),
            (PREVIOUS_ATTR, str(current.id))]


def previous_of(new: ImageFacts) -> Optional[ImageFacts]:
    """The previous version as it was before the run that registered `new`."""
    if not new.attr(PREVIOUS_ATTR):
        return None
    uid, _, gid = new.attr(OWNER_ATTR).partition(":")
    return ImageFacts(int(new.attr(PREVIOUS_ATTR)), new.identifier, int(uid), int(gid),
                      parse_permissions(new.attr(PERMS_ATTR)),
                      DISABLED if new.attr(DISABLED_ATTR) == "YES" else READY, "",
                      new.identifier)


def image_template(event: Event, identifier: str, path: str, fmt: str, sha512: str,
                   plan: List[Tuple[str, str]]) -> str:
    attrs = [("NAME", identifier), ("TYPE", "OS"), ("PATH", path), ("DRIVER", fmt),
             ("DESCRIPTION", event.describe()), (IDENTIFIER_ATTR, identifier),
             (SHA512_ATTR, sha512), (STATUS_ATTR, "registering")]
    return render_template(attrs + plan + list(event.metadata))


def finish(one: OpenNebula, iid: int, cfg: Config) -> None:
    """Wait for READY, then give the image the owner, bits and state it records."""
    img = one.wait_ready(iid, cfg.ready_timeout, cfg.poll_interval)
    owner = img.attr(OWNER_ATTR)
    if owner:
        uid, _, gid = owner.partition(":")
        one.chown(iid, int(uid), int(gid))
    one.chmod(iid, parse_permissions(img.attr(PERMS_ATTR)))
    if img.attr(DISABLED_ATTR) == "YES":
        one.enable(iid, False)
    one.update(iid, [(STATUS_ATTR, "registered")])


def resume(one: OpenNebula, cfg: Config, img: ImageFacts, workroot: str) -> None:
    log.warning("image %d was left half-registered by an interrupted run: finishing it",
                img.id)
    undo = Undo(one)
    undo.new_id, undo.previous = img.id, previous_of(img)
    try:
        finish(one, img.id, cfg)
    except BaseException as e:
        undo.rollback(e)
        raise
    _, raw = one.image(img.id)
    path = os.path.dirname(str(getattr(raw, "PATH", "") or ""))
    if os.path.dirname(path) == os.path.normpath(workroot):  # the interrupted run's copy
        shutil.rmtree(path, ignore_errors=True)


def handle_available(one: OpenNebula, cfg: Config, event: Event, workroot: str) -> None:
    identifier = event.require_identifier()
    problem = name_problem(identifier)
    if problem:
        raise InputError(f"cannot name an image {identifier!r}: {problem}")
    cached = event.cached_file()
    sha512 = check_sha512(cached, event.sha512)
    images = one.images()
    for img in images:
        if img.identifier == identifier and img.sha512 == sha512:
            if img.attr(STATUS_ATTR) == "registering" and img.name == identifier:
                resume(one, cfg, img, workroot)
            else:
                log.info("this version of %s is already image %d (%r): nothing to do",
                         identifier, img.id, img.name)
            return
    current = current_image(images, identifier)
    admin = one.oneadmin()
    ds_id = one.datastore_id(cfg.datastore)
    os.makedirs(workroot, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="work-", dir=workroot)
    try:
        path = prepare(cached, event.hv_format, cfg.image_format, workdir)
        template = image_template(event, identifier, path, cfg.image_format, sha512,
                                  remembered(current, cfg))
        undo = Undo(one)
        try:
            if current is not None:
                log.info("previous version: image %d, owner %d:%d, permissions %s, %s",
                         current.id, current.uid, current.gid,
                         format_permissions(current.perms), current.state_name)
                undo.previous = current
                retire(one, current, admin, images, identifier)
            undo.new_id = one.allocate(template, ds_id)
            finish(one, undo.new_id, cfg)
        except BaseException as e:
            undo.rollback(e)
            raise
        log.info("%s is now image %d", identifier, undo.new_id)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def handle_expire(one: OpenNebula, event: Event) -> None:
    identifier = event.require_identifier()
    images = one.images()
    current = current_image(images, identifier)
    if current is None:
        log.info("no image is named %r: nothing to expire", identifier)
        return
    if event.sha512 and current.sha512 and current.sha512 != event.sha512:
        log.info("image %d holds a newer version of %s: nothing to expire",
                 current.id, identifier)
        return
    admin = one.oneadmin()
    undo = Undo(one)
    undo.previous = current
    try:
        retire(one, current, admin, images, identifier)
    except BaseException as e:
        undo.rollback(e)
        raise
    log.info("expired image %d", current.id)

