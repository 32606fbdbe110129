"""softcot.evaluate: the six settings end to end on a tiny trained checkpoint (tests.helpers.train_answerer),
the new kinds' own settings, shards and byte-identical resume (in process and after a real kill -9), the
trainer's greedy validation score, evaluation split over processes or batches (the same per-problem results
as one process), the CLI's config file / flags / overrides (its errors are in
tests/test_cli.py), and (where installed) SmolLM2-135M-Instruct on real GSM8K.

The answerer answers every toy prompt with either " 3+4=7 The final answer is: \\boxed{7}" or
" 3+5=8 ... \\boxed{8}" (about even odds), so sampled settings mix right and wrong answers and pass@k is not
trivially flat.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from softcot.config import from_dict
from softcot.evaluate import ResumeError, evaluate, greedy_accuracy, main
from softcot.generate import generate
from softcot.io import read_jsonl, write_jsonl
from softcot.rewards import CORRECT, extract_boxed
from softcot.schema import SETTINGS, CoTMode, EvalConfig, RolloutConfig
from tests.helpers import ANSWERER_QUESTIONS as QUESTIONS
from tests.helpers import SHARED_DATA as DATA
from tests.helpers import save_tiny, write_records


def tiny_cfg(ckpt, data, /, **kw) -> EvalConfig:
    base = dict(model={"name_or_path": str(ckpt), "add_special_tokens": False}, data=str(data), n_samples=4,
                prompt_template="toy", rollout={"max_cot_tokens": 40}, batch_size=6, shard_size=2, threads=1)
    base.update(kw)
    return from_dict(EvalConfig, base)


@pytest.fixture(scope="module")
def evaluated(answerer, answerer_model, tmp_path_factory):
    ckpt, data = answerer
    out = tmp_path_factory.mktemp("eval")
    cfg = tiny_cfg(ckpt, data)
    model, tok = answerer_model
    summary = evaluate(cfg, out, model=model, tok=tok, progress=False)
    return cfg, out, summary, (model, tok)


# --------------------------------------------------------------------------- end to end

def test_all_six_settings(evaluated):
    cfg, out, summary, _ = evaluated
    assert set(summary["settings"]) == set(SETTINGS)
    assert summary["n_problems"] == len(QUESTIONS)
    keys = {"pass1", "pass_at_k", "format_rate", "marker_rate", "mean_cot_len", "entropy_by_position",
            "diversity", "n_problems", "n_samples", "no_reward"}
    for setting, m in summary["settings"].items():
        assert keys <= set(m), setting
        n = 4 if setting.endswith("sample") else 1
        assert m["n_samples"] == n and m["n_problems"] == len(QUESTIONS)
        assert list(m["pass_at_k"]) == (["1", "2", "4"] if n == 4 else ["1"])
        vals = list(m["pass_at_k"].values())
        assert all(a <= b + 1e-12 for a, b in zip(vals, vals[1:])), (setting, vals)   # monotone in k
        assert m["pass_at_k"]["1"] == pytest.approx(m["pass1"])
        assert 0 <= m["pass1"] <= 1 and 0 <= m["format_rate"] <= 1 and 0 <= m["marker_rate"] <= 1
        assert m["no_reward"] == 0
        assert 0 < m["mean_cot_len"] <= 40
        ent = m["entropy_by_position"]
        assert ent and all(e is None or e >= 0 for e in ent) and ent[0] is not None
        assert 1 <= m["diversity"]["distinct_cots"] <= n and 0 <= m["diversity"]["distinct_answers"] <= n
        # files
        shards = sorted(p.name for p in (out / setting / "shards").iterdir())
        assert shards == ["00000.jsonl", "00001.jsonl", "00002.jsonl"]
        samples = (out / setting / "samples.jsonl").read_text()
        assert samples == "".join((out / setting / "shards" / s).read_text() for s in shards)
        rows = read_jsonl(out / setting / "samples.jsonl")
        assert [r["id"] for r in rows] == [f"p{i}" for i in range(len(QUESTIONS))]
        for r in rows:
            assert all(len(r[k]) == n for k in ("cots", "answers", "completions", "boxed", "rewards", "correct",
                                                "cot_len", "stopped_by_marker"))
            assert r["correct"] == [x == CORRECT for x in r["rewards"]]
            assert r["boxed"] == [extract_boxed(c) for c in r["completions"]]
        assert m["pass1"] == pytest.approx(sum(sum(r["correct"]) / n for r in rows) / len(rows))
    # The answerer was trained to this format: hard greedy always reaches the marker and boxes an answer.
    hg = summary["settings"]["hard_greedy"]
    assert hg["marker_rate"] == 1.0 and hg["format_rate"] == 1.0
    # Sampling mixes 7s and 8s: some problem is solved by some but not all of its samples.
    hs = read_jsonl(out / "hard_sample" / "samples.jsonl")
    assert any(0 < r["n_correct"] < 4 for r in hs)
    assert summary["settings"]["hard_sample"]["pass_at_k"]["4"] > summary["settings"]["hard_sample"]["pass1"]
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    from softcot.provenance import provenance
    assert summary["code_commit"] == provenance()["code_commit"]            # which code made these numbers


def test_resume_is_byte_identical(evaluated, tmp_path):
    cfg, out, _, (model, tok) = evaluated
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*.jsonl") if p.name != "eval_log.jsonl"}
    before[Path("summary.json")] = (run / "summary.json").read_bytes()
    # A run killed during soft_sample's second shard: shards 1 and 2 missing, a stale temporary file left.
    (run / "soft_sample" / "shards" / "00001.jsonl").unlink()
    (run / "soft_sample" / "shards" / "00002.jsonl").unlink()
    (run / "hard_sample" / "shards" / "00000.jsonl").unlink()
    (run / "soft_sample" / "shards" / ".00001.jsonl.abc.tmp").write_text("torn")
    (run / "summary.json").unlink()
    (run / "eval_log.jsonl").unlink()
    evaluate(cfg, run, model=model, tok=tok, progress=False)
    after = {p.relative_to(run): p.read_bytes() for p in run.rglob("*.jsonl")
             if p.name != "eval_log.jsonl" and not p.name.endswith(".tmp")}
    after[Path("summary.json")] = (run / "summary.json").read_bytes()
    assert after == before
    redone = [(r["setting"], r["shard"]) for r in read_jsonl(run / "eval_log.jsonl")]
    assert sorted(redone) == [("hard_sample", 0), ("soft_sample", 1), ("soft_sample", 2)]   # the rest skipped


def _eval_cmd(ckpt, data, out):
    import sys
    return [sys.executable, "-m", "softcot.cli", "evaluate", "--model", str(ckpt), "--data", str(data),
            "--template", "toy", "--settings", "hard_greedy,hard_sample,soft_sample", "--n", "4",
            "--max-cot-tokens", "40", "--batch-size", "2", "--shard-size", "1", "--threads", "1", "--out", str(out),
            "--no-progress", "model.add_special_tokens=false"]


def test_kill9_during_evaluation_then_rerun_gives_identical_results(answerer, tmp_path):
    """A real kill -9 of `softcot evaluate` in the middle of its shards; the same command again resumes from
    the shards on disk (does not redo them) and ends byte-identical to an uninterrupted run."""
    import signal
    import subprocess
    import time
    ckpt, data = answerer
    ref, run = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_eval_cmd(ckpt, data, ref), check=True, capture_output=True, timeout=600)
    p = subprocess.Popen(_eval_cmd(ckpt, data, run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shard_dir = run / "hard_sample" / "shards"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if shard_dir.exists() and len(list(shard_dir.glob("0*.jsonl"))) >= 2:
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert p.wait(timeout=60) == -signal.SIGKILL, "the evaluation finished before it could be killed"
    assert not (run / "summary.json").exists()
    kept = {q: q.stat().st_mtime_ns for q in run.rglob("shards/0*.jsonl")}
    assert len(kept) >= 2 + len(QUESTIONS)          # hard_greedy done, part of hard_sample
    subprocess.run(_eval_cmd(ckpt, data, run), check=True, capture_output=True, timeout=600)
    assert all(q.stat().st_mtime_ns == t for q, t in kept.items()), "finished shards must not be redone"
    files = sorted(q.relative_to(ref) for q in ref.rglob("*") if q.is_file() and q.name != "eval_log.jsonl")
    assert files == sorted(q.relative_to(run) for q in run.rglob("*") if q.is_file() and q.name != "eval_log.jsonl")
    for f in files:
        assert (ref / f).read_bytes() == (run / f).read_bytes(), f


def test_new_kinds_own_settings_record_their_options(answerer, answerer_model, tmp_path):
    """multiplex_sample and gumbel_sample run beside a paper setting; their options reach the fingerprint and
    the summary, a changed option refuses to mix shards, and the paper settings' fingerprints have no new keys."""
    ckpt, data = answerer
    model, tok = answerer_model
    settings = ["hard_greedy", "multiplex_sample", "gumbel_sample"]
    cfg = tiny_cfg(ckpt, data, settings=settings, mode_options={"multiplex_k": 2})
    summary = evaluate(cfg, tmp_path, model=model, tok=tok, progress=False)
    assert list(summary["settings"]) == settings
    assert summary["settings"]["multiplex_sample"]["mode"] == {"kind": "multiplex", "tau": 1.0, "gamma": 0.33,
                                                               "greedy": False, "multiplex_k": 2,
                                                               "multiplex_gate": None}
    assert summary["settings"]["gumbel_sample"]["mode"]["gumbel_top_k"] == 5
    assert set(summary["settings"]["hard_greedy"]["mode"]) == {"kind", "tau", "gamma", "greedy"}
    for s in settings[1:]:
        m = summary["settings"][s]
        assert m["n_samples"] == 4 and 0 <= m["pass1"] <= 1 and m["no_reward"] == 0
    with pytest.raises(ResumeError, match="multiplex_k"):
        evaluate(tiny_cfg(ckpt, data, settings=settings), tmp_path, model=model, tok=tok, progress=False)


