"""Prerequisites: a supported runtime is installed (engine-setup's check for a
supported Java VM). Changes nothing: it finds the runtime, or refuses the run
before any change naming what it found and what is needed.

    [setup.runtime]
    name = "Java VM"                   # optional (default "Java VM"): used in messages
    min_version = "17"                 # required: dotted numbers
    candidates = ["/usr/lib/jvm/engine-jre-17", "/usr/lib/jvm/jre-17"]   # required

A directory qualifies when its `release` file (a JDK's, as in every OpenJDK build)
has a JAVA_VERSION of at least min_version. Versions compare numerically, component
by component, missing components counting as 0 ("17.0.9" >= "17"); Java's old
scheme `1.<major>.<minor>_<update>` reads as `<major>.<minor>.<update>` ("1.8.0_392"
is 8.0.392; min_version "1.8" means 8). Anything after the numbers ("-ea", "+7")
is ignored.

The runtime found is SETUP_RUNTIME/javaHome, which the service configuration reads.
An answered directory is checked the same way (a bad one is an InputError naming
the key). A value kept from the previous setup that no longer qualifies (the
runtime was updated) is replaced by the first candidate that does, with a note.

Answer keys:

  SETUP_RUNTIME/javaHome=path:DIR   the runtime's directory (JAVA_HOME); default: the
                                    first candidate whose release file is recent enough
"""

from __future__ import annotations

import re
from typing import Any, List, Mapping, Optional, Tuple

from installer import engine
from installer.engine import Stages
from installer.engine.environment import DEFAULT, PREVIOUS
from installer.errors import InputError, RefusedError
from installer.plugins.setup import _config

KEY = "SETUP_RUNTIME/javaHome"
KEYS = (
    engine.Key(KEY, "path", default=None,
               doc="the Java runtime's directory (JAVA_HOME); default: the first of the "
                   "recipe's candidates with a recent enough release file"),
)
SPEC = {"name": (str, False), "min_version": (str, True), "candidates": (list, True)}
DOTTED = re.compile(r"^[0-9]+(\.[0-9]+)*$")
LEADING = re.compile(r"^([0-9]+(?:\.[0-9]+)*)(?:_([0-9]+))?")

Version = Tuple[int, ...]


def check_section(table: Mapping[str, Any]) -> List[str]:
    problems = _config.check_table(table, SPEC)
    name = table.get("name")
    if isinstance(name, str) and (not name.strip() or "\n" in name):
        problems.append(f"name: {name!r} is not a one-line name")
    version = table.get("min_version")
    if isinstance(version, str) and not DOTTED.match(version):
        problems.append(f"min_version: {version!r} is not a dotted numeric version "
                        "(like \"17\" or \"11.0.2\")")
    candidates = table.get("candidates")
    if isinstance(candidates, list):
        if not candidates:
            problems.append("candidates: empty (name at least one directory)")
        for i, path in enumerate(candidates):
            problem = _config.absolute(path)
            if problem:
                problems.append(f"candidates[{i}]: {problem}")
    return problems


def parse_version(text: str) -> Optional[Version]:
    """(17, 0, 9) for "17.0.9"; (8, 0, 392) for "1.8.0_392"; None when it does not
    start with a number."""
    m = LEADING.match(text.strip())
    if not m:
        return None
    parts = [int(p) for p in m.group(1).split(".")]
    if parts[0] == 1 and len(parts) > 1:  # Java's old scheme: 1.8.0 is 8.0
        parts = parts[1:]
    if m.group(2) is not None:
        parts.append(int(m.group(2)))
    return tuple(parts)


def at_least(version: Version, minimum: Version) -> bool:
    width = max(len(version), len(minimum))
    return version + (0,) * (width - len(version)) >= minimum + (0,) * (width - len(minimum))


def show(version: Version) -> str:
    return ".".join(str(p) for p in version)


class Plugin(engine.PluginBase):
    KEYS = KEYS

    def _section(self) -> Tuple[str, str, List[str]]:
        section = _config.load(self).section("runtime")
        return (str(section.get("name", "Java VM")), str(section["min_version"]),
                [str(c) for c in section["candidates"]])

    def inspect(self, directory: str) -> Tuple[Optional[Version], str]:
        """(version, what was found) for a runtime directory on the target."""
        try:
            home = self.resolve(directory)
        except InputError as exc:
            return None, exc.message
        if not home.is_dir():
            return None, "absent"
        release = home / "release"
        try:
            text = release.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None, "no release file"
        except OSError as exc:
            return None, f"release file unreadable ({exc.strerror})"
        raw = None
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() == "JAVA_VERSION":
                raw = value.strip().strip("\"'")
        if raw is None:
            return None, "no JAVA_VERSION in its release file"
        version = parse_version(raw)
        if version is None:
            return None, f"unreadable JAVA_VERSION {raw!r}"
        return version, f"version {raw}"

    def _verdict(self, directory: str) -> Tuple[bool, str]:
        minimum = self._section()[1]
        version, found = self.inspect(directory)
        wanted = parse_version(minimum)
        assert wanted is not None  # check_section validated it
        if version is None:
            return False, found
        if not at_least(version, wanted):
            return False, f"{found} (too old)"
        return True, found

    def _first_good(self) -> Optional[str]:
        for directory in self._section()[2]:
            if self._verdict(directory)[0]:
                return directory
        return None

    @engine.event(stage=Stages.CUSTOMIZATION, name="setup.prereq.ask",
                  condition=lambda self: _config.configured(self, "runtime"))
    def _ask(self) -> None:
        source = self.env.source(KEY)
        if source == PREVIOUS and not self._verdict(str(self.env[KEY]))[0]:
            found = self._first_good()
            if found is not None:
                self.dialog.note(f"{KEY}: {self.env[KEY]} of the previous setup no longer "
                                 f"qualifies; using {found}")
                self.env.set(KEY, found, source=DEFAULT)
        elif source == DEFAULT and self.env[KEY] is None:
            found = self._first_good()
            if found is not None:
                self.env.set(KEY, found, source=DEFAULT)
        if self.env[KEY] is None and self.dialog.unattended:
            return  # validation names what was found and what is needed
        name, minimum, _ = self._section()
        self.dialog.ask(KEY, f"Directory of the {name} (at least {minimum})")

    @engine.event(stage=Stages.VALIDATION, name="setup.prereq.check",
                  priority=engine.PRIO_HIGH,
                  condition=lambda self: _config.configured(self, "runtime"))
    def _check(self) -> None:
        name, minimum, candidates = self._section()
        home = self.env[KEY]
        if home is not None:
            problem = _config.absolute(str(home))
            if problem:
                raise InputError(f"{KEY}: {problem}")
            ok, found = self._verdict(str(home))
            if not ok:
                raise InputError(
                    f"{KEY}: {home} is not a {name} of at least version {minimum}: {found}",
                    hint=f"give the directory of a {name} >= {minimum} (its release file "
                         "names JAVA_VERSION)")
            self.log.info("%s: %s (%s)", name, home, found)
            return
        lines = [f"  {d}: {self._verdict(d)[1]}" for d in candidates]
        raise RefusedError(
            f"no {name} of at least version {minimum} found; looked in:\n" + "\n".join(lines),
            hint=f"install a {name} >= {minimum} in one of these directories, or give its "
                 f"directory with --set {KEY}=DIR; nothing was changed")
