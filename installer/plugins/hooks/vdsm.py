"""vdsm hooks from the bundle's hooks/vdsm/: hooks.d files (0755, root), the
packages of every packages.d list matching this host's distro, and the custom
plugins' folders copied to the target.

Order: setup reads and checks the hook set; validation picks the lists (os-release
ID, then each ID_LIKE entry: every matching list is used), refuses a list naming a
package the bundle does not carry, and plans each hook, package and plugin stage;
packages installs the lists' packages (before the custom plugins' packages events);
misc writes the hooks, then the plugin copies. Files already as wanted are not
written again, so a re-run changes nothing.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from installer import engine
from installer.bundle import load_manifest
from installer.engine import Stages
from installer.errors import RefusedError
from installer.plugins.hooks import _layout
from installer.plugins.hooks._elements import unchanged
from installer.restore import osrelease
from installer.restore.packages import InstallPackages


class Plugin(engine.PluginBase):
    hookset: Optional[_layout.HookSet] = None
    manifest: Dict[str, Any] = {}
    packages: List[str] = []

    @engine.event(stage=Stages.SETUP, name="hooks.read")
    def _read(self) -> None:
        if _layout.bundle_set(self.bundle) is None:
            if self.bundle is not None:
                self.dialog.note("the bundle carries no vdsm hook set")
            if self.resolve(_layout.TARGET_PLUGINS).is_dir():
                self.dialog.note(f"running the hook plugins installed on this host "
                                 f"({_layout.TARGET_PLUGINS})")
            elif self.bundle is None:
                self.dialog.note("no bundle and no hook plugins installed: nothing to do")
            return
        assert self.bundle is not None
        self.hookset = _layout.checked_bundle_set(self.bundle)
        self.manifest = load_manifest(self.bundle)

    @engine.event(stage=Stages.VALIDATION, name="hooks.plan", priority=engine.PRIO_HIGH)
    def _plan(self) -> None:
        hs = self.hookset
        if hs is not None:
            self._choose_lists(hs)
            for hook in hs.hooks:
                self.plan(f"hook {hook.rel} -> {hook.target} (0755, root)")
            for name in self.packages:
                self.plan(f"package {name} from the bundle's repo")
            for plugin in hs.plugins:
                self.plan(f"copy plugin {plugin.name} -> {plugin.target}/")
        for line in self._custom_stages():
            self.plan(line)

    def _choose_lists(self, hs: _layout.HookSet) -> None:
        ids = osrelease.ids(osrelease.read(self.root))
        lists = hs.lists_for(ids)
        if hs.lists and not lists:
            self.dialog.note(
                f"no packages.d list for this distro ({' '.join(ids) or 'unknown'}; lists: "
                f"{', '.join(pl.file for pl in hs.lists)}): no packages are installed, "
                "the hooks are")
        for pl in lists:
            self.log.info("packages.d/%s matches this host (%s)", pl.file, " ".join(ids))
        self.packages = sorted({name for pl in lists for name in pl.packages})
        carried = set(_layout.bundled_names(self.manifest))
        missing = [f"packages.d/{pl.file}: {name}" for pl in lists for name in pl.packages
                   if name not in carried]
        if missing:
            raise RefusedError("packages.d names packages the bundle does not carry:\n  "
                               + "\n  ".join(missing),
                               hint="rebuild the bundle with them in [packages] include; "
                                    "nothing was changed")

    def _custom_stages(self) -> List[str]:
        """"plugin <name>: <stage> <event>" for each event of the loaded custom plugins."""
        dirs = [str(d.resolve()) for d in _layout.plugin_source(self.bundle, self.root)]
        out = []
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            cls = getattr(module, "Plugin", None)
            if not path or not isinstance(cls, type) or not issubclass(cls, engine.PluginBase):
                continue
            folder = Path(path).resolve().parent
            if str(folder.parent) not in dirs:
                continue
            # A throw-away instance only to list its events (plugins' __init__ is the base's).
            events = sorted(cls(self._context).events(),
                            key=lambda e: (list(Stages).index(e.stage), e.priority, e.name))
            out += [f"plugin {folder.name}: {e.stage.value} {e.name}" for e in events]
        return sorted(set(out), key=out.index)

    @engine.event(stage=Stages.PACKAGES, name="hooks.packages", priority=engine.PRIO_HIGH)
    def _packages(self) -> None:
        if not self.packages:
            return
        assert self.bundle is not None
        repo = dict(self.manifest["components"]["repo"])
        repo["packages"] = [p for p in repo.get("packages") or []
                            if p.get("name") in self.packages]
        manifest = dict(self.manifest, components={"repo": repo})
        self.transaction.append(_ListPackages(self.bundle, manifest, step_id=None))

    @engine.event(stage=Stages.MISC, name="hooks.files", priority=engine.PRIO_HIGH)
    def _files(self) -> None:
        for hook in self.hookset.hooks if self.hookset else ():
            data = hook.path.read_bytes()
            if unchanged(self, hook.target, data, 0o755):
                continue
            self.transaction.append(engine.FileWrite(hook.target, data, mode=0o755,
                                                     owner="root", group="root"))

    @engine.event(stage=Stages.MISC, name="hooks.plugins", priority=engine.PRIO_HIGH,
                  after=("hooks.files",))
    def _plugins(self) -> None:
        """Copy each plugin folder; files the bundle's copy no longer has go."""
        for plugin in self.hookset.plugins if self.hookset else ():
            for rel in plugin.files:
                src = plugin.path / rel
                data = src.read_bytes()
                mode = (stat.S_IMODE(os.stat(src).st_mode) & 0o755) | 0o644
                target = f"{plugin.target}/{rel}"
                if not unchanged(self, target, data, mode):
                    self.transaction.append(engine.FileWrite(target, data, mode=mode,
                                                             owner="root", group="root"))
            there = self.resolve(plugin.target)
            for stale in sorted(_files_under(there)):
                if stale not in plugin.files:
                    self.transaction.append(engine.FileRemove(f"{plugin.target}/{stale}"))


def _files_under(directory: Path) -> List[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if d not in _layout.SKIPPED]
        out += [Path(dirpath, f).relative_to(directory).as_posix() for f in filenames]
    return out


# What dnf itself writes into a root (history, module state, logs, cache).
DNF_PATHS = ("etc/dnf", "var/lib/dnf", "var/cache/dnf", "var/log/dnf.log",
             "var/log/dnf.librepo.log", "var/log/dnf.rpm.log", "var/log/hawkey.log")


class _ListPackages(InstallPackages):
    """InstallPackages; its undo also removes what dnf left in a root where it had
    never run before, so a rollback leaves such a root exactly as it was."""

    fresh: List[str] = []

    def prepare(self) -> None:
        self.fresh = [p for p in DNF_PATHS if not os.path.lexists(self.txn.root / p)]
        super().prepare()

    def _forget_dnf(self) -> None:
        for rel in self.fresh:
            path = self.txn.root / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif os.path.lexists(path):
                path.unlink()

    def abort(self) -> None:
        try:
            super().abort()
        finally:
            self._forget_dnf()

    def undo(self) -> None:
        try:
            super().undo()
        finally:
            self._forget_dnf()
