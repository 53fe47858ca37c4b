"""The simulator enforces oned's rules, so it can catch the handler's mistakes."""

from pathlib import Path

import pyone
import pytest

from tests.onesim.sim import DISABLED, ERROR, LOCKED, READY, USED, OneSim


@pytest.fixture
def one(onesim: OneSim):
    return pyone.OneServer(onesim.endpoint, session="oneadmin:onepass")


@pytest.fixture
def disk(tmp_path: Path) -> str:
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\x00" * 4096)
    return str(path)


def allocate(one, name: str, path: str) -> int:
    return one.image.allocate(f'NAME = "{name}"\nTYPE = "OS"\nPATH = "{path}"\n', 1)


def test_responses_and_error_codes(onesim: OneSim, one, disk: str) -> None:
    assert onesim._dispatch("one.image.info", ("oneadmin:onepass", 42)) == \
        [False, "[one.image.info] Error getting image [42].", 0x400]
    with pytest.raises(pyone.OneAuthenticationException):
        pyone.OneServer(onesim.endpoint, session="oneadmin:wrong").system.version()
    with pytest.raises(pyone.OneNoExistsException):
        one.image.info(42)
    iid = allocate(one, "private", disk)
    onesim.add_user("bob", "bobpw")
    bob = pyone.OneServer(onesim.endpoint, session="bob:bobpw")
    with pytest.raises(pyone.OneAuthorizationException):
        bob.image.rename(iid, "mine now")
    assert [i.ID for i in bob.imagepool.info(-2, -1, -1).IMAGE] == []  # 600: not his


def test_bad_names_are_rejected(one, disk: str) -> None:
    for bad in ("a:b", "a/b", "x" * 129, "tab\there"):
        with pytest.raises(pyone.OneException):
            allocate(one, bad, disk)
    iid = allocate(one, "good name", disk)
    with pytest.raises(pyone.OneActionException):
        one.image.rename(iid, "semi;colon")
    assert one.image.info(iid).NAME == "good name"


def test_names_are_unique_per_owner(onesim: OneSim, one, disk: str) -> None:
    first = allocate(one, "twin", disk)
    with pytest.raises(pyone.OneException, match="already taken"):
        allocate(one, "twin", disk)
    other = allocate(one, "other", disk)
    with pytest.raises(pyone.OneActionException):
        one.image.rename(other, "twin")
    alice = onesim.add_user("alice", "pw")
    alices = onesim.add_image("twin", owner="alice", group="users")  # another owner: fine
    with pytest.raises(pyone.OneActionException):
        one.image.chown(alices, 0, 0)  # oneadmin already has a "twin"
    with pytest.raises(pyone.OneActionException):
        one.image.chown(first, alice, -1)  # and alice has one too
    one.image.chown(other, alice, -1)
    assert (alice, 0) == (one.image.info(other).UID, one.image.info(other).GID)


def test_new_image_is_locked_then_ready(onesim: OneSim, one, disk: str) -> None:
    iid = allocate(one, "img", disk)
    assert one.image.info(iid).STATE == LOCKED
    for enable in (True, False):
        with pytest.raises(pyone.OneActionException):
            one.image.enable(iid, enable)
    img = one.image.info(iid)
    assert img.STATE == READY and img.FORMAT == "raw" and img.TYPE == 0
    one.image.enable(iid, False)
    assert one.image.info(iid).STATE == DISABLED
    one.image.enable(iid, True)
    assert one.image.info(iid).STATE == READY


def test_faults_and_missing_files(onesim: OneSim, one, disk: str, tmp_path: Path) -> None:
    gone = allocate(one, "gone", str(tmp_path / "missing.raw"))
    one.image.info(gone)
    assert one.image.info(gone).STATE == ERROR  # oned could not copy PATH
    with pytest.raises(pyone.OneActionException):
        one.image.enable(gone, True)
    onesim.new_image_fate = "never"
    stuck = allocate(one, "stuck", disk)
    assert all(one.image.info(stuck).STATE == LOCKED for _ in range(5))
    one.image.delete(stuck)
    onesim.allocate_error = "no space"
    with pytest.raises(pyone.OneException, match="no space"):
        allocate(one, "refused", disk)
    assert sorted(onesim.images) == [gone]


def test_chmod_update_and_lookups(onesim: OneSim, one, disk: str) -> None:
    iid = allocate(one, "img", disk)
    one.image.chmod(iid, -1, -1, 1, 1, -1, -1, 1, -1, -1)
    p = one.image.info(iid).PERMISSIONS
    assert (p.OWNER_U, p.OWNER_M, p.OWNER_A, p.GROUP_U, p.GROUP_M, p.OTHER_U) == \
        (1, 1, 1, 1, 0, 1)
    one.image.update(iid, 'A = "1"\nB = [ C = "2" ]', 1)
    one.image.update(iid, 'A = "3"', 1)
    tmpl = one.image.info(iid).TEMPLATE
    assert (tmpl["A"], tmpl["B"]["C"], tmpl["TYPE"]) == ("3", "2", "OS")
    one.image.update(iid, 'ONLY = "this"', 0)
    assert dict(one.image.info(iid).TEMPLATE) == {"ONLY": "this"}
    with pytest.raises(pyone.OneException, match="syntax"):
        one.image.update(iid, 'A = "unterminated', 0)
    assert [d.NAME for d in one.datastorepool.info().DATASTORE] == \
        ["system", "default", "files"]
    assert one.user.info(-1).NAME == "oneadmin" and one.group.info(0).NAME == "oneadmin"
    assert [u.NAME for u in one.userpool.info().USER] == ["oneadmin"]
    with pytest.raises(pyone.OneException):
        one.image.allocate('NAME = "x"\nPATH = "/x"', 0)  # the system datastore


def test_non_admins_cannot_change_admin_bits(onesim: OneSim, disk: str) -> None:
    onesim.add_user("carol", "pw")
    carol = pyone.OneServer(onesim.endpoint, session="carol:pw")
    iid = allocate(carol, "hers", disk)
    carol.image.chmod(iid, 1, 1, 0, 1, 0, 0, 0, 0, 0)  # use/manage bits: allowed
    with pytest.raises(pyone.OneAuthorizationException):
        carol.image.chmod(iid, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    with pytest.raises(pyone.OneAuthorizationException):
        carol.image.chown(iid, 0, 0)


def test_pool_filters_ranges_and_images_in_use(onesim: OneSim, one, disk: str) -> None:
    dave = onesim.add_user("dave", "pw", group="users")
    mine = allocate(one, "admins", disk)
    his = onesim.add_image("daves", owner="dave", group="users", state=USED)
    group = onesim.add_image("groups", owner="oneadmin", group="users")

    def ids(who: int, start: int = -1, end: int = -1):
        return [i.ID for i in one.imagepool.info(who, start, end).IMAGE]

    assert ids(-2) == [mine, his, group]
    assert ids(-3) == [mine, group]  # oneadmin's own
    assert ids(dave) == [his]
    assert ids(-2, his, his) == [his] and ids(-2, his) == [his, group]
    with pytest.raises(pyone.OneActionException):
        one.image.delete(his)  # in use
    with pytest.raises(pyone.OneActionException):
        one.image.enable(his, False)
    davesrv = pyone.OneServer(onesim.endpoint, session="dave:pw")
    assert [i.ID for i in davesrv.imagepool.info(-1, -1, -1).IMAGE] == [his]
