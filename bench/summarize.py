"""One screen of the headline numbers from the JSON files the bench scripts wrote.

    python bench/summarize.py                  # bench/out/*.json
    python bench/summarize.py /path/to/out     # e.g. what bench/gpu_check.sh wrote to $OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    d = Path(argv[0]) if argv else Path(__file__).resolve().parent / "out"
    files = sorted(d.glob("*.json"))
    if not files:
        print(f"no JSON files in {d}: run the bench scripts first")
        return 1
    for f in files:
        try:
            j = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"{f.name}: unreadable ({e})")
            continue
        env = j.get("env", {})
        where = f"{env.get('device', '?')}{' ' + env['gpu'] if 'gpu' in env else ''}, threads {env.get('threads', '?')}"
        if f.name.startswith("bench_rollout"):
            r = j["ratios"]
            tps = ", ".join(f"{x['method']} {x['tok_per_s']:.0f}" for x in j["rows"])
            s = r.get("soft_over_hard_time") or {}
            g = r.get("ours_hard_speed_over_generate") or {}
            print(f"{f.name}: {j['model']} B={j['batch']} L={j['L']} A={j['A']} {j['dtype']} on {where}\n"
                  f"   tokens/s: {tps}\n"
                  f"   soft/hard time {s.get('ratio_of_medians', float('nan')):.3f} (CPU time "
                  f"{s.get('cpu_ratio_of_medians', float('nan')):.3f})   ours-hard/generate speed "
                  f"{g.get('ratio_of_medians', float('nan')):.3f} (CPU time {g.get('cpu_ratio_of_medians', float('nan')):.3f})"
                  f"\n   targets {j['targets']}")
        elif f.name.startswith("bench_step"):
            print(f"{f.name}: {j['model']} B={j['batch']} L={j['L']} A={j['A']} {j['precision']} on {where}")
            for row in j["rows"]:
                print(f"   {row['mode']:5s} step {row['step_s']:.3f}s = rollout {row['rollout_pct']:.0f}% + fwd "
                      f"{row['score_fwd_pct']:.0f}% + bwd {row['backward_pct']:.0f}% + optim {row['optim_pct']:.0f}%")
            for row in j.get("profile_rows", []):
                if row["phase"] == "STEP":
                    extra = f", GPU idle {row['gpu_idle_frac']:.2f}" if "gpu_idle_frac" in row else ""
                    print(f"   {row['mode']:5s} outside aten ops (profiler): {row['outside_aten_frac']:.2f} of the step{extra}")
            for row in j.get("scaling_rows", []):
                print(f"   {row['mode']:5s} rollout fixed (batch-independent) share: {row['fixed_frac']:.2f} at B={row['B']}")
        elif f.name.startswith("bench_mix"):
            print(f"{f.name}: on {where}, {j['dtype']}")
            for name, r in j["results"].items():
                print(f"   {name}: mix / output head = {r['ratio_mix_over_head']:.2f} (paired {r['paired_ratio']:.2f})")
            print(f"   checks: {len(j['checks']['mix'])} mix shape checks + soft-rollout check passed")
        elif f.name.startswith("bench_shapes"):
            print(f"{f.name}: on {where}, {j['args']['dtype']}, B={j['args']['prompts']} x G={j['args']['group']}, "
                  f"L={j['args']['cot_tokens']}")
            for r in j["shapes"]:
                tp = ", ".join(f"{m} {r['throughput'][m]['tok_per_s']:.0f}" for m in ("hard", "soft", "fuzzy", "generate"))
                mem = ", ".join(f"{ph} {v['measured_gib']:.2f}/{v['planned_gib']:.2f}" for ph, v in r["memory"].items()
                                if v["measured_gib"] is not None)
                print(f"   {r['arch']['name']}: {r['mode']}; step {r['times']['step']:.1f}s; tokens/s {tp}\n"
                      f"      peak above phase start, measured/plan GiB: {mem}")
        elif f.name.startswith("pipeline_times"):
            lg = j.get("snakemake_logs", {})
            print(f"{f.name}: experiment {j['experiment']}: union wall {lg.get('union_wall_s', 0):.0f}s, "
                  f"sum of jobs {lg.get('total_s', 0):.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
