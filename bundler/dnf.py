"""rpm and dnf into a temporary root, with the rpm database where EL expects it.

Debian's rpm keeps its database in ~/.rpmdb unless told otherwise. `rpm` takes
`--dbpath`; dnf does not, so it runs with a private HOME whose .rpmmacros sets
`%_dbpath /var/lib/rpm` (the real ~/.rpmmacros is never touched). Everything
else dnf keeps (cache, logs, history) lands inside the root, which dnf prefixes
to its paths under --installroot.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from bundler.run import check_tool, run

DBPATH = "/var/lib/rpm"


def rpm_root(root: Path, args: Sequence[str], *, capture: bool = True,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run `rpm --root ROOT --dbpath /var/lib/rpm ARGS...`."""
    check_tool("rpm", hint="install it: apt-get install rpm")
    return run(["rpm", "--root", str(root), "--dbpath", DBPATH, *args],
               capture=capture, check=check)


def installed(root: Path) -> list[str]:
    """The NEVRAs installed in root's rpm database, sorted."""
    out = rpm_root(root, ["-qa", "--qf", "%{NEVRA}\\n"]).stdout.decode()
    return sorted(line for line in out.splitlines() if line)


def dnf_installroot(root: Path, repo: Path, args: Sequence[str], *,
                    releasever: str = "9", repo_id: str = "satchel",
                    capture: bool = True,
                    check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run dnf into root with `repo` (a directory with repodata/) as its only repo.

    No system repo, no weak dependencies, no GPG check (the bundle's SHA256SUMS
    and manifest vouch for its RPMs). `args` is the dnf command, e.g.
    ["install", "demo-app"]; `-y` is added.
    """
    from installer.restore.packages import _scratch

    check_tool("dnf", hint="install it: apt-get install dnf")
    root = Path(root).resolve()
    # dnf's cache in a scratch dir inside the root, named relative to it (dnf reads a
    # --setopt cachedir as a host path: an absolute one wrote into the host's /var).
    with _scratch(root) as scratch:
        home = root / scratch / "home"
        home.mkdir(mode=0o700)
        (home / ".rpmmacros").write_text(f"%_dbpath {DBPATH}\n", encoding="utf-8")
        argv = [
            "dnf", f"--installroot={root}", f"--releasever={releasever}",
            "--setopt=reposdir=/nonexistent", "--disablerepo=*",
            f"--repofrompath={repo_id},file://{Path(repo).resolve()}",
            f"--enablerepo={repo_id}", "--nogpgcheck",
            "--setopt=install_weak_deps=False", "--setopt=keepcache=False",
            f"--setopt=cachedir={scratch}/cache",
            "-y", *args,
        ]
        return run(argv, env={"HOME": str(home)}, capture=capture, check=check, cwd=root)
