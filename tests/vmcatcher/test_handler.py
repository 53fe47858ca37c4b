"""The handler, run as vmcatcher runs it, against real pyone and the simulator."""

import fcntl
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from installer.vmcatcher import handler
from tests.onesim.sim import DISABLED, ERROR, LOCKED, READY
from tests.onesim.xmlbody import template_get

from .conftest import IDENT, PASSWORD, Site, sha512

OLD = b"old version\n" * 1000
NEW = b"new version\n" * 1000
CUSTOM = (1, 1, 0, 1, 1, 0, 1, 0, 0)  # what a site admin set: 664, "public" use
RETIRED = re.compile(re.escape(IDENT) +
                     r" \d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[+-]\d{4}-[^&|:\\\";/'#{}$<>]+$")


def seed(site: Site, state: int = READY, data: bytes = OLD) -> int:
    """A previous version registered by the handler, then customised by the admin."""
    return site.sim.add_image(
        IDENT, owner="alice", group="scientists", perms=CUSTOM, state=state,
        template=f'SATCHEL_IDENTIFIER="{IDENT}"\nSATCHEL_SHA512="{sha512(data)}"')


def only_new(site: Site, *old: int):
    (new,) = [i for i in site.sim.images.values() if i.id not in old]
    return new


def assert_retired(site: Site, iid: int) -> None:
    img = site.sim.image(iid)
    assert RETIRED.match(img.name), img.name
    assert (img.uid, img.gid) == (0, 0)
    assert img.perms == (1, 1, 1, 0, 0, 0, 0, 0, 0)  # 700: owner use/manage/admin only
    assert img.state == DISABLED


def test_first_version_is_registered_private(site: Site) -> None:
    title = 'A "quoted" \\ title; with $ & # {braces}'
    env = site.event(data=site.cached(NEW), VMCATCHER_EVENT_DC_TITLE=title,
                     VMCATCHER_EVENT_DC_DESCRIPTION="line one\nline two")
    assert site.run(env) == 0
    (img,) = site.sim.named(IDENT)
    assert img.state == READY
    assert (img.uid, img.gid) == (0, 0)
    assert img.perms == (1, 1, 0, 0, 0, 0, 0, 0, 0)  # first_version_permissions = 600
    assert img.type == 0  # OS
    assert img.sha512 == sha512(NEW)  # oned copied the cached file itself
    assert template_get(img.template, "SATCHEL_SHA512") == sha512(NEW)
    assert template_get(img.template, "VMCATCHER_EVENT_DC_TITLE") == title
    assert template_get(img.template, "DESCRIPTION") == f"{title}: line one\nline two"
    assert site.work_dirs() == []
    assert PASSWORD not in site.log and "registered image" in site.log


def test_update_keeps_custom_owner_group_and_permissions(site: Site) -> None:
    old = seed(site)
    assert site.run(site.event(data=site.cached(NEW))) == 0
    new = only_new(site, old)
    assert new.name == IDENT and new.state == READY and new.sha512 == sha512(NEW)
    assert (new.uid, new.gid) == (site.alice, site.scientists)
    assert new.perms == CUSTOM
    assert_retired(site, old)
    assert PASSWORD not in site.log


def test_update_of_disabled_image_stays_disabled(site: Site) -> None:
    old = seed(site, state=DISABLED)
    assert site.run(site.event(data=site.cached(NEW))) == 0
    new = only_new(site, old)
    assert new.state == DISABLED and new.perms == CUSTOM
    assert (new.uid, new.gid) == (site.alice, site.scientists)
    assert_retired(site, old)


def test_expiry_retires_the_current_version_only(site: Site) -> None:
    old = seed(site)
    # an older version expiring: the current image is another version, untouched
    older = site.event("ExpirePostfix", data=b"older version")
    assert site.run(older) == 0
    assert site.sim.image(old).name == IDENT and site.sim.image(old).state == READY
    assert site.run(site.event("ExpirePostfix", data=OLD)) == 0
    assert_retired(site, old)
    assert site.allocations() == []
    # replaying the expiry changes nothing more
    name = site.sim.image(old).name
    assert site.run(site.event("ExpirePosfix", data=OLD)) == 0  # the old spelling
    assert site.sim.image(old).name == name and len(site.sim.images) == 1


def test_replay_registers_nothing_twice(site: Site) -> None:
    old = seed(site)
    env = site.event(data=site.cached(NEW))
    assert site.run(env) == 0
    state = {i.id: (i.name, i.uid, i.gid, i.perms, i.state)
             for i in site.sim.images.values()}
    assert site.run(env) == 0
    # the previous version's event, replayed late, registers nothing either
    site.cached(OLD)
    assert site.run(site.event(data=OLD)) == 0
    assert len(site.allocations()) == 1
    assert {i.id: (i.name, i.uid, i.gid, i.perms, i.state)
            for i in site.sim.images.values()} == state
    assert old in state


def _assert_rolled_back(site: Site, old: int) -> None:
    assert list(site.sim.images) == [old]  # the half-registered image is gone
    img = site.sim.image(old)
    assert (img.name, img.uid, img.gid, img.perms, img.state) == \
        (IDENT, site.alice, site.scientists, CUSTOM, READY)
    assert site.work_dirs() == []


