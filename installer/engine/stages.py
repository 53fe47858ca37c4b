"""The installer's stages, in the order they run (otopi's list)."""

from __future__ import annotations

import enum
from typing import FrozenSet, Tuple


class Stages(str, enum.Enum):
    """The 18 stages of a run. The value is the name used on the command line,
    in SATCHEL_FAIL_AT and in logs."""

    BOOT = "boot"
    INIT = "init"
    SETUP = "setup"
    INTERNAL_PACKAGES = "internal_packages"
    PROGRAMS = "programs"
    LATE_SETUP = "late_setup"
    CUSTOMIZATION = "customization"
    VALIDATION = "validation"
    TRANSACTION_BEGIN = "transaction_begin"
    EARLY_MISC = "early_misc"
    PACKAGES = "packages"
    MISC = "misc"
    TRANSACTION_END = "transaction_end"
    CLOSEUP = "closeup"
    CLEANUP = "cleanup"
    PRE_TERMINATE = "pre_terminate"
    TERMINATE = "terminate"
    REBOOT = "reboot"

    def __str__(self) -> str:
        return self.value


ORDER: Tuple[Stages, ...] = tuple(Stages)

# Stages that run even after a failure (and after a dry run stops).
ALWAYS_RUN: FrozenSet[Stages] = frozenset(
    {Stages.CLEANUP, Stages.PRE_TERMINATE, Stages.TERMINATE})

# Stages during which plugins may append transaction elements.
TRANSACTION_STAGES: FrozenSet[Stages] = frozenset(
    {Stages.EARLY_MISC, Stages.PACKAGES, Stages.MISC})

# The first stage that may change the target.
FIRST_CHANGING = Stages.TRANSACTION_BEGIN


def stage_by_name(name: str) -> Stages:
    """The stage called `name` (as in SATCHEL_FAIL_AT); ValueError if none."""
    try:
        return Stages(name.strip().lower().replace("-", "_"))
    except ValueError:
        raise ValueError(
            f"unknown stage {name!r} (known: {', '.join(s.value for s in ORDER)})"
        ) from None
