"""softcot.generate: a few questions under several settings on the tiny trained answerer
(tests.helpers.train_answerer), the printed report, and the CLI (its errors are in tests/test_cli.py)."""
from __future__ import annotations

from softcot.generate import format_generations, generate, main
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig


def test_generate_rows_and_report(answerer_model):
    model, tok = answerer_model
    rcfg = RolloutConfig(max_cot_tokens=40, answer_temperature=0.0)
    rows = generate(model, tok, ["3+4", "1+6"], ["hard_greedy", "soft_greedy"], "Q: {question}\nA:", rcfg,
                    add_special_tokens=False)
    assert [(r["question"], r["setting"]) for r in rows] == [("3+4", "hard_greedy"), ("1+6", "hard_greedy"),
                                                             ("3+4", "soft_greedy"), ("1+6", "soft_greedy")]
    assert all(r["boxed"] in ("7", "8") and r["stopped_by_marker"] for r in rows)
    # The rows are those of a greedy rollout of the same prompts.
    ro = rollout(model, tok, ["Q: 3+4\nA:", "Q: 1+6\nA:"], CoTMode("hard", greedy=True), rcfg, add_special_tokens=False)
    assert [r["cot"] for r in rows[:2]] == ro.cot_text
    assert [r["answer"] for r in rows[:2]] == [p + a for p, a in zip(ro.prefill_text, ro.answer_text)]
    assert [r["cot_len"] for r in rows[:2]] == ro.cot_len.tolist()
    text = format_generations(rows)
    assert text.count("QUESTION:") == 2 and text.count("(greedy shadow)") == 2
    assert text.index("QUESTION: 3+4") < text.index("QUESTION: 1+6")
    assert f"boxed: {rows[0]['boxed']}" in text


def test_generate_cli_prints_each_setting(answerer, capsys):
    ckpt, _ = answerer
    rc = main(["--model", str(ckpt), "--template", "toy", "--settings", "hard_greedy,fuzzy_greedy",
               "--max-cot-tokens", "40", "3+4"])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("QUESTION: 3+4") == 1 and "--- hard_greedy:" in out and "--- fuzzy_greedy:" in out
    assert out.count("boxed: 7") + out.count("boxed: 8") == 2
