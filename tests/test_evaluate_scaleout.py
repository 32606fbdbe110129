"""Evaluation split over processes or batches gives the same per-problem results as one process."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.helpers import save_tiny, write_records

SETTINGS = ["hard_greedy", "hard_sample", "soft_sample"]
PER_PROBLEM = ("id", "cots", "answers", "completions", "boxed", "rewards", "correct", "cot_len", "answer_len",
               "stopped_by_marker", "entropy_count")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("ev")
    save_tiny(d / "model")
    write_records(d / "data.jsonl", 12)
    (d / "eval.yaml").write_text(yaml.safe_dump({
        "settings": SETTINGS, "n_samples": 3, "prompt_template": "toy", "batch_size": 5, "shard_size": 4,
        "threads": 1, "rollout": {"max_cot_tokens": 10, "max_answer_tokens": 3}}))
    return d


def evaluate(d, out, *extra, processes=1):
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            if processes == 2 else [sys.executable])
    p = subprocess.run(head + ["-m", "softcot.cli", "evaluate", "--config", str(d / "eval.yaml"), "--model",
                               str(d / "model"), "--data", str(d / "data.jsonl"), "--out", str(out), *extra],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def rows(out, setting):
    return [json.loads(line) for line in (out / setting / "samples.jsonl").read_text().splitlines()]


def test_two_processes_write_the_one_process_results(setup, tmp_path):
    evaluate(setup, tmp_path / "one")
    p = evaluate(setup, tmp_path / "two", processes=2)
    assert sorted(f.name for f in (tmp_path / "two").glob("eval_log*.jsonl")) == ["eval_log0.jsonl", "eval_log1.jsonl"]
    for s in SETTINGS:
        assert (tmp_path / "one" / s / "samples.jsonl").read_bytes() == (tmp_path / "two" / s / "samples.jsonl").read_bytes()
    assert (tmp_path / "one" / "summary.json").read_bytes() == (tmp_path / "two" / "summary.json").read_bytes()
    assert "evaluate hard_sample:" in p.stderr and "\r" not in p.stderr     # progress lines, no bars


def test_shard_and_batch_sizes_do_not_change_any_problem(setup, tmp_path):
    evaluate(setup, tmp_path / "a")
    evaluate(setup, tmp_path / "b", "batch_size=7", "shard_size=5")
    for s in SETTINGS:
        for x, y in zip(rows(tmp_path / "a", s), rows(tmp_path / "b", s)):
            assert {k: x[k] for k in PER_PROBLEM} == {k: y[k] for k in PER_PROBLEM}, (s, x["id"])
            # entropies are float sums over other batch shapes: equal to rounding
            assert x["entropy_sum"] == pytest.approx(y["entropy_sum"], abs=1e-4)