def test_allocate_failure_rolls_back(site: Site) -> None:
    old = seed(site)
    site.sim.allocate_error = "datastore full"
    assert site.run(site.event(data=site.cached(NEW))) == 1
    _assert_rolled_back(site, old)
    assert "datastore full" in site.log and "rolled back" in site.log


def test_image_never_ready_rolls_back(site: Site, capsys) -> None:
    old = seed(site)
    site.configure(ready_timeout="0.2")
    site.sim.new_image_fate = "never"
    assert site.run(site.event(data=site.cached(NEW))) == 1
    _assert_rolled_back(site, old)
    assert len(site.allocations()) == 1
    assert "still LOCKED" in capsys.readouterr().err


def test_image_in_error_is_reported_and_rolled_back(site: Site, capsys) -> None:
    old = seed(site, state=DISABLED)
    site.sim.new_image_fate = "error"
    assert site.run(site.event(data=site.cached(NEW))) == 1
    assert list(site.sim.images) == [old]
    img = site.sim.image(old)
    assert (img.name, img.uid, img.perms, img.state) == (IDENT, site.alice, CUSTOM, DISABLED)
    assert "went to ERROR" in capsys.readouterr().err


def test_checksum_mismatch_changes_nothing(site: Site) -> None:
    old = seed(site)
    site.cached(NEW)
    env = site.event(VMCATCHER_EVENT_SL_CHECKSUM_SHA512=sha512(b"something else"))
    assert site.run(env) == 1
    assert site.sim.image(old).name == IDENT and site.allocations() == []
    assert "sha512" in site.log


def test_other_events_exit_0_without_touching_anything(site: Site) -> None:
    (site.root / "etc/satchel/vmcatcher.conf").unlink()  # not even read
    for kind in ("AvailablePrefix", "ExpirePrefix", "SubscriptionImageNew", ""):
        assert site.run(site.event(kind)) == 0
    assert site.run({}) == 0  # vmcatcher sets only non-empty variables
    assert site.sim.calls == []


def test_a_second_run_waits_for_the_lock(site: Site, capsys) -> None:
    site.configure(lock_timeout="0.2")
    lock = site.root / "var/lib/satchel/vmcatcher.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert site.run(site.event(data=site.cached(NEW))) == 4
    assert site.sim.calls == []
    assert "another vmcatcher handler" in capsys.readouterr().err
    assert site.run(site.event(data=NEW)) == 0  # released: the event goes through


def test_config_problems_are_reported_together(site: Site, capsys) -> None:
    conf = site.root / "etc/satchel/vmcatcher.conf"
    conf.write_text("[vmcatcher]\ndatastore = default\nimage_fromat = raw\n"
                    "credentials_file = /etc/satchel/one_auth\nimage_format = vmdk\n")
    assert site.run(site.event(data=site.cached(NEW))) == 2
    err = capsys.readouterr().err
    for problem in ("image_fromat: unknown key", "endpoint: missing", "image_format: expected"):
        assert problem in err


def test_credentials_readable_by_others_are_refused(site: Site, capsys) -> None:
    os.chmod(site.root / "etc/satchel/one_auth", 0o644)
    assert site.run(site.event(data=site.cached(NEW))) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err and PASSWORD not in err
    assert site.sim.calls == []


def test_missing_pyone_names_the_package(site: Site, monkeypatch, capsys) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyone", None)
    assert site.run(site.event(data=site.cached(NEW))) == 1
    assert "python3-pyone" in capsys.readouterr().err


def test_a_killed_run_is_finished_by_the_replayed_event(site: Site) -> None:
    old = seed(site)
    site.sim.new_image_fate = "never"  # the copy is slow: the handler keeps polling
    env = site.event(data=site.cached(NEW))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "installer.vmcatcher", "--root",
                             str(site.root)], cwd=repo, env={**os.environ, **env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while len(site.sim.images) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    new = only_new(site, old)
    assert new.name == IDENT and new.state == LOCKED
    assert (new.uid, new.perms) == (0, (1, 1, 0, 0, 0, 0, 0, 0, 0))  # not yet applied
    assert_retired(site, old)
    new.fate = "ready"  # oned finishes the copy
    assert site.run(env) == 0
    assert len(site.allocations()) == 1  # finished, not registered again
    assert (new.state, new.uid, new.gid, new.perms) == \
        (READY, site.alice, site.scientists, CUSTOM)
    assert template_get(new.template, "SATCHEL_STATUS") == "registered"
    assert_retired(site, old)
    assert "interrupted run" in site.log


def test_a_killed_run_whose_image_failed_is_rolled_back_on_replay(site: Site,
                                                                  monkeypatch) -> None:
    old = seed(site)
    env = site.event(data=site.cached(NEW))
    site.sim.new_image_fate = "never"
    site.configure(ready_timeout="0.1")
    with monkeypatch.context() as m:  # a run that dies before it can roll back
        m.setattr(handler.Undo, "rollback", lambda self, cause: None)
        assert site.run(env) == 1
    new = only_new(site, old)
    new.state = ERROR  # the copy failed while nobody watched
    assert site.run(env) == 1
    _assert_rolled_back(site, old)
