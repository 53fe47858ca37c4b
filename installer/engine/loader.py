"""Finding plugins: one folder per group under installer/plugins/ (listed with
pkgutil, so it works from the zipapp too) and extra directories at run time."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pathlib
import pkgutil
import sys
import types
from typing import List, Optional, Sequence, Tuple, Type

from installer.engine.ordering import PluginError
from installer.engine.plugin import PluginBase
from installer.errors import SatchelError

PACKAGE = "installer.plugins"


def _plugin_class(module: types.ModuleType, where: str) -> Type[PluginBase]:
    cls = getattr(module, "Plugin", None)
    if not (isinstance(cls, type) and issubclass(cls, PluginBase)):
        raise PluginError(f"{where}: defines no class Plugin(engine.PluginBase)",
                          hint="name helper modules with a leading underscore")
    return cls


def group_plugins(group: str, bundle: Optional[pathlib.Path] = None,
                  root: Optional[pathlib.Path] = None
                  ) -> List[Tuple[Type[PluginBase], pathlib.Path]]:
    """Plugin classes of `installer/plugins/<group>/`, by module name; a group
    folder that does not exist contributes nothing. A group package may define
    `extra_plugin_dirs(bundle, root) -> [dirs]` to load plugins found at run time
    (vdsm custom hook plugins shipped in the bundle)."""
    name = f"{PACKAGE}.{group}"
    try:
        package = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, PACKAGE):
            return []
        raise
    out = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{name}.{info.name}")
        cls = _plugin_class(module, f"{name}.{info.name}")
        out.append((cls, pathlib.Path(module.__file__ or name).parent))
    extra = getattr(package, "extra_plugin_dirs", None)
    if callable(extra):
        for directory in extra(bundle, root) or ():
            out.extend(directory_plugins(pathlib.Path(directory)))
    return out


def directory_plugins(directory: pathlib.Path) -> List[Tuple[Type[PluginBase], pathlib.Path]]:
    """Plugins of an extra directory: each `*.py` file and each folder with an
    `__init__.py` (a plugin with files beside it, as otopi's driverdeploy)."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise PluginError(f"plugin directory {directory} does not exist")
    tag = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:10]
    out = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_file() and entry.suffix == ".py":
            module = _load(f"satchel_ext_{tag}_{entry.stem}", entry, None)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            module = _load(f"satchel_ext_{tag}_{entry.name}", entry / "__init__.py", entry)
        else:
            continue
        out.append((_plugin_class(module, str(entry)), entry if entry.is_dir() else directory))
    return out


def _load(name: str, path: pathlib.Path, package_dir: Optional[pathlib.Path]) -> types.ModuleType:
    locations = [str(package_dir)] if package_dir is not None else None
    spec = importlib.util.spec_from_file_location(name, path,
                                                  submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SatchelError:
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise PluginError(f"plugin {path} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def load_plugins(groups: Sequence[str], plugin_dirs: Sequence[pathlib.Path],
                 bundle: Optional[pathlib.Path] = None, root: Optional[pathlib.Path] = None
                 ) -> List[Tuple[Type[PluginBase], pathlib.Path]]:
    out = []
    for group in groups:
        out.extend(group_plugins(group, bundle, root))
    for directory in plugin_dirs:
        out.extend(directory_plugins(pathlib.Path(directory)))
    return out

