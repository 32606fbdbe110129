"""softcot.diagnose: the sources of sampled diversity, the term gradients, and `softcot diagnose` with a config file, flags and overrides (its errors are in tests/test_cli.py)."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from softcot.diagnose import diversity_sources, main
from softcot.rewards import math_reward
from softcot.schema import RolloutConfig
from tests.helpers import save_tiny

RECORDS = [{"id": f"p{i}", "question": f"{i}+{i % 3}", "answer": str(i + i % 3)} for i in range(4)]


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_diversity_sources_separate_cot_noise_from_answer_sampling(tmp_path, kind):
    from softcot.modeling import ModelConfig, load_model
    model, tok = load_model(ModelConfig(name_or_path=str(save_tiny(tmp_path / "m", seed=3))), device="cpu")
    rcfg = RolloutConfig(max_cot_tokens=6, max_answer_tokens=3)
    d = diversity_sources(model, tok, RECORDS, kind, rcfg, "toy", n=6, prompts=4, seed=0, reward_fn=math_reward)
    assert set(d) == {"cot_noise", "answer_sampling", "both"}
    for v in d.values():
        assert 0 <= v["pass1"] <= v["pass@6"] <= 1 and 1 <= v["distinct_answers"] <= 6
    # With a greedy CoT every sample of a prompt has the same CoT text; all spread is in the answers.
    assert d["answer_sampling"]["distinct_cots"] == 1
    if kind != "fuzzy":   # fuzzy's near-one-hot p hides small noise in the greedy shadow of a random model
        assert d["cot_noise"]["distinct_cots"] > 1
    # Answers sampled at T = 1 from a random model differ between samples.
    assert d["answer_sampling"]["distinct_answers"] > 1 and d["both"]["distinct_answers"] > 1


def test_cli_writes_snr_and_diversity(tmp_path, capsys):
    model = save_tiny(tmp_path / "m", seed=1)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "snr.json"
    cfg = tmp_path / "diag.yaml"
    cfg.write_text(yaml.safe_dump({"model": str(model), "data": str(data), "modes": ["fuzzy"], "batches": 9,
                                   "template": "toy", "gamma": 0.5}))
    assert main(["--config", str(cfg), "--modes", "hard", "soft", "--batches", "3",
                 "--prompts", "2", "--group", "2", "--max-cot-tokens", "4", "--max-answer-tokens", "2",
                 "--reward", "tests.helpers:parity_reward", "diversity=3",
                 "--diversity-prompts", "2", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    c = res["config"]           # flags beat the file, the override sets what neither gives, the file the rest
    assert (c["modes"], c["batches"], c["diversity"], c["gamma"], c["template"]) == (["hard", "soft"], 3, 3, 0.5, "toy")
    assert list(res["modes"]) == ["hard", "soft"] and res["modes"]["hard"]["batches"] == 3
    for kind in ("hard", "soft"):
        r = res["modes"][kind]
        for term in ("total", "cot", "answer", "null"):
            assert 0 < r[term]["snr"] <= 1 and r[term]["grad_norm"] > 0
        assert set(r["diversity"]) == {"cot_noise", "answer_sampling", "both"}
    assert "snr" in capsys.readouterr().out
    from softcot.tables import diversity_table, snr_table
    assert [r[0] for r in snr_table(str(out)).rows] == ["hard", "soft"]
    rows = diversity_table(str(out)).rows
    assert sorted((r[0], r[1]) for r in rows) == sorted((m, c) for m in ("hard", "soft")
                                                        for c in ("cot_noise", "answer_sampling", "both"))


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_term_gradients_equal_one_backward_per_term(tmp_path, kind):
    """The shared scoring pass gives each term's gradient as a separate backward through the training loss does."""
    from softcot.diagnose import term_gradients
    from softcot.gradstats import flat_grad
    from softcot.loss import Scorer, backward_microbatches, rloo_advantages
    from softcot.modeling import ModelConfig, load_model
    from softcot.rollout import rollout
    from softcot.schema import CoTMode
    model, tok = load_model(ModelConfig(name_or_path=str(save_tiny(tmp_path / "m", seed=2))), device="cpu")
    ro = rollout(model, tok, [f"Q: {i}+1\nA:" for i in range(12)], CoTMode(kind),
                 RolloutConfig(max_cot_tokens=6, max_answer_tokens=3), generator=torch.Generator().manual_seed(1))
    adv = rloo_advantages([float(i % 3) for i in range(12)], 4)
    null = adv[torch.randperm(12, generator=torch.Generator().manual_seed(0))]
    scorer = Scorer(model)
    got = term_gradients(model, scorer, ro, adv, null, micro_batch=5)
    for key, a, f in (("cot", adv, lambda t: t["cot"]), ("answer", adv, lambda t: t["answer"]),
                      ("null", null, lambda t: t["cot"] + t["answer"])):
        model.zero_grad(set_to_none=True)
        backward_microbatches(scorer, [ro], a, 5, lambda t, a, f=f: -(a * f(t)).sum() / 12)
        ref = flat_grad(model)
        assert float(ref.norm()) > 0
        assert torch.allclose(got[key], ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max())), key
