"""Wall time of a Snakemake run of the pipeline, by rule, from what Snakemake already records.

    python bench/pipeline_times.py                       # the experiment named in config.yaml (toy)
    python bench/pipeline_times.py --experiment ci --json bench/out/pipeline_times_ci.json

Two sources, each optional (a missing one is reported, never an error):
  1. Benchmark files benchmarks/<experiment>/**/*.tsv, written by the rules that declare `benchmark:`
     (pretrain_base, train, evaluate). Columns s, h:m:s, max_rss, max_vms, max_uss, max_pss, io_in, io_out,
     mean_load, cpu_time (MB and seconds). A file maps to its rule through the rule's benchmark pattern in
     workflow/rules/*.smk (or a rule_name column, with --benchmark-extended).
  2. Snakemake's run logs .snakemake/log/*.snakemake.log: every job's start ("[date]" + "rule NAME:") and
     end ("Finished jobid: N" / "Finished job N."), for EVERY rule, benchmark or not. A job belongs to the
     experiment when its output or log paths lie under results|logs|checkpoints|benchmarks/<experiment>/.
     A job seen in several logs (a rerun) counts in each. Failed jobs ("Error in rule") and jobs with no end
     (killed) are listed separately.
Totals: the sum of job times per rule, the sum over rules, and the pipeline's wall time = union of the
finished jobs' intervals (time during which at least one job of the experiment ran; parallel jobs count once).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TS = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]\s*$")
RULE = re.compile(r"^(?:local)?rule (\S+?):\s*$")
JOBID = re.compile(r"^\s+jobid: (\d+)")
PATHS = re.compile(r"^\s+(output|log): (.*)$")
FINISHED = re.compile(r"^Finished (?:jobid: (\d+)(?: \(Rule: (\S+)\))?|job (\d+)\.)")
ERROR = re.compile(r"^Error in rule (\S+?):")


def default_experiment(root: Path) -> str:
    try:
        import yaml
        return str(yaml.safe_load((root / "config.yaml").read_text())["experiment"])
    except Exception:  # noqa: BLE001 - any problem: fall back to the embedded default's name
        return "toy"


# --------------------------------------------------------------------------- benchmark files

def benchmark_patterns(root: Path, exp: str) -> list[tuple[str, re.Pattern]]:
    """(rule, regex of the benchmark path relative to the repo) from the `benchmark:` directives."""
    out = []
    files = sorted((root / "workflow" / "rules").glob("*.smk")) + [root / "Snakefile"]
    for f in files:
        if not f.exists():
            continue
        rule, want = None, False
        for line in f.read_text().splitlines():
            m = re.match(r"^\s*(?:local)?rule (\w+)\s*:", line)
            if m:
                rule, want = m.group(1), False
                continue
            if re.match(r"^\s*benchmark\s*:\s*$", line):
                want = True
                continue
            if want and line.strip():
                want = False
                s = line.strip().rstrip(",")
                m = re.match(r"""^[fF]?(["'])(.*)\1$""", s)
                if not m or rule is None:
                    continue
                pat = m.group(2).replace("{BENCH}", f"benchmarks/{exp}")
                rx = re.escape(pat)
                rx = re.sub(r"\\\{\\\{\w+\\\}\\\}", r"[^/]+", rx)        # {{wildcard}}
                rx = re.sub(r"\\\{\w+\\\}", r".+", rx)                   # other f-string names
                out.append((rule, re.compile("^" + rx + "$")))
    return out


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def read_benchmarks(root: Path, exp: str, bdir: Path) -> dict:
    if not bdir.is_dir():
        return {"status": f"no benchmark directory {bdir} (no rule with `benchmark:` has finished for "
                          f"experiment {exp!r} yet, or the pipeline ran elsewhere)", "rules": {}, "files": 0}
    pats = benchmark_patterns(root, exp)
    files = sorted(bdir.rglob("*.tsv"))
    rules: dict[str, dict] = {}
    for f in files:
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.as_posix()
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        rule = rows[0].get("rule_name") or next((r for r, rx in pats if rx.match(rel)), None)
        if rule is None:
            parts = f.relative_to(bdir).parts
            rule = parts[0] if len(parts) > 1 else f.stem
            rule = f"{rule} (path-guessed)"
        r = rules.setdefault(rule, {"count": 0, "sum_s": 0.0, "max_s": 0.0, "max_rss_MB": 0.0, "cpu_time_s": 0.0,
                                    "files": []})
        # Repeated benchmarks (repeat(...)) give several rows: the job's time is their mean.
        s = [v for v in (_num(x.get("s")) for x in rows) if v is not None]
        t = sum(s) / len(s) if s else 0.0
        r["count"] += 1
        r["sum_s"] += t
        r["max_s"] = max(r["max_s"], t)
        r["max_rss_MB"] = max([r["max_rss_MB"]] + [v for v in (_num(x.get("max_rss")) for x in rows) if v is not None])
        cpu = [v for v in (_num(x.get("cpu_time")) for x in rows) if v is not None]
        r["cpu_time_s"] += sum(cpu) / len(cpu) if cpu else 0.0
        r["files"].append(rel)
    return {"status": f"{len(files)} benchmark files under {bdir}" if files else f"{bdir} has no .tsv files",
            "rules": rules, "files": len(files)}


# --------------------------------------------------------------------------- snakemake run logs

def parse_log(path: Path, exp: str) -> list[dict]:
    jobs: dict[str, dict] = {}
    ts, cur = None, None
    prefixes = tuple(f"{d}/{exp}/" for d in ("results", "logs", "checkpoints", "benchmarks")) + \
        tuple(f"{d}/{exp}" for d in ("results", "logs", "checkpoints", "benchmarks"))
    for line in path.read_text(errors="replace").splitlines():
        m = TS.match(line)
        if m:
            ts = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            cur = None
            continue
        m = RULE.match(line)
        if m and ts is not None:
            cur = {"rule": m.group(1), "start": ts, "end": None, "status": "started", "paths": [], "log": path.name}
            continue
        if cur is not None:
            m = JOBID.match(line)
            if m:
                jobs[m.group(1)] = cur
                continue
            m = PATHS.match(line)
            if m:
                cur["paths"] += [p.strip() for p in m.group(2).split(",")]
                continue
            if not line.startswith(" "):
                cur = None
        m = FINISHED.match(line)
        if m:
            jid = m.group(1) or m.group(3)
            if jid in jobs and ts is not None:
                jobs[jid]["end"], jobs[jid]["status"] = ts, "finished"
            continue
        m = ERROR.match(line)
        if m:
            cur = None
            # the jobid follows on the next lines; mark the newest started job of that rule as failed
            cands = [j for j in jobs.values() if j["rule"] == m.group(1) and j["status"] == "started"]
            if cands:
                cands[-1]["status"], cands[-1]["end"] = "failed", ts
    out = []
    for jid, j in jobs.items():
        paths = [p.split(" (")[0] for p in j["paths"]]
        if any(p.startswith(prefixes) for p in paths):
            out.append({**j, "jobid": int(jid), "paths": paths})
    return out


def read_logs(exp: str, log_dir: Path) -> dict:
    if not log_dir.is_dir():
        return {"status": f"no Snakemake log directory {log_dir} (Snakemake has not run here)", "rules": {},
                "jobs": [], "logs": 0}
    logs = sorted(log_dir.glob("*.snakemake.log"))
    jobs = [j for f in logs for j in parse_log(f, exp)]
    rules: dict[str, dict] = defaultdict(lambda: {"count": 0, "sum_s": 0.0, "max_s": 0.0, "failed": 0, "unfinished": 0})
    intervals = []
    for j in jobs:
        r = rules[j["rule"]]
        if j["status"] == "finished":
            s = (j["end"] - j["start"]).total_seconds()
            r["count"] += 1
            r["sum_s"] += s
            r["max_s"] = max(r["max_s"], s)
            intervals.append((j["start"], j["end"]))
        elif j["status"] == "failed":
            r["failed"] += 1
        else:
            r["unfinished"] += 1
    wall, end = 0.0, None
    for s, e in sorted(intervals):
        if end is None or s > end:
            wall += (e - s).total_seconds()
            end = e
        elif e > end:
            wall += (e - end).total_seconds()
            end = e
    used = sorted({j["log"] for j in jobs})
    first = min((j["start"] for j in jobs), default=None)
    last = max((j["end"] or j["start"] for j in jobs), default=None)
    return {"status": f"{len(jobs)} jobs of experiment {exp!r} in {len(used)} of {len(logs)} logs under {log_dir}",
            "rules": dict(rules), "union_wall_s": wall, "logs": used,
            "first_start": first.isoformat() if first else None, "last_event": last.isoformat() if last else None,
            "jobs": [{**j, "start": j["start"].isoformat(), "end": j["end"].isoformat() if j["end"] else None}
                     for j in jobs]}


def fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(ROOT), help="the workflow's directory (default: this checkout)")
    ap.add_argument("--experiment", default=None, help="default: `experiment` in <root>/config.yaml")
    ap.add_argument("--benchmarks", default=None, help="default <root>/benchmarks/<experiment>")
    ap.add_argument("--snakemake-logs", default=None, help="default <root>/.snakemake/log")
    ap.add_argument("--json", default=None, help="default bench/out/pipeline_times_<experiment>.json")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    exp = args.experiment or default_experiment(root)
    bdir = Path(args.benchmarks) if args.benchmarks else root / "benchmarks" / exp
    ldir = Path(args.snakemake_logs) if args.snakemake_logs else root / ".snakemake" / "log"

    bench = read_benchmarks(root, exp, bdir)
    logs = read_logs(exp, ldir)
    print(f"experiment {exp!r}")
    print(f"[benchmark files] {bench['status']}")
    if bench["rules"]:
        print(f"  {'rule':28s} {'count':>5s} {'sum s':>10s} {'h:m:s':>9s} {'max s':>9s} {'max RSS MB':>10s} {'cpu s':>9s}")
        tot = 0.0
        for rule, r in sorted(bench["rules"].items(), key=lambda kv: -kv[1]["sum_s"]):
            tot += r["sum_s"]
            print(f"  {rule:28s} {r['count']:5d} {r['sum_s']:10.1f} {fmt_s(r['sum_s']):>9s} {r['max_s']:9.1f} "
                  f"{r['max_rss_MB']:10.0f} {r['cpu_time_s']:9.1f}")
        print(f"  {'TOTAL (benchmarked rules)':28s} {sum(r['count'] for r in bench['rules'].values()):5d} "
              f"{tot:10.1f} {fmt_s(tot):>9s}")
        bench["total_s"] = tot
    print(f"[snakemake logs] {logs['status']}")
    if logs["rules"]:
        print(f"  {'rule':28s} {'count':>5s} {'sum s':>10s} {'h:m:s':>9s} {'max s':>9s} {'failed':>6s} {'no end':>6s}")
        tot = 0.0
        for rule, r in sorted(logs["rules"].items(), key=lambda kv: -kv[1]["sum_s"]):
            tot += r["sum_s"]
            print(f"  {rule:28s} {r['count']:5d} {r['sum_s']:10.0f} {fmt_s(r['sum_s']):>9s} {r['max_s']:9.0f} "
                  f"{r['failed']:6d} {r['unfinished']:6d}")
        print(f"  {'TOTAL (sum of finished jobs)':28s} {sum(r['count'] for r in logs['rules'].values()):5d} "
              f"{tot:10.0f} {fmt_s(tot):>9s}")
        print(f"  pipeline wall time (union of finished jobs' intervals): {logs['union_wall_s']:.0f} s = "
              f"{fmt_s(logs['union_wall_s'])}   (first job {logs['first_start']}, last event {logs['last_event']}; "
              f"timestamps have 1 s resolution)")
        logs["total_s"] = tot
    if not bench["rules"] and not logs["rules"]:
        print(f"nothing to report for experiment {exp!r}: run the pipeline first (snakemake --cores all), or pass "
              f"--experiment / --benchmarks / --snakemake-logs")
    out = Path(args.json) if args.json else ROOT / "bench" / "out" / f"pipeline_times_{exp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"experiment": exp, "benchmarks": bench, "snakemake_logs": logs}, indent=2,
                              default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