def test_changed_config_refuses_to_mix(evaluated, tmp_path):
    cfg, out, _, (model, tok) = evaluated
    run = tmp_path / "run"
    shutil.copytree(out, run)
    other = tiny_cfg(cfg.model.name_or_path, cfg.data, gamma=1.0)
    with pytest.raises(ResumeError, match="gamma"):
        evaluate(other, run, model=model, tok=tok, progress=False)


def test_longer_limit_reuses_shards(answerer, answerer_model, tmp_path):
    ckpt, data = answerer
    model, tok = answerer_model
    cfg3 = tiny_cfg(ckpt, data, settings=["hard_sample"], limit=3)
    evaluate(cfg3, tmp_path, model=model, tok=tok, progress=False)
    first = (tmp_path / "hard_sample" / "shards" / "00000.jsonl").read_bytes()
    evaluate(tiny_cfg(ckpt, data, settings=["hard_sample"]), tmp_path, model=model, tok=tok, progress=False)
    log = [(r["shard"], r["problems"]) for r in read_jsonl(tmp_path / "eval_log.jsonl")]
    assert log == [(0, 2), (1, 1), (1, 2), (2, 1)]        # shard 1 grew from 1 to 2 problems: recomputed
    assert (tmp_path / "hard_sample" / "shards" / "00000.jsonl").read_bytes() == first


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_greedy_accuracy_is_the_greedy_settings_pass1(evaluated, kind):
    """The trainer's validation score equals the evaluation's <kind>_greedy pass@1 on the same problems and
    batches, whatever the mode's sampling flag (it is forced greedy)."""
    cfg, out, summary, (model, tok) = evaluated
    recs = read_jsonl(cfg.data)
    rcfg = RolloutConfig(max_cot_tokens=40, answer_temperature=1.0)          # forced to greedy answers too
    acc = greedy_accuracy(model, tok, recs, CoTMode(kind), rcfg, "toy", batch=cfg.shard_size,
                          add_special_tokens=False)
    rows = read_jsonl(out / f"{kind}_greedy" / "samples.jsonl")
    assert acc == sum(r["correct"][0] for r in rows) / len(rows) == summary["settings"][f"{kind}_greedy"]["pass1"]


