"""Entry point of the vmcatcher event handler: `main(argv, environ) -> exit code`.

vmcatcher runs it once per event with the event in the environment.  It never
prompts, takes a lock so two runs never interleave, and logs everything (never
the credentials) to <root>/var/log/satchel/vmcatcher.log.
"""

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import time
import traceback
from typing import Iterator, List, Mapping, Optional

from installer.errors import LockedError, SatchelError

from .config import load_config, read_credentials
from .event import Event
from .handler import handle_available, handle_expire
from .one import OpenNebula

log = logging.getLogger("satchel.vmcatcher")
CONFIG = "etc/satchel/vmcatcher.conf"
LOG = "var/log/satchel/vmcatcher.log"
STATE = "var/lib/satchel"


@contextlib.contextmanager
def hold_lock(path: str, timeout: float) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(f"another vmcatcher handler holds {path} "
                                      f"(waited {timeout:g} s)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="install vmcatcher handle",
        description="Handle one vmcatcher event (read from VMCATCHER_* variables).")
    p.add_argument("--root", default="/", help="the target's root directory (default /)")
    p.add_argument("--config", help=f"the handler's config (default <root>/{CONFIG})")
    p.add_argument("--debug", action="store_true", help="show tracebacks of bugs")
    return p


def _open_log(root: str) -> logging.Handler:
    path = os.path.join(root, LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s "
                                           "%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return handler


def run(root: str, config_path: str, event: Event) -> None:
    log.info("event %s for %r", event.type or "(no type)", event.identifier)
    if not (event.is_available or event.is_expire):
        log.info("nothing to do for this event")
        return
    cfg = load_config(config_path, root)
    session = read_credentials(cfg.credentials_file)
    with hold_lock(os.path.join(root, STATE, "vmcatcher.lock"), cfg.lock_timeout):
        one = OpenNebula(cfg.endpoint, session)
        if event.is_available:
            handle_available(one, cfg, event, os.path.join(root, STATE, "vmcatcher"))
        else:
            handle_expire(one, event)
    log.info("done")


def main(argv: Optional[List[str]] = None,
         environ: Optional[Mapping[str, str]] = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad command line (argparse printed why)
        return e.code if isinstance(e.code, int) else 2
    root = os.path.abspath(args.root)
    event = Event.from_environ(os.environ if environ is None else environ)
    try:
        handler = _open_log(root)
    except OSError as e:
        print(f"vmcatcher handler: error: cannot open the log: {e}", file=sys.stderr)
        return 1
    try:
        run(root, args.config or os.path.join(root, CONFIG), event)
        return 0
    except SatchelError as e:
        log.error("%s%s", e.message, f" (hint: {e.hint})" if e.hint else "")
        print(f"vmcatcher handler: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # a bug: logged in full, traceback on stderr under --debug
        log.exception("unexpected error")
        print(f"vmcatcher handler: internal error: {e!r}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return 1
    finally:
        log.removeHandler(handler)
        handler.close()


if __name__ == "__main__":
    sys.exit(main())
