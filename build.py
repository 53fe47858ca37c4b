#!/usr/bin/env python3
"""satchel's builder: a recipe or a live node becomes a verified bundle.

Thin on purpose: parses arguments, calls `bundler`, and is the one place where
errors become messages and exit codes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional

from installer.errors import EXIT_FAILED, EXIT_OK, SatchelError

EPILOG = """exit codes:
  0  done (verify: every checksum holds)
  1  the build failed (nothing was left at the output path) / verification failed
  2  bad input: recipe, arguments, sources, an existing output without --force
"""

log = logging.getLogger("satchel")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="build.py", description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="log every command; tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build a bundle from a recipe", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("recipe", type=Path, help="a recipe, e.g. recipes/demo.toml")
    _output_args(b)

    s = sub.add_parser("snapshot", help="capture a live node (or a prepared root) into a "
                                        "bundle: its RPMs, changed configs, database, keys",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("recipe", type=Path, help="a recipe naming packages, trees, database")
    s.add_argument("--source-root", type=Path, default=Path("/"),
                   help="the node's root directory (default: /)")
    s.add_argument("--allow-missing", action="store_true",
                   help="record RPMs that cannot be found as warnings instead of failing")
    _output_args(s)

    d = sub.add_parser("demo", help="build the demo bundle (RPMs, a throwaway PostgreSQL, "
                                    "a cert) and show what is in it")
    d.add_argument("--out", type=Path, default=Path("out/demo"),
                   help="output path (default: out/demo)")
    d.add_argument("--format", choices=["dir", "tar", "iso"], default="dir")

    i = sub.add_parser("inspect", help="show what is in a bundle, without unpacking it")
    i.add_argument("bundle", type=Path, help="a bundle directory, .tar.zst or .iso")
    i.add_argument("--json", action="store_true", help="machine-readable output")

    v = sub.add_parser("verify", help="check every checksum of a bundle")
    v.add_argument("bundle", type=Path, nargs="+",
                   help="a bundle directory, .tar.zst or .iso; or volumes of a "
                        "multi-volume bundle (directories or .iso, one or all)")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True,
                   help="output path; .tar.zst or .iso is appended for those formats")
    p.add_argument("--format", choices=["dir", "tar", "iso"], default="dir",
                   help="dir (default), tar (.tar.zst) or iso")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout; progress as JSON lines on stderr")
    p.add_argument("--medium", choices=["usb", "dvd", "dvd-dl", "bd"],
                   help="write volumes sized for this medium (usb: one volume, files over "
                        "4 GiB - 1 split; discs: 4.7 GB, 8.5 GB, 25 GB per volume)")
    p.add_argument("--split-size", type=_size, metavar="SIZE",
                   help="at most SIZE per volume (700M, 4G = powers of 1024; 4GB = of 1000; "
                        "or bytes)")


def _size(text: str) -> int:
    from bundler.media import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _medium(args: argparse.Namespace) -> Any:
    from bundler.media import medium_for

    return medium_for(args.medium, args.split_size, iso=args.format == "iso",
                      archive=args.format == "tar")


def cmd_build(args: argparse.Namespace) -> int:
    from bundler import recipe as recipes
    from bundler.build import build
    from bundler.output import OutputFormat
    from bundler.progress import Progress

    medium = _medium(args)
    r = recipes.load(args.recipe)
    result = build(r, args.out, OutputFormat(args.format), force=args.force,
                   progress=Progress(json_lines=args.json), medium=medium)
    return _report(args, result)


def _report(args: argparse.Namespace, result: Any) -> int:
    files = result.manifest["files"]
    if args.json:
        json.dump({"bundle": str(result.path), "format": result.format.value,
                   "files": len(files), "size": sum(f["size"] for f in files),
                   "seconds": round(result.seconds, 3),
                   "volumes": [str(v) for v in result.volumes]}, sys.stdout)
        sys.stdout.write("\n")
    elif len(result.volumes) > 1:
        print(f"bundle written to {len(result.volumes)} volumes ({len(files)} files, "
              f"{result.seconds:.1f}s):")
        for v in result.volumes:
            print(f"  {v}")
    else:
        print(f"bundle written to {result.path} ({len(files)} files, "
              f"{result.seconds:.1f}s)")
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    from bundler import recipe as recipes
    from bundler.output import OutputFormat
    from bundler.progress import Progress
    from bundler.snapshot import snapshot

    medium = _medium(args)
    r = recipes.load(args.recipe)
    result = snapshot(r, args.source_root, args.out, OutputFormat(args.format),
                      force=args.force, allow_missing=args.allow_missing,
                      progress=Progress(json_lines=args.json), medium=medium)
    return _report(args, result)


def cmd_demo(args: argparse.Namespace) -> int:
    from bundler import demo
    return demo.run(args.out, args.format)


def cmd_inspect(args: argparse.Namespace) -> int:
    from bundler.verify import read_manifest
    from installer.bundle import print_summary, summary

    s = summary(read_manifest(args.bundle))
    if args.json:
        json.dump(s, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print_summary(s)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from bundler.verify import verify

    report = verify(*args.bundle)
    needed = getattr(report, "needed", None)  # volumes of the set not given
    if args.json:
        json.dump({"ok": report.ok, "checked": report.checked, "bytes": report.bytes,
                   "missing": report.missing, "altered": report.altered,
                   "extra": report.extra, "problems": report.problems,
                   **({"needed": needed} if needed is not None else {})}, sys.stdout)
        sys.stdout.write("\n")
    elif needed is not None:
        from installer.restore.volumes import print_report

        return print_report(report)  # type: ignore[arg-type]
    elif report.ok:
        print(f"OK: {report.checked} files verified in {args.bundle[0]}")
    else:
        for line in report.lines():
            print(f"FAILED: {line}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


COMMANDS = {"build": cmd_build, "snapshot": cmd_snapshot, "demo": cmd_demo, "inspect": cmd_inspect,
            "verify": cmd_verify}


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except SatchelError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        if args.debug:
            raise
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was left at the output path", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:
        if args.debug:
            raise
        print(f"error: internal error: {e!r}", file=sys.stderr)
        print("hint: this is a bug in satchel; run with --debug for the traceback",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
