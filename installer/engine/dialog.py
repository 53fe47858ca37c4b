"""Dialogs: human (prompts with defaults, hidden input for secrets), machine (JSON
lines on stdout, answers as lines on stdin) and unattended (either, asking nothing:
a missing answer is an error naming the key)."""

from __future__ import annotations

import getpass
import json
import sys
from typing import IO, Any, Callable, Optional

from installer.engine.environment import DIALOG, Environment
from installer.engine.keys import parse_bool
from installer.errors import InputError, SatchelError

_MAX_TRIES = 3


class Dialog:
    """`self.dialog` of plugins: ask(key, prompt), confirm(prompt), note(text)."""

    def __init__(self, env: Environment, unattended: bool = False,
                 stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None) -> None:
        self.env = env
        self.unattended = unattended
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout

    # -- the plugin-facing API ------------------------------------------------
    def ask(self, key: str, prompt: Optional[str] = None) -> Any:
        """The value of `key`: given by the user already (answer file, --set) ->
        that; unattended -> the current value, or InputError if it has none;
        otherwise ask, offering the current value as default. The answer is
        type-checked (asked again up to 3 times) and stored in the environment."""
        k = self.env.keys[key] if key in self.env else None
        if k is None:
            raise KeyError(f"undeclared environment key {key!r}")
        current = self.env[key]
        if self.env.answered(key):
            return current
        if self.unattended:
            if current is None:
                raise InputError(f"no value for {key} in unattended mode",
                                 hint=f"give it with --set {key}=VALUE or in an answer file")
            return current
        text = prompt or k.doc or key
        for _ in range(_MAX_TRIES):
            raw = self._question(key, text, current)
            if raw is None:
                raise InputError(f"no answer for {key}: input closed",
                                 hint=f"give it with --set {key}=VALUE or in an answer file")
            if raw == "" and current is not None:
                value = current
            else:
                try:
                    value = k.parse(raw)
                except (TypeError, ValueError) as exc:
                    self._invalid(key, str(exc))
                    continue
                if value is None or (value == "" and k.required):
                    self._invalid(key, "a value is required")
                    continue
            self.env.set(key, value, source=DIALOG)
            return value
        raise InputError(f"no valid answer for {key} after {_MAX_TRIES} tries")

    def confirm(self, prompt: str, default: bool = False, name: str = "confirm") -> bool:
        """Yes or no; unattended returns `default` without asking."""
        if self.unattended:
            return default
        for _ in range(_MAX_TRIES):
            raw = self._confirm(name, prompt, default)
            if raw is None:
                raise InputError(f"no answer to {prompt!r}: input closed")
            if raw.strip() == "":
                return default
            try:
                return parse_bool(raw)
            except ValueError as exc:
                self._invalid(name, str(exc))
        raise InputError(f"no valid answer to {prompt!r} after {_MAX_TRIES} tries")

    def note(self, text: str) -> None:
        """Tell the user something (not a question)."""
        raise NotImplementedError

    def error(self, error: SatchelError) -> None:
        """Report the run's error (the top-level handler calls this)."""
        raise NotImplementedError

    # -- per dialect --------------------------------------------------------------
    def _question(self, key: str, prompt: str, default: Any) -> Optional[str]:
        raise NotImplementedError

    def _confirm(self, name: str, prompt: str, default: bool) -> Optional[str]:
        raise NotImplementedError

    def _invalid(self, key: str, message: str) -> None:
        raise NotImplementedError

    def _readline(self) -> Optional[str]:
        line = self.stdin.readline()
        if not line:
            return None
        return line.rstrip("\r\n")


class HumanDialog(Dialog):
    """Prompts on a terminal; secrets are read without echo when stdin is a tty."""

    def __init__(self, env: Environment, unattended: bool = False,
                 stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None,
                 getpass_fn: Optional[Callable[[str], str]] = None,
                 stderr: Optional[IO[str]] = None) -> None:
        super().__init__(env, unattended, stdin, stdout)
        self.stderr = stderr if stderr is not None else sys.stderr
        self._getpass = getpass_fn

    def _question(self, key: str, prompt: str, default: Any) -> Optional[str]:
        k = self.env.keys[key]
        shown = ""
        if default is not None:
            shown = " [********]" if k.secret else f" [{_plain(default)}]"
        if k.choices:
            shown = f" ({', '.join(_plain(c) for c in k.choices)}){shown}"
        text = f"{prompt}{shown}: "
        if k.secret:
            if self._getpass is not None:
                return self._getpass(text)
            if self.stdin.isatty():
                try:
                    return getpass.getpass(text)
                except EOFError:
                    return None
        self.stdout.write(text)
        self.stdout.flush()
        return self._readline()

    def _confirm(self, name: str, prompt: str, default: bool) -> Optional[str]:
        self.stdout.write(f"{prompt} ({'Yes/no' if default else 'yes/No'}): ")
        self.stdout.flush()
        return self._readline()

    def _invalid(self, key: str, message: str) -> None:
        self.stdout.write(f"invalid answer for {key}: {message}\n")

    def note(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def error(self, error: SatchelError) -> None:
        self.stderr.write(f"error: {error.message}\n")
        if error.hint:
            self.stderr.write(f"hint: {error.hint}\n")
        self.stderr.flush()


class MachineDialog(Dialog):
    """One JSON object per line on stdout; answers are read as lines from stdin.

    {"type": "question", "key": K, "prompt": P, "value_type": T, "default": D,
     "secret": S, "choices": [...]}            -> one line: the value
    {"type": "confirm", "name": N, "prompt": P, "default": B} -> yes/no line
    {"type": "invalid", "key": K, "message": M}  (the question follows again)
    {"type": "note", "text": T}
    {"type": "error", "message": M, "hint": H, "exit_code": N}
    """

    def _emit(self, obj: Any) -> None:
        self.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
        self.stdout.flush()

    def _question(self, key: str, prompt: str, default: Any) -> Optional[str]:
        k = self.env.keys[key]
        shown = None if (k.secret or default is None) else _jsonable(default)
        self._emit({"type": "question", "key": key, "prompt": prompt, "value_type": k.kind,
                    "default": shown, "secret": k.secret,
                    "choices": [_jsonable(c) for c in k.choices] if k.choices else None})
        return self._readline()

    def _confirm(self, name: str, prompt: str, default: bool) -> Optional[str]:
        self._emit({"type": "confirm", "name": name, "prompt": prompt, "default": default})
        return self._readline()

    def _invalid(self, key: str, message: str) -> None:
        self._emit({"type": "invalid", "key": key, "message": message})

    def note(self, text: str) -> None:
        self._emit({"type": "note", "text": text})

    def error(self, error: SatchelError) -> None:
        self._emit({"type": "error", "message": error.message, "hint": error.hint,
                    "exit_code": error.exit_code})


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, (str, int, bool)) else str(value)


def make_dialog(kind: str, env: Environment, unattended: bool,
                stdin: Optional[IO[str]] = None, stdout: Optional[IO[str]] = None,
                stderr: Optional[IO[str]] = None) -> Dialog:
    if kind == "human":
        return HumanDialog(env, unattended, stdin, stdout, stderr=stderr)
    if kind == "machine":
        return MachineDialog(env, unattended, stdin, stdout)
    raise InputError(f"unknown dialog {kind!r} (human or machine)")
