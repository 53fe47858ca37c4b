"""The installer's command line: `install ACTION [options]`.

One top-level handler: a SatchelError prints `error: ...` and `hint: ...` and
returns its exit code; anything else is a bug, with a traceback under --debug.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from installer import VERSION
from installer.errors import EXIT_FAILED, EXIT_USAGE, SatchelError

EXIT_CODES = """\
exit codes:
  0  done
  1  failed and rolled back
  2  usage error or bad input (arguments, answers, bundle)
  3  refused by validation, nothing changed
  4  locked: another run is in progress
  5  rollback incomplete, manual action needed (the list is printed)

environment:
  SATCHEL_FAIL_AT=STAGE  make the run fail at the start of STAGE (to try rollback)
"""


def find_bundle(explicit: Optional[str]) -> Optional[pathlib.Path]:
    """--bundle DIR, else the directory of the running zipapp if it holds a
    manifest.json, else None."""
    if explicit:
        return pathlib.Path(os.path.abspath(explicit))
    here = pathlib.Path(os.path.abspath(sys.argv[0] or ".")).parent
    return here if (here / "manifest.json").is_file() else None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/", metavar="DIR",
                        help="install into DIR instead of / (default: /)")
    parser.add_argument("--answers", action="append", default=[], metavar="FILE",
                        help="answer file (otopi INI form); may be repeated, later wins")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="set an environment key (wins over answers)")
    parser.add_argument("--unattended", action="store_true",
                        help="ask nothing; a missing answer is an error naming the key")
    parser.add_argument("--dialog", choices=("human", "machine"), default="human",
                        help="human prompts, or JSON lines on stdout (answers on stdin)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run up to validation, print the plan, change nothing")
    parser.add_argument("--log", metavar="FILE",
                        help="log file (default: ROOT/var/log/satchel/ACTION-TIME.log)")
    parser.add_argument("--debug", action="store_true",
                        help="show debug output, the plugin sequence and tracebacks")
    parser.add_argument("--plugin-dir", action="append", default=[], metavar="DIR",
                        help="load extra plugins from DIR; may be repeated")
    parser.add_argument("--generate-answer", metavar="FILE",
                        help="write this run's answers to FILE (mode 0600)")
    parser.add_argument("--generate-answer-secrets", action="store_true",
                        help="include secret answers in --generate-answer")
    parser.add_argument("--bundle", metavar="DIR",
                        help="the bundle directory (default: the directory of this program)")


Hooks = List[Callable[..., Any]]


def _group_hooks(groups: Sequence[str]) -> Tuple[Hooks, Hooks]:
    """add_arguments / settings_from_args defined by the action's group packages."""
    adders, readers = [], []
    for group in groups:
        name = f"installer.plugins.{group}"
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        if callable(getattr(package, "add_arguments", None)):
            adders.append(package.add_arguments)
        if callable(getattr(package, "settings_from_args", None)):
            readers.append(package.settings_from_args)
    return adders, readers


def _engine_options(p: argparse.ArgumentParser, action: Any) -> List[Callable[..., Any]]:
    """The options of an engine run of `action` on `p`; returns its settings readers."""
    _common(p)
    adders, group_readers = _group_hooks(action.groups)
    if action.add_arguments:
        adders.insert(0, action.add_arguments)
    if action.settings_from_args:
        group_readers.insert(0, action.settings_from_args)
    for add in adders:
        add(p)
    return group_readers


def keys_help(groups: Sequence[str]) -> str:
    """The answer keys of an action's plugins, for its --help."""
    from installer.engine.loader import group_plugins

    lines: List[str] = []
    seen = set()
    for group in groups:
        try:
            classes = [cls for cls, _ in group_plugins(group)]
        except Exception:  # --help must work even when a plugin does not load
            continue
        for cls in classes:
            for key in cls.KEYS:
                if key.name in seen:
                    continue
                seen.add(key.name)
                kind = key.type if isinstance(key.type, str) else getattr(
                    key.type, "__name__", str(key.type))
                kind = "path" if "Path" in kind else kind
                extra = [kind]
                if key.choices:
                    extra.append("one of " + ", ".join(str(c) for c in key.choices))
                if key.default is not None:
                    extra.append(f"default {key.default}")
                if key.required:
                    extra.append("required")
                if key.secret:
                    extra.append("secret")
                lines.append(f"  {key.name} ({'; '.join(extra)})")
                if key.doc:
                    lines.append(f"      {key.doc}")
    if not lines:
        return ""
    return ("answer keys (--set KEY=VALUE, or KEY=type:value in an answer file):\n"
            + "\n".join(sorted_blocks(lines)) + "\n\n")


