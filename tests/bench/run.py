"""The benchmark: satchel against the hand-scripted baseline, side by side.

    .venv/bin/python -m tests.bench.run [--scales 1,4,16] [--runs 3] [--jobs build,import]
                                        [--out tests/bench/results/latest.json]

For each scale: generate (or reuse from tests/bench/cache) the synthetic node,
start a throwaway PostgreSQL under /tmp with its database, then for each job run
satchel and the baseline alternately (satchel first on even runs, the baseline
first on odd ones) `--runs` times and report the medians. Before each run, and
outside its time, the run's outputs are removed, the job's `reset` makes what must
be fresh (the import's root and database), and the page cache is written back
(sync). Every cluster is always stopped and the work directory under /tmp removed
(unless --keep).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from tests.bench import generate, jobs, measure, roots

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MIB = 1 << 20

# issue 6's targets: (job, figure, the highest acceptable satchel/baseline ratio)
TARGETS = [("build", "wall", 0.8), ("snapshot", "wall", 0.8), ("verify", "wall", 1.1),
           ("verify-builder", "wall", 1.1), ("import", "wall", 1.0)]
RSS_LIMIT = 300 * MIB
SIZE_RATIO = 1.02


def _version(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine(work: Path, pgbin: Optional[Path]) -> dict[str, Any]:
    mem = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    disk = shutil.disk_usage(work)
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "disk_free_bytes": disk.free,
        "disk_total_bytes": disk.total,
        "loadavg_start": list(os.getloadavg()),
        "versions": {
            "python (harness, satchel build.py)": sys.version.split()[0],
            "python (install, /usr/bin/python3)": _version([str(jobs.SYSTEM_PYTHON),
                                                            "--version"]),
            "rpm": _version(["rpm", "--version"]),
            "rpmbuild": _version(["rpmbuild", "--version"]),
            "createrepo_c": _version(["createrepo_c", "--version"]),
            "zstd": _version(["zstd", "--version"]),
            "tar": _version(["tar", "--version"]),
            "sha256sum": _version(["sha256sum", "--version"]),
            "postgresql": _version([str(pgbin / "postgres"), "--version"]) if pgbin else "",
            "pg_dump": _version([str(pgbin / "pg_dump"), "--version"]) if pgbin else "",
        },
    }


def _median(samples: list[measure.Sample], name: str) -> float:
    return float(statistics.median(getattr(s, name) for s in samples))


FIGURES = ("wall", "cpu", "rss_max", "rss_tree", "written")


def summarize(samples: list[measure.Sample]) -> dict[str, Any]:
    out: dict[str, Any] = {f: _median(samples, f) for f in FIGURES}
    out["runs"] = [asdict(s) for s in samples]
    return out


def ratio(a: float, b: float) -> Optional[float]:
    return a / b if b else None


def run_job(job: jobs.Job, runs: int, logdir: Path) -> dict[str, Any]:
    samples: dict[str, list[measure.Sample]] = {"satchel": [], "baseline": []}
    for i in range(runs):
        order = ("satchel", "baseline") if i % 2 == 0 else ("baseline", "satchel")
        for side in order:
            cmd: measure.Command = getattr(job, side)
            jobs.clean(cmd.outputs)
            log = logdir / f"{job.name}-{side}-{i}.log"
            try:
                if cmd.reset is not None:
                    cmd.reset()
                os.sync()  # the previous run's write-back must not land in this one
                samples[side].append(measure.run(cmd, log))
            except Exception as e:  # reported; the other jobs still run
                return {"what": job.what, "error": f"{side}: {e}"}
    result: dict[str, Any] = {"what": job.what,
                              "satchel": summarize(samples["satchel"]),
                              "baseline": summarize(samples["baseline"])}
    result["ratio"] = {f: ratio(result["satchel"][f], result["baseline"][f]) for f in FIGURES}
    if job.bundles:  # the last run's outputs of both sides are still in place
        result["bundle"] = bundle_sizes(job.satchel.outputs[0], job.baseline.outputs[0])
    return result


def bundle_sizes(satchel: Path, baseline: Path) -> dict[str, Any]:
    out: dict[str, Any] = {
        "satchel_bytes": measure.size_of((satchel,)),
        "baseline_bytes": measure.size_of((baseline,)),
        "satchel_parts": parts(satchel),
        "baseline_parts": parts(baseline),
    }
    out["ratio"] = ratio(out["satchel_bytes"], out["baseline_bytes"])
    return out


def job_name(make: Any) -> str:
    """build_job -> build, verify_builder_job -> verify-builder."""
    return str(make.__name__).removesuffix("_job").replace("_", "-")


def parts(root: Path) -> dict[str, int]:
    """Bytes by top-level entry of an output directory."""
    return {p.name: measure.size_of((p,)) for p in sorted(root.iterdir())}


def run_scale(scale: float, runs: int, keep: bool, log=print,
              only: Optional[Sequence[str]] = None) -> dict[str, Any]:
    started = time.monotonic()
    node = generate.generate(scale)
    gen_seconds = time.monotonic() - started
    work = Path(tempfile.mkdtemp(prefix="satchel-bench-", dir="/tmp"))
    os.chmod(work, 0o711)  # the cluster under it belongs to the postgres user when root
    try:
        with contextlib.ExitStack() as resources:  # what jobs start: stopped last
            # The import's target server starts while the source database loads.
            target = roots.TargetServer(work / "import" / "server")
            resources.callback(target.stop)
            target.start_in_background()
            db = resources.enter_context(generate.database(node.params, work / "pg"))
            bench = jobs.Bench(node=node, db=db, work=work, resources=resources,
                               target=target)
            result: dict[str, Any] = {
                "scale": scale,
                "params": asdict(node.params),
                "inputs": {"rpms": len(list(node.rpm_dir.glob("*.rpm"))),
                           "rpm_bytes": node.rpm_bytes(), "files": node.params.files,
                           "tree_bytes": node.tree_bytes(), "db_bytes": db.size},
                "generate_seconds": round(gen_seconds, 3),
                "pgbin": str(db.cluster.bindir),
                "jobs": {},
            }
            log(f"scale {scale:g}x: {result['inputs']['rpms']} RPMs "
                f"({node.rpm_bytes() / MIB:.1f} MiB), {node.params.files} files "
                f"({node.tree_bytes() / MIB:.1f} MiB), database {db.size / MIB:.1f} MiB",
                file=sys.stderr)
            logdir = work / "logs"
            logdir.mkdir()
            for make in jobs.JOBS:
                name = job_name(make)
                if only is not None and name not in only:
                    continue
                started = time.monotonic()
                try:
                    job = make(bench)
                except Exception as e:  # reported; the other jobs still run
                    log(f"  {name}: setup failed: {e}", file=sys.stderr)
                    result["jobs"][name] = {"what": "", "error": f"setup: {e}"}
                    continue
                setup = time.monotonic() - started
                log(f"  {name}: {runs} run(s) each side (setup {setup:.1f}s) ...",
                    file=sys.stderr)
                result["jobs"][name] = run_job(job, runs, logdir)
                result["jobs"][name]["setup_seconds"] = round(setup, 3)
    finally:
        if keep:
            log(f"  kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def targets(scales: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in scales:
        ok = [j for j in s["jobs"].values() if "error" not in j]
        for job, fig, limit in TARGETS:
            r = s["jobs"].get(job, {}).get("ratio", {}).get(fig)
            if r is not None:
                out.append({"scale": s["scale"], "target": f"{job} {fig} <= {limit} x baseline",
                            "value": round(r, 3), "met": r <= limit})
        if ok:
            rss = max(j["satchel"]["rss_tree"] for j in ok)
            out.append({"scale": s["scale"], "target": "satchel peak RSS (tree) <= 300 MiB",
                        "value": round(rss / MIB, 1), "met": rss <= RSS_LIMIT})
        for name, j in s["jobs"].items():
            if "bundle" not in j:
                continue
            r = j["bundle"]["ratio"]
            out.append({"scale": s["scale"],
                        "target": f"{name} bundle size <= {SIZE_RATIO} x baseline",
                        "value": round(r, 4), "met": r <= SIZE_RATIO})
    return out


def table(doc: dict[str, Any]) -> str:
    lines = []
    head = (f"{'scale':>5} {'job':<15} {'side':<9} {'wall s':>8} {'cpu s':>8} "
            f"{'rss MiB':>8} {'tree MiB':>8} {'written MiB':>11}")
    lines.append(head)
    lines.append("-" * len(head))

    def num(v: Optional[float], scale: float = 1, fmt: str = ".2f") -> str:
        return "-" if v is None else format(v / scale, fmt)

    for s in doc["scales"]:
        for name, j in s["jobs"].items():
            if "error" in j:
                lines.append(f"{s['scale']:>4g}x {name:<15} FAILED    {j['error'][:200]}")
                continue
            for side in ("satchel", "baseline", "ratio"):
                v = j[side]
                mib = 1 if side == "ratio" else MIB
                fmt = ".2f" if side == "ratio" else ".1f"
                lines.append(
                    f"{s['scale']:>4g}x {name:<15} {side:<9} {num(v['wall']):>8} "
                    f"{num(v['cpu']):>8} {num(v['rss_max'], mib, fmt):>8} "
                    f"{num(v['rss_tree'], mib, fmt):>8} {num(v['written'], mib, fmt):>11}")
        for name, j in s["jobs"].items():
            b = j.get("bundle")
            if b is not None:
                lines.append(f"{s['scale']:>4g}x {name} bundle size: satchel "
                             f"{b['satchel_bytes'] / MIB:.2f} MiB, baseline "
                             f"{b['baseline_bytes'] / MIB:.2f} MiB, ratio {b['ratio']:.3f}")
        lines.append("")
    lines.append("targets:")
    for t in doc["targets"]:
        lines.append(f"  {'met ' if t['met'] else 'MISS'}  {t['scale']:>4g}x  "
                     f"{t['target']:<40} {t['value']}")
    loads = [r["load"] for s in doc["scales"] for j in s["jobs"].values()
             for side in ("satchel", "baseline") for r in j.get(side, {}).get("runs", [])]
    if loads:
        lines.append(f"1-minute load average at the start of the runs: "
                     f"{min(loads):.1f} .. {max(loads):.1f}, median "
                     f"{statistics.median(loads):.1f} ({doc['machine']['cores']} cores): "
                     "a busy machine makes the numbers noisy")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.split(
        "\n", 1)[0])
    p.add_argument("--scales", default="1,4,16",
                   help="comma-separated scale factors (default 1,4,16)")
    p.add_argument("--runs", type=int, default=3, help="runs per side and job (default 3)")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    p.add_argument("--keep", action="store_true", help="keep the work directories under /tmp")
    names = [job_name(make) for make in jobs.JOBS]
    p.add_argument("--jobs", help=f"comma-separated jobs to run (default: all: {','.join(names)};"
                                  " verify and import need build)")
    args = p.parse_args(argv)
    only = None if args.jobs is None else [j.strip() for j in args.jobs.split(",") if j.strip()]
    if only is not None and (not only or set(only) - set(names)):
        p.error(f"--jobs: choose from {', '.join(names)}")
    try:
        scales = [float(x) for x in args.scales.split(",") if x.strip()]
    except ValueError:
        p.error(f"--scales: not a list of numbers: {args.scales}")
    if not scales or any(s <= 0 for s in scales) or args.runs < 1:
        p.error("need at least one positive scale and one run")
    if not Path(measure.TIME).is_file():
        p.error(f"{measure.TIME} (GNU time) is needed to measure peak RSS: "
                "apt-get install time")
    started = time.monotonic()
    results = [run_scale(s, args.runs, args.keep, only=only) for s in scales]
    pgbin = Path(results[0]["pgbin"])
    doc: dict[str, Any] = {
        "format": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": args.runs,
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(Path(tempfile.gettempdir()), pgbin),
        "method": re.sub(r"\s+", " ", measure.__doc__ or "").strip(),
        "scales": results,
    }
    doc["machine"]["loadavg_start"] = _load_at_start
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, args.out)
    print(table(doc))
    print(f"\nJSON: {args.out}  ({doc['seconds']:.0f}s)")
    failed = [f"{s['scale']:g}x {n}" for s in results for n, j in s["jobs"].items()
              if "error" in j]
    if failed:
        print(f"FAILED: {', '.join(failed)} (see the table)", file=sys.stderr)
        return 1
    return 0


_load_at_start = list(os.getloadavg())

if __name__ == "__main__":
    sys.exit(main())
