"""Packages: a dnf test transaction against the bundle's own repo at validation
(what is installed, upgraded, downgraded; a requirement neither the bundle nor
the target provides is refused here), then the exact NEVRAs of the manifest are
installed into the root in the packages stage."""

from __future__ import annotations

from installer import engine
from installer.engine import Stages
from installer.restore import bundleinfo
from installer.restore.packages import InstallPackages, installed, plan


class Plugin(engine.PluginBase):
    def _has_packages(self) -> bool:
        return bool(bundleinfo.component(self.bundle, "repo").get("packages"))

    @engine.event(stage=Stages.VALIDATION, name="import.packages.plan",
                  after=("import.compat",), condition=lambda self: self._has_packages())
    def _plan(self) -> None:
        p = plan(self.root, bundleinfo.bundle_dir(self.bundle),
                 bundleinfo.manifest(self.bundle))
        self._planned = ({i.nevra for i in installed(self.root)}, p)
        for line in p.lines():
            self.plan(f"package: {line}")
        if p.nothing_to_do:
            self.plan("packages: every package of the bundle is already installed")

    @engine.event(stage=Stages.PACKAGES, name="import.packages",
                  condition=lambda self: self._has_packages())
    def _install(self) -> None:
        self.transaction.append(InstallPackages(bundleinfo.bundle_dir(self.bundle),
                                                bundleinfo.manifest(self.bundle),
                                                step_id="packages",
                                                planned=getattr(self, "_planned", None)))
