"""`install setup --generate-answer`: the file repeats the run unattended on
another host (every subsection of recipes/engine.toml, a real database)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from bundler.pgcluster import Cluster
from installer.errors import EXIT_OK
from tests.setup.conftest import RunSetup, drop_database_and_role, engine_section

pytestmark = [pytest.mark.postgres, pytest.mark.rpm, pytest.mark.slow]

SAME = ("etc/sysctl.d/10-engine.conf", "etc/engine/engine.conf.d/20-java.conf",
        "etc/engine/engine.conf.d/30-protocols.conf", "etc/exports.d/engine.exports",
        "etc/engine/engine-log-collector.conf", "etc/engine/engine-iso-uploader.conf",
        "etc/engine/.tools-password", "etc/sysconfig/nfs")



def test_generated_answers_repeat_the_run_unattended(
        engine_root: Path, engine_root_template: Path, tmp_path: Path, setup_config: Any,
        run_setup: RunSetup, db_settings: dict[str, str], pg_cluster: Cluster) -> None:
    name = f"engine_{uuid.uuid4().hex[:10]}"
    answers = tmp_path / "setup-answers.conf"
    setup_config(engine_root, engine_section())
    settings = {**db_settings, "SETUP_DB/database": name, "SETUP_DB/user": name,
                "SETUP/adminPassword": "t00ls-Secret", "SETUP/applicationMode": "virt",
                "SETUP_CONFIG/httpsPort": "8443", "SETUP_PG/tune": "false"}
    try:
        code, _, out = run_setup(engine_root, settings, generate_answer=answers,
                                 generate_answer_secrets=True)
        assert code == EXIT_OK, out
        text = answers.read_text()
        assert answers.stat().st_mode & 0o777 == 0o600
        assert "SETUP/applicationMode=str:virt" in text
        assert "SETUP_CONFIG/httpsPort=int:8443" in text
        drop_database_and_role(pg_cluster, name, name)  # the other host gets a fresh one

        other = tmp_path / "other"
        shutil.copytree(engine_root_template, other, symlinks=True)
        setup_config(other, engine_section())
        code, _, out = run_setup(other, answers=[answers])  # nothing else given
        assert code == EXIT_OK, out
        for rel in SAME:
            assert (other / rel).read_bytes() == (engine_root / rel).read_bytes(), rel
        assert "8443" in (other / "etc/engine/engine.conf.d/30-protocols.conf").read_text()
        conn = pg_cluster.connect(name)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT option_value FROM vdc_options "
                            "WHERE option_name = 'ApplicationMode'")
                assert cur.fetchone() == ("virt",)
        finally:
            conn.close()
    finally:
        drop_database_and_role(pg_cluster, name, name)
