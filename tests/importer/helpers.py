"""Helpers of the import tests: target roots, running `install import`, snapshots of a
root, and stopping a run at a checkpoint (SATCHEL_STOP_AT) to kill it there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from bundler.dnf import rpm_root
from tests.treesnap import tree

REPO = Path(__file__).resolve().parents[2]
SDE = 1767225600
OS_RELEASE = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'


def make_root(root: Path, rpms: Path) -> Path:
    """A target root: os-release, passwd/group with nobody, demo-base in its rpmdb."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "nobody:x:65534:65534:nobody:/:/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\nnobody:x:65534:\n")
    base = next(rpms.glob("demo-base-*.rpm"))
    rpm_root(root, ["-i", "--nodeps", str(base)])
    return root


def snapshot(root: Path) -> Dict[str, Tuple[object, ...]]:
    """Every path of the root with type, mode, owner and content; satchel's own
    logs, and the rpmdb's and dnf's files (compared with rpm -qa instead), left out."""
    return tree(root, lambda rel: rel.startswith((
        "var/log/satchel", "var/lib/rpm", "var/lib/dnf", "var/cache/dnf", "var/log/dnf",
        "var/log/hawkey")))


def differences(a: Dict[str, Any], b: Dict[str, Any]) -> set:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def import_argv(bundle: Path, root: Path, *extra: str, module: bool = False) -> list:
    """The command line of an import: the bundle's own `install` file with the
    system python3 (as on a target), or `python -m installer --bundle` with this
    Python (which has psycopg2, for bundles with a database)."""
    if module:
        return [sys.executable, "-m", "installer", "import", "--bundle", str(bundle),
                "--root", str(root), "--unattended", *extra]
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    return [python, str(bundle / "install"), "import", "--root", str(root),
            "--unattended", *extra]


def run_import(bundle: Path, root: Path, *extra: str, env: Optional[Dict[str, str]] = None,
               module: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(import_argv(bundle, root, *extra, module=module), cwd=REPO,
                          capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _stopped(session: int) -> Optional[int]:
    """A stopped process (state T) of the session `session`, or None."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] in ("T", "t") and int(fields[3]) == session:
            return int(d.name)
    return None


def kill_at(argv: Sequence[str], stop_at: str, timeout: float = 180) -> int:
    """Run `argv` with SATCHEL_STOP_AT=stop_at in a new session, wait until one of
    its processes has stopped itself there, then kill -9 the whole session.
    Returns the pid that had stopped. Fails if the run ends before stopping."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(argv), cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "SATCHEL_STOP_AT": stop_at},
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                pid = _stopped(proc.pid)
                if pid is not None:
                    break
                if proc.poll() is not None:
                    out.seek(0)
                    raise AssertionError(f"the run ended (exit {proc.returncode}) before "
                                         f"stopping at {stop_at}:\n"
                                         + out.read().decode(errors="replace"))
                assert time.monotonic() < deadline, f"no stop at {stop_at} in {timeout}s"
                time.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return pid


def state_without_runs(root: Path) -> Any:
    """The state registry with the run ids (which differ between runs) taken out."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "run"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads((root / "var/lib/satchel/state.json").read_text()))