def test_cli_config_file_flags_and_overrides(answerer, tmp_path, capsys):
    ckpt, data = answerer
    cfg_file = tmp_path / "eval.yaml"
    cfg_file.write_text(f"model:\n  name_or_path: {ckpt}\ndata: {data}\nprompt_template: toy\nthreads: 1\n"
                        "n_samples: 8\nshard_size: 1\n")
    out = tmp_path / "out"
    rc = main(["--config", str(cfg_file), "--settings", "hard_greedy,soft_sample", "--n", "2",
               "--max-cot-tokens", "30", "--limit", "3", "--out", str(out), "--no-progress", "shard_size=2"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["settings"]) == ["hard_greedy", "soft_sample"]
    assert summary["n_problems"] == 3 and summary["config"]["rollout"]["max_cot_tokens"] == 30
    assert summary["config"]["n_samples"] == 2 and summary["config"]["shard_size"] == 2   # flag, override
    assert summary["config"]["rollout"]["answer_temperature"] == 0.0
    assert summary["config"]["rollout"]["record_entropy"] is True
    assert sorted(p.name for p in (out / "hard_greedy" / "shards").iterdir()) == ["00000.jsonl", "00001.jsonl"]
    assert "hard_greedy" in capsys.readouterr().out


# --------------------------------------------------------------------------- SmolLM2-135M-Instruct on GSM8K

@pytest.mark.real
@pytest.mark.slow
def test_smollm2_six_settings_on_gsm8k(smollm2, tmp_path):
    from softcot.benchmarks import load_benchmark
    if not (DATA / "gsm8k" / "test.jsonl").exists():
        pytest.skip(f"GSM8K test set not found at {DATA / 'gsm8k' / 'test.jsonl'}")
    mcfg, model, tok = smollm2
    data = tmp_path / "gsm8k.jsonl"
    write_jsonl(data, load_benchmark("gsm8k", str(DATA / "gsm8k"), split="test", limit=3))
    rcfg = RolloutConfig(max_cot_tokens=24, max_answer_tokens=12, answer_temperature=0.0, record_entropy=True)
    # threads=1: on a shared 2-core CPU, 2 threads were 8x slower per matmul than 1
    cfg = EvalConfig(model=mcfg, data=str(data), n_samples=2, rollout=rcfg, batch_size=8, shard_size=3, threads=1)
    summary = evaluate(cfg, tmp_path / "out", model=model, tok=tok, progress=False)
    assert set(summary["settings"]) == set(SETTINGS)
    for setting, m in summary["settings"].items():
        assert m["n_problems"] == 3 and m["no_reward"] == 0
        assert m["n_samples"] == (2 if setting.endswith("sample") else 1)
        assert 0 < m["mean_cot_len"] <= 24
        assert len(m["entropy_by_position"]) <= 24 and m["entropy_by_position"][0] > 0
        rows = read_jsonl(tmp_path / "out" / setting / "samples.jsonl")
        assert [r["gold"] for r in rows] == ["18", "3", "70000"]
        assert all(c.strip() for r in rows for c in r["cots"])      # the model wrote something
    # Greedy hard thinking is deterministic: the same batch gives the same CoTs through `softcot generate`.
    hg = read_jsonl(tmp_path / "out" / "hard_greedy" / "samples.jsonl")
    rows = generate(model, tok, [r["question"] for r in hg], ["hard_greedy"], cfg.prompt_template, rcfg)
    assert [r["cot"] for r in rows] == [r["cots"][0] for r in hg]


# Split over processes or batches: the same per-problem results as one process.

SPLIT_SETTINGS = ["hard_greedy", "hard_sample", "soft_sample"]
PER_PROBLEM = ("id", "cots", "answers", "completions", "boxed", "rewards", "correct", "cot_len", "answer_len",
               "stopped_by_marker", "entropy_count")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    d = tmp_path_factory.mktemp("ev")
    save_tiny(d / "model")
    write_records(d / "data.jsonl", 12)
    (d / "eval.yaml").write_text(yaml.safe_dump({
        "settings": SPLIT_SETTINGS, "n_samples": 3, "prompt_template": "toy", "batch_size": 5, "shard_size": 4,
        "threads": 1, "rollout": {"max_cot_tokens": 10, "max_answer_tokens": 3}}))
    return d


def evaluate_cli(d, out, *extra, processes=1):
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            if processes == 2 else [sys.executable])
    p = subprocess.run(head + ["-m", "softcot.cli", "evaluate", "--config", str(d / "eval.yaml"), "--model",
                               str(d / "model"), "--data", str(d / "data.jsonl"), "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def rows(out, setting):
    return [json.loads(line) for line in (out / setting / "samples.jsonl").read_text().splitlines()]


def test_two_processes_write_the_one_process_results(sharded, tmp_path):
    evaluate_cli(sharded, tmp_path / "one")
    p = evaluate_cli(sharded, tmp_path / "two", processes=2)
    assert sorted(f.name for f in (tmp_path / "two").glob("eval_log*.jsonl")) == ["eval_log0.jsonl", "eval_log1.jsonl"]
    for s in SPLIT_SETTINGS:
        assert (tmp_path / "one" / s / "samples.jsonl").read_bytes() == (tmp_path / "two" / s / "samples.jsonl").read_bytes()
    assert (tmp_path / "one" / "summary.json").read_bytes() == (tmp_path / "two" / "summary.json").read_bytes()
    assert "evaluate hard_sample:" in p.stderr and "\r" not in p.stderr     # progress lines, no bars


def test_shard_and_batch_sizes_do_not_change_any_problem(sharded, tmp_path):
    evaluate_cli(sharded, tmp_path / "a")
    evaluate_cli(sharded, tmp_path / "b", "batch_size=7", "shard_size=5")
    for s in SPLIT_SETTINGS:
        for x, y in zip(rows(tmp_path / "a", s), rows(tmp_path / "b", s)):
            assert {k: x[k] for k in PER_PROBLEM} == {k: y[k] for k in PER_PROBLEM}, (s, x["id"])
            # entropies are float sums over other batch shapes: equal to rounding
            assert x["entropy_sum"] == pytest.approx(y["entropy_sum"], abs=1e-4)
