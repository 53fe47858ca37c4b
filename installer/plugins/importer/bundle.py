"""Verify every checksum of the bundle and check it fits this target, before
anything changes."""

from __future__ import annotations

from installer import VERSION, engine
from installer.bundle import verify_dir
from installer.engine import Stages
from installer.errors import InputError, RefusedError
from installer.restore import bundleinfo, osrelease


class Plugin(engine.PluginBase):
    @engine.event(stage=Stages.SETUP, name="import.verify", priority=engine.PRIO_FIRST)
    def _verify(self) -> None:
        bundle = bundleinfo.bundle_dir(self.bundle)
        report = verify_dir(bundle)
        if not report.ok:
            raise InputError(f"the bundle at {bundle} is damaged:\n  " +
                             "\n  ".join(report.lines()),
                             hint="copy it again from its source; nothing was changed")
        self.log.info("bundle verified: %d files", report.checked)

    @engine.event(stage=Stages.VALIDATION, name="import.compat", priority=engine.PRIO_FIRST)
    def _compatible(self) -> None:
        m = bundleinfo.manifest(self.bundle)
        problems = osrelease.compatibility_problems(m.get("target", {}), self.root)
        if m.get("satchel_version") != VERSION:
            problems.append(f"satchel version: the bundle was made by {m.get('satchel_version')},"
                            f" this installer is {VERSION}")
        if problems:
            raise RefusedError("this bundle does not fit this target:\n  " +
                               "\n  ".join(problems),
                               hint="import on the distro, version and architecture the "
                                    "bundle was made for")
