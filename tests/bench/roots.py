"""Roots and servers the snapshot and import jobs need, made outside the timed part.

- `target_root(root)`: the smallest root the import's compatibility gate accepts
  (os-release of an EL9, passwd and group), as a freshly installed target would be.
- `source_root(where, node)`: a node to snapshot: the generated RPMs installed with
  dnf (so the root has an rpmdb at /var/lib/rpm) and the config tree under etc/.
- `TargetServer`: a second throwaway PostgreSQL on 127.0.0.1, the target's own
  server, into which both sides of the import restore; its superuser password is
  in a 0600 file (the import reads it through DB/passwordFile, the baseline's
  pg_restore through PGPASSFILE); never on a command line.

Everything runs into directories under the benchmark's work directory, never /.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Optional

from bundler.dnf import DBPATH
from bundler.pgcluster import Cluster
from tests.bench.generate import Node

OS_RELEASE = ('NAME="satchel benchmark target"\nID="rhel"\nID_LIKE="fedora"\n'
              'VERSION_ID="9.4"\n')
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"


def target_root(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(OS_RELEASE, encoding="utf-8")
    (root / "etc/passwd").write_text(PASSWD, encoding="utf-8")
    (root / "etc/group").write_text(GROUP, encoding="utf-8")
    return root


def dnf_home(home: Path) -> Path:
    """A HOME for the baseline's dnf whose .rpmmacros puts the rpmdb where EL has it
    (Debian's rpm would use ~/.rpmdb): the same thing satchel's dnf calls do."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".rpmmacros").write_text(f"%_dbpath {DBPATH}\n", encoding="utf-8")
    return home


def local_repo(where: Path, rpm_dir: Path) -> Path:
    """The node's RPMs (hard links) with createrepo_c metadata."""
    where.mkdir(parents=True)
    for rpm in sorted(rpm_dir.glob("*.rpm")):
        os.link(rpm, where / rpm.name)
    subprocess.run(["createrepo_c", "--quiet", "--no-database", str(where)], check=True)
    return where


def dnf_install(root: Path, repo: Path, home: Path, *specs: str) -> None:
    """dnf install into root from repo alone. No --setopt=cachedir: dnf keeps its
    cache in the installroot by default, while a cachedir given on the command
    line is a path on the host (bundler.dnf's "/var/cache/dnf" lands in the host's)."""
    subprocess.run(["dnf", "-y", "-q", f"--installroot={root}", "--releasever=9",
                    "--setopt=reposdir=/nonexistent", "--disablerepo=*",
                    f"--repofrompath=bench,{repo.resolve().as_uri()}", "--enablerepo=bench",
                    "--nogpgcheck", "--setopt=install_weak_deps=False",
                    "--setopt=keepcache=False", "install", *specs],
                   check=True, env={**os.environ, "HOME": str(home)},
                   stdin=subprocess.DEVNULL, capture_output=True)


def source_root(where: Path, node: Node) -> Path:
    """A node as an admin would have it: the packages installed with dnf from a
    local repo, then its configuration tree (modes and mtimes kept) under etc/."""
    root = target_root(where / "root")
    repo = local_repo(where / "repo", node.rpm_dir)
    dnf_install(root, repo, dnf_home(where / "home"), "bench-*")
    shutil.copytree(node.tree / "etc", root / "etc", dirs_exist_ok=True)
    return root


class TargetServer:
    """The import target's PostgreSQL: `start()` (or `start_in_background()` then
    `wait()`), `drop(names)`, `stop()`."""

    def __init__(self, basedir: Path) -> None:
        basedir.mkdir(parents=True)
        os.chmod(basedir, 0o711)  # the postgres user must reach the cluster under it
        self.password_file = basedir / "password"
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
        self.cluster = Cluster(basedir / "pg")
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None

    def start(self) -> None:
        self.cluster.init(superuser_password_file=self.password_file)
        self.cluster.start()

    def start_in_background(self) -> None:
        """initdb and start beside other untimed work (the source database's load)."""
        def target() -> None:
            try:
                self.start()
            except BaseException as e:  # raised again by wait()
                self._error = e

        self._thread = threading.Thread(target=target, name="target-postgres")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is None:
            self.start()
            return
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self.cluster.stop()

    def drop(self, *names: str) -> None:
        for name in names:
            self.cluster.drop_database(name)

    def answers(self, path: Path) -> Path:
        """An answer file for `install import`: where the server is, and the file
        holding the password (the password itself is in no answer and no argv)."""
        c = self.cluster
        path.write_text("[environment:default]\n"
                        f"DB/host=str:{c.host}\nDB/port=int:{c.port}\n"
                        f"DB/user=str:{c.superuser}\n"
                        f"DB/passwordFile=path:{self.password_file}\n", encoding="utf-8")
        return path