def sorted_blocks(lines: List[str]) -> List[str]:
    """Sort key lines by name, each with its doc line."""
    blocks: List[List[str]] = []
    for line in lines:
        if line.startswith("      ") and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return [ln for block in sorted(blocks) for ln in block]


def _verb_entry(argv: Sequence[str]) -> Optional[Callable[..., int]]:
    """The entry function of `ACTION VERB` when that verb runs without the engine."""
    from installer.engine.actions import ACTIONS

    action = ACTIONS.get(argv[0]) if argv else None
    for verb in action.verbs if action and len(argv) > 1 else ():
        if verb.name == argv[1] and verb.entry:
            module, _, func = verb.entry.partition(":")
            entry: Callable[..., int] = getattr(importlib.import_module(module), func)
            return entry
    return None


def build_parser(words: Sequence[str] = ()
                 ) -> Tuple[argparse.ArgumentParser, Dict[str, List[Callable[..., Any]]]]:
    """The parser; `words` (the command line) tells which action's help to fill
    with its answer keys (loading every plugin only for the help asked for)."""
    from installer.engine.actions import ACTIONS

    parser = argparse.ArgumentParser(
        prog="install", description="satchel installer: bring a bundle to life on this host",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"satchel {VERSION}")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    readers: Dict[str, List[Callable[..., Any]]] = {}
    for action in ACTIONS.values():
        wants_help = bool(words) and words[0] == action.name and (
            "-h" in words or "--help" in words)
        epilog = (keys_help(action.groups) if wants_help else "") + EXIT_CODES
        p = sub.add_parser(action.name, help=action.help, description=action.help,
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        if not action.verbs:
            readers[action.name] = _engine_options(p, action)
            if action.name == "import":
                p.add_argument("--volume", action="append", default=[], metavar="DIR",
                               help="another volume of a multi-volume bundle (a mount point "
                                    "or directory); repeat for each; volumes not given are "
                                    "asked for, unless --unattended")
            continue
        verbs = p.add_subparsers(dest="verb", metavar="VERB")
        verbs.required = True
        for verb in action.verbs:
            if verb.entry:  # main() hands its arguments to the entry before parsing
                verbs.add_parser(verb.name, help=verb.help, add_help=False)
                continue
            vp = verbs.add_parser(verb.name, help=verb.help, description=verb.help,
                                  epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
            readers[action.name] = _engine_options(vp, action)
    for name in BUNDLE_ACTIONS:
        _bundle_options(sub.add_parser(name, help=BUNDLE_ACTIONS[name],
                                       description=BUNDLE_ACTIONS[name], epilog=EXIT_CODES,
                                       formatter_class=argparse.RawDescriptionHelpFormatter),
                        name)
    return parser, readers


BUNDLE_ACTIONS = {"verify": "check every checksum of the bundle (SHA256SUMS, via the manifest)",
                  "inspect": "show what the bundle holds; changes nothing"}


def _bundle_options(p: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    if name == "verify":
        p.add_argument("path", nargs="*", metavar="BUNDLE",
                       help="bundle directory (default: the one this program runs from); "
                            "for a multi-volume bundle, one or more of its volumes")
    else:
        p.add_argument("path", nargs="?", metavar="BUNDLE",
                       help="bundle directory (default: the one this program runs from)")
    p.add_argument("--bundle", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    if name == "inspect":
        p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _bundle_main(words: Sequence[str]) -> int:
    """verify and inspect without loading the engine or any plugin (fast start)."""
    name = words[0]
    p = _bundle_options(argparse.ArgumentParser(
        prog=f"install {name}", description=BUNDLE_ACTIONS[name], epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter), name)
    try:
        args = p.parse_args(words[1:])
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.action = name
    if not hasattr(args, "json"):
        args.json = False
    return _bundle_action(args)


def _bundle_action(args: argparse.Namespace) -> int:
    paths = args.path if isinstance(args.path, list) else [args.path] if args.path else []
    path = find_bundle(paths[0] if paths else args.bundle)
    if path is None:
        from installer.errors import InputError

        raise InputError("no bundle found next to the installer", hint="give its directory")
    from installer import bundle  # the lead's module; imported only here

    if args.action == "verify":
        result = bundle.verify_bundle(path, [pathlib.Path(p) for p in paths[1:]])
    else:
        result = bundle.inspect_bundle(path, args.json)
    return result if isinstance(result, int) else 0


def _engine_action(args: argparse.Namespace, readers: List[Callable[..., Any]]) -> int:
    from installer.engine import Runner

    settings: List[str] = []
    for read in readers:
        settings.extend(f"{k}={v}" for k, v in (read(args) or {}).items())
    settings.extend(args.settings)
    bundle = find_bundle(args.bundle)
    # A volume of a multi-volume bundle: every volume, read in place through a view.
    view = _volume_view(bundle, args) if args.action == "import" and bundle else None
    runner_bundle = view.path if view else bundle
    try:
        from installer import followup

        runner = Runner(
            args.action, root=args.root, plugin_dirs=args.plugin_dir, answers=args.answers,
            settings=settings, unattended=args.unattended, dialog=args.dialog,
            dry_run=args.dry_run, log_file=args.log, debug=args.debug,
            bundle=runner_bundle, generate_answer=args.generate_answer,
            generate_answer_secrets=args.generate_answer_secrets,
            foreign_keys=followup.import_foreign_keys(runner_bundle)
            if args.action == "import" else ())
        code = runner.run()
        if code == 0 and args.action == "import":  # setup, when the recipe asks for it
            code = followup.setup_after_import(args, settings, runner.bundle)
        return code
    finally:
        if view is not None:
            view.close()


def _volume_view(bundle: pathlib.Path, args: argparse.Namespace) -> Any:
    """The volumes of a multi-volume bundle (from --volume, else asked for when a
    human is at the terminal) as one read-only view; None for a plain bundle."""
    from installer.restore import volumes

    if not volumes.is_volume(bundle):
        if args.volume:
            from installer.errors import InputError

            raise InputError(f"{bundle} is a single-volume bundle; --volume is for the "
                             "volumes of a multi-volume bundle")
        return None
    from installer.restore.volview import View

    interactive = not args.unattended and args.dialog == "human" and sys.stdin.isatty()
    vols = volumes.collect(bundle, [pathlib.Path(p) for p in args.volume],
                           ask=_ask if interactive else None)
    return View(vols)


def _ask(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline()


def entry() -> None:
    """For a zipapp built with `-m installer.cli:entry` (zipapp drops main()'s return)."""
    sys.exit(main())


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Never leave __pycache__ in a bundle, a target's plugin copies or /usr/libexec.
    sys.dont_write_bytecode = True
    words = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in words
    try:
        if words and words[0] in BUNDLE_ACTIONS:
            return _bundle_main(words)
        entry = _verb_entry(words)
        if entry is not None:  # e.g. `vmcatcher handle`: its own options, lock and log
            return entry(words[2:])
        parser, readers = build_parser(words)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors (2)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if args.action in ("verify", "inspect"):
            return _bundle_action(args)
        return _engine_action(args, readers[args.action])
    except SatchelError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        if exc.hint:
            sys.stderr.write(f"hint: {exc.hint}\n")
        if debug:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: unexpected error: {type(exc).__name__}: {exc}\n"
                         "hint: this is a bug; run with --debug for the traceback\n")
        return EXIT_FAILED
