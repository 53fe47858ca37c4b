"""A stand-in for setup in the cleanup tests that do not need the real setup
plugins: a plugin, run as action "setup", that writes files, directories,
symlinks and secrets through the transaction and records a database (a real one
the test made) and services, as setup's plugins record them."""

from __future__ import annotations

import io
import json
import secrets
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bundler.pgcluster import Cluster, pgpass_escape
from installer import engine

PLUGIN = '''
import json
from installer import engine
from installer.engine import Stages
from installer.engine.process import run

SPEC = json.loads(%r)


class Secret(engine.FileWrite):
    def records(self):
        out = super().records()
        for rec in out:
            if rec.get("kind") == "file":
                rec["sha256"], rec["secret"] = None, True
        return out


class Plugin(engine.PluginBase):
    @engine.event(stage=Stages.MISC)
    def _write(self):
        for path, mode in SPEC["dirs"]:
            self.transaction.append(engine.MakeDirs(path, mode=int(mode, 8)))
        for path, text, mode, secret in SPEC["files"]:
            cls = Secret if secret else engine.FileWrite
            self.transaction.append(cls(path, text.encode(), mode=int(mode, 8)))
        for path, target in SPEC["links"]:
            self.transaction.append(engine.Symlink(path, target))
        if SPEC["database"]:
            self.transaction.append(engine.CallbackElement(
                "database", do=lambda: None, undo=lambda: None,
                records=[dict(SPEC["database"], kind="database")]))
        for unit in SPEC["services"]:
            root = str(self.root)
            self.transaction.append(engine.CallbackElement(
                "enable " + unit,
                do=lambda u=unit: run(["systemctl", "--root=" + root, "enable", u]),
                undo=lambda u=unit: run(["systemctl", "--root=" + root, "disable", u]),
                records=[{"kind": "service", "name": unit, "enabled": True,
                          "started": False, "main": True}]))
'''

UNIT = """[Unit]
Description=fake {name}

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target
"""

SETUP_DIR = "/var/lib/satchel/setup"


@dataclass
class AppDb:
    """A real database and its owner role on the test cluster."""

    name: str
    user: str
    password: str
    host: str
    port: int


def make_app_db(pg: Cluster, tag: str, createdb: bool = False) -> AppDb:
    """Role `cl_<tag>` (LOGIN, its password with ':' and '\\' for .pgpass escaping)
    owning database `cl_<tag>` with a table of rows it made itself."""
    name = f"cl_{tag}"
    password = "p:w\\" + secrets.token_urlsafe(12)
    conn = pg.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE ROLE "{name}" LOGIN {"CREATEDB" if createdb else ""} '
                        "PASSWORD %s", (password,))
            cur.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    finally:
        conn.close()
    import psycopg2
    app = psycopg2.connect(host=pg.host, port=pg.port, user=name, password=password,
                           dbname=name)
    app.autocommit = True
    with app.cursor() as cur:
        cur.execute("CREATE TABLE vdc_options (id serial PRIMARY KEY, name text, value text)")
        cur.execute("INSERT INTO vdc_options (name, value) SELECT 'k' || i, 'v' || i "
                    "FROM generate_series(1, 50) i")
        cur.execute("CREATE VIEW options_view AS SELECT name FROM vdc_options")
    app.close()
    return AppDb(name, name, password, pg.host, pg.port)


def pgpass_line(db: AppDb) -> str:
    return ":".join(pgpass_escape(f) for f in (db.host, str(db.port), db.name, db.user,
                                               db.password))


@dataclass
class Spec:
    """What the fake setup makes (target paths)."""

    dirs: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str, str, bool]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    database: Optional[dict[str, Any]] = None
    services: list[str] = field(default_factory=list)


def engine_like(db: Optional[AppDb] = None, pgpass_extra: str = "",
                services: tuple[str, ...] = ()) -> Spec:
    """PKI, conf.d, a symlink, secrets, setup's state, an ISO domain and its export,
    the .pgpass and the database record, as setup leaves them."""
    recipe = {"app": "fake",
              "database": {"name": db.name if db else "x", "user": db.user if db else "x",
                           "pgpass": "/root/.pgpass"},
              "iso_domain": {"path": "/var/lib/exports/iso"},
              "services": {"main": services[0]} if services else {"main": "none.service"}}
    spec = Spec(
        dirs=[("/etc/pki/fake", "0755"), ("/etc/pki/fake/private", "0700"),
              ("/var/lib/exports/iso", "0755")],
        files=[
            ("/etc/pki/fake/ca.pem", "CA CERT\n", "0644", False),
            ("/etc/pki/fake/private/ca.key", "CA KEY\n", "0600", False),
            ("/etc/pki/fake/private/keystore.password", "kspw\n", "0600", True),
            ("/etc/fake/conf.d/10-setup.conf", "FAKE=1\n", "0640", False),
            ("/etc/fake/fake.conf", "setup's version\n", "0644", False),
            ("/etc/sysctl.d/10-fake.conf", "kernel.shmmax = 68719476736\n", "0644", False),
            ("/etc/exports.d/fake.exports", "/var/lib/exports/iso *(rw)\n", "0644", False),
            ("/var/lib/exports/iso/x.iso", "iso\n", "0644", False),
            (SETUP_DIR + "/recipe.json", json.dumps(recipe), "0600", False),
            (SETUP_DIR + "/answers.conf", "[environment:default]\n", "0600", False)],
        links=[("/etc/fake/ca.pem", "/etc/pki/fake/ca.pem")],
        services=list(services))
    if db is not None:
        spec.files.append(("/root/.pgpass", pgpass_extra + pgpass_line(db) + "\n", "0600",
                           True))
        spec.database = {"name": db.name, "host": db.host, "port": db.port, "user": db.user,
                         "created": True, "role_created": True, "version": 2,
                         "pgpass": "/root/.pgpass",
                         "config": "/etc/fake/conf.d/10-setup.conf"}
    return spec


def make_root(root: Path, units: tuple[str, ...] = ()) -> Path:
    """A small target: passwd/group, /etc/fake with a file setup will replace, unit
    files for `units`."""
    (root / "etc/fake").mkdir(parents=True)
    (root / "root").mkdir(mode=0o550)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/fake/fake.conf").write_text("the package's version\n")
    for unit in units:
        d = root / "usr/lib/systemd/system"
        d.mkdir(parents=True, exist_ok=True)
        (d / unit).write_text(UNIT.format(name=unit))
    return root


def run_fake_setup(root: Path, spec: Spec, plugin_dir: Path) -> str:
    plugin_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"dirs": spec.dirs, "files": spec.files, "links": spec.links,
                       "database": spec.database, "services": spec.services})
    (plugin_dir / "fakesetup.py").write_text(textwrap.dedent(PLUGIN % data))
    out = io.StringIO()
    code = engine.run("setup", root=root, groups=("core",), plugin_dirs=[plugin_dir],
                      unattended=True, stdin=io.StringIO(""), stdout=out, stderr=out)
    assert code == 0, out.getvalue()
    return out.getvalue()
