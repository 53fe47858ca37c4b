"""Packages: a dnf test transaction against the bundle's own repo at validation
(what is installed, upgraded, downgraded; a requirement neither the bundle nor
the target provides is refused here), then the exact NEVRAs of the manifest are
installed into the root in the packages stage.

The test transaction (about 0.3 s for a few packages, 0.5-0.9 s for hundreds) is
started first thing in validation, in a thread, and read back at
import.packages.plan: the database, file and disk-space plans run meanwhile. It
only reads the target (its dnf cache and history go to a scratch directory that
it removes); cleanup waits for it when validation fails before it is read."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Set, Tuple

from installer import engine
from installer.engine import Stages
from installer.restore import bundleinfo
from installer.restore.packages import InstallPackages, PackagePlan, installed, plan


class _Background(threading.Thread):
    """`func()` in a thread (not a daemon: the process never exits while dnf runs);
    result() waits for it and returns its value or raises its exception."""

    def __init__(self, func: Callable[[], Any]) -> None:
        super().__init__(name="packages-plan")
        self._func = func
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._func()
        except BaseException as exc:  # raised again by result() in the engine's thread
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


class Plugin(engine.PluginBase):
    _background: Optional[_Background] = None

    def _has_packages(self) -> bool:
        return bool(bundleinfo.component(self.bundle, "repo").get("packages"))

    def _test_transaction(self) -> Tuple[Set[str], PackagePlan]:
        p = plan(self.root, bundleinfo.bundle_dir(self.bundle),
                 bundleinfo.manifest(self.bundle))
        return {i.nevra for i in installed(self.root)}, p

    @engine.event(stage=Stages.VALIDATION, name="import.packages.start",
                  priority=engine.PRIO_FIRST, after=("import.compat",),
                  condition=lambda self: self._has_packages())
    def _start(self) -> None:
        self._background = _Background(self._test_transaction)

    @engine.event(stage=Stages.VALIDATION, name="import.packages.plan",
                  after=("import.compat",), condition=lambda self: self._has_packages())
    def _plan(self) -> None:
        background, self._background = self._background, None
        self._planned = background.result() if background else self._test_transaction()
        p = self._planned[1]
        for line in p.lines():
            self.plan(f"package: {line}")
        if p.nothing_to_do:
            self.plan("packages: every package of the bundle is already installed")

    @engine.event(stage=Stages.CLEANUP, name="import.packages.plan.wait")
    def _wait(self) -> None:
        """Validation failed before the test transaction was read: let it finish
        (and remove its scratch directory) before the run ends."""
        if self._background is not None:
            self._background.join()
            self._background = None

    @engine.event(stage=Stages.PACKAGES, name="import.packages",
                  condition=lambda self: self._has_packages())
    def _install(self) -> None:
        self.transaction.append(InstallPackages(bundleinfo.bundle_dir(self.bundle),
                                                bundleinfo.manifest(self.bundle),
                                                step_id="packages",
                                                planned=getattr(self, "_planned", None)))
