"""Verify every checksum of the bundle (every volume of a multi-volume one) and
check it fits this target, before anything changes."""

from __future__ import annotations

from installer import VERSION, engine
from installer.bundle import Report, verify_dir
from installer.engine import Stages
from installer.errors import InputError, RefusedError
from installer.restore import bundleinfo, osrelease, volumes, volview


class Plugin(engine.PluginBase):
    @engine.event(stage=Stages.SETUP, name="import.verify", priority=engine.PRIO_FIRST)
    def _verify(self) -> None:
        bundle = bundleinfo.bundle_dir(self.bundle)
        vols = volview.volumes_of(bundle)
        if vols is not None:  # every volume of a multi-volume set, before any change
            for v in vols:
                self.log.info("%s at %s", v.name, v.path)
            report: Report = volumes.verify_volumes(vols)
            where = f"the {len(vols)} volume(s) of the bundle"
        else:
            report = verify_dir(bundle)
            where = f"the bundle at {bundle}"
        if not report.ok:
            raise InputError(f"{where} is damaged:\n  " + "\n  ".join(report.lines()),
                             hint="copy it again from its source; nothing was changed")
        self.log.info("bundle verified: %d files%s", report.checked,
                      f" on {len(vols)} volume(s)" if vols is not None else "")

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
