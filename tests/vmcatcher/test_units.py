"""The handler's small rules: names, timestamps, permission digits, template escaping."""

from datetime import datetime, timedelta, timezone

import pytest

from installer.errors import InputError
from installer.vmcatcher.config import format_permissions, parse_permissions
from installer.vmcatcher.event import Event
from installer.vmcatcher.handler import OWNER_ONLY, retired_name, timestamp
from installer.vmcatcher.one import name_problem, render_template
from tests.onesim.sim import Fail, check_name
from tests.onesim.xmlbody import parse_template

CEST = timezone(timedelta(hours=2), "CEST")
WHEN = datetime(2014, 6, 4, 12, 54, 44, tzinfo=CEST)


def test_timestamp_is_the_documented_format() -> None:
    assert timestamp(WHEN) == "2014-06-04_12-54-44_+0200-CEST"


def test_timestamp_of_an_odd_zone_name_is_made_name_safe() -> None:
    odd = timezone(timedelta(hours=-3), "America/Sao Paulo")
    stamp = timestamp(datetime(2014, 6, 4, 12, 54, 44, tzinfo=odd))
    assert stamp == "2014-06-04_12-54-44_-0300-America-Sao-Paulo"
    check_name("x " + stamp)  # the simulator's copy of oned's rule accepts it


def test_retired_name_never_collides() -> None:
    first = retired_name("img", set(), WHEN)
    second = retired_name("img", {first}, WHEN)
    assert first == "img 2014-06-04_12-54-44_+0200-CEST" and second == first + "-2"
    with pytest.raises(InputError):
        retired_name("x" * 120, set(), WHEN)  # over 128 characters


def test_permission_digits_are_use_manage_admin() -> None:
    assert parse_permissions("700") == OWNER_ONLY
    assert parse_permissions("640") == (1, 1, 0, 1, 0, 0, 0, 0, 0)
    assert format_permissions(parse_permissions("751")) == "751"
    with pytest.raises(ValueError):
        parse_permissions("rw-")


def test_escaped_values_read_back_unchanged() -> None:
    values = ['plain', 'with "quotes"', 'back\\slash\\', 'new\nline', '$ & # { } [ ] ,']
    text = render_template([(f"K{i}", v) for i, v in enumerate(values)])
    assert parse_template(text) == [(f"K{i}", v) for i, v in enumerate(values)]


@pytest.mark.parametrize("name", ["a:b", "a/b", "a;b", "a\tb", 'a"b', "x" * 129, ""])
def test_name_rules_agree_with_the_simulator(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(Fail):
        check_name(name)


def test_event_reads_absent_variables_as_empty() -> None:
    ev = Event.from_environ({"VMCATCHER_EVENT_TYPE": "ExpirePosfix",
                             "VMCATCHER_EVENT_DC_IDENTIFIER": "id",
                             "VMCATCHER_EVENT_X_lower": "skipped", "OTHER": "no"})
    assert ev.is_expire and not ev.is_available and ev.sha512 == ""
    assert ev.metadata == (("VMCATCHER_EVENT_DC_IDENTIFIER", "id"),
                           ("VMCATCHER_EVENT_TYPE", "ExpirePosfix"))
