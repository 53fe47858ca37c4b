"""The benchmark harness at a tiny scale, one run: so that it cannot rot.

The real measurement is `python -m tests.bench.run` (see the README); this only
checks that every job ran on both sides and produced sensible figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.bench import jobs, run

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NEEDED = ("rpmbuild", "createrepo_c", "dnf", "zstd", "tar", "sha256sum")


def _host_scratch() -> set[str]:
    """What dnf could leave on the host if given a host path: /var/tmp, /var/cache/dnf."""
    return {str(p) for d in (Path("/var/tmp"), Path("/var/cache/dnf")) if d.is_dir()
            for p in d.iterdir()}


def test_harness_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = [t for t in NEEDED if shutil.which(t) is None]
    if not Path("/usr/bin/time").is_file():
        missing.append("/usr/bin/time")
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    out = tmp_path / "bench.json"
    host_scratch = _host_scratch()
    assert run.main(["--scales", "0.1", "--runs", "1", "--out", str(out)]) == 0
    # Builds, snapshots and imports into --root leave nothing in the host's /var.
    assert _host_scratch() == host_scratch

    doc = json.loads(out.read_text())
    assert doc["machine"]["cores"] >= 1
    assert all(v for v in doc["machine"]["versions"].values())
    (scale,) = doc["scales"]
    names = [run.job_name(make) for make in jobs.JOBS]
    assert sorted(scale["jobs"]) == sorted(names)
    assert {"build", "snapshot", "verify", "import"} <= set(names)
    for name, job in scale["jobs"].items():
        assert "error" not in job, (name, job.get("error"))
        for side in ("satchel", "baseline"):
            figures = job[side]
            for figure in ("wall", "cpu", "rss_max", "rss_tree"):
                assert figures[figure] > 0, (name, side, figure)
            assert len(figures["runs"]) == 1
        assert job["ratio"]["wall"] > 0
    for name in ("build", "snapshot", "import"):  # bundles; imported roots
        job = scale["jobs"][name]
        assert job["satchel"]["written"] > 0 and job["baseline"]["written"] > 0, name
    for name in ("build", "snapshot"):
        assert scale["jobs"][name]["bundle"]["ratio"] > 0
    assert {t["target"].split()[0] for t in doc["targets"]} >= {
        "build", "snapshot", "verify", "import"}
    assert "import" in capsys.readouterr().out  # the table
