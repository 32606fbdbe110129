"""softcot.rewards: the Math-Verify judge on hand-checked cases, its memo, a crashing judge, and reward
functions called by keyword the way TRL's GRPOTrainer calls them."""
from __future__ import annotations

import pytest

from softcot.rewards import (CORRECT, JudgeError, call_reward, extract_boxed, judge, load_reward, math_reward,
                             normalize_gold, reward_columns, score_completion)

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


def test_extract_boxed_and_normalize_gold():
    assert extract_boxed("a \\boxed{1} b \\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert extract_boxed("so $\\boxed 5$.") == "5" and extract_boxed("\\fbox{7}") == "7"
    assert extract_boxed("\\boxed{1} then \\boxed{2") is None      # the last box never closes
    assert normalize_gold("Step one.\n#### 1,234") == "1234" and normalize_gold(" 3/4 ") == "3/4"


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


def test_a_crashing_judge_is_no_reward_not_zero(monkeypatch):
    import softcot.rewards as r

    def boom(pred, gold):
        raise JudgeError("simulated crash")
    monkeypatch.setattr(r, "judge", boom)
    assert score_completion("so \\boxed{4}", "4") is None
    assert score_completion("no box at all", "4") == 0.0


def test_math_reward_needs_one_gold_per_completion():
    with pytest.raises(ValueError, match="2 completions but 1 gold answers"):
        math_reward(["p", "p"], ["\\boxed{1}", "\\boxed{2}"], answer=["1"])


# --------------------------------------------------------------------------- TRL-style reward functions

PROMPTS = ["Q: what is twenty\nA:", "Q: 2+2\nA:"]           # 20 and 10 characters
COMPLETIONS = ["x" * 20, " so \\boxed{4}"]
IDS = [[5] * 20, [7, 8, 9]]
RECORDS = [{"id": "r0", "question": "what is twenty", "solution": "20", "answer": "20"},
           {"id": "r1", "question": "2+2", "solution": "\\boxed{4}", "answer": "4", "level": 1}]


def reward_len(completions, **kwargs):
    """TRL's documentation example: prefer completions of about 20 characters."""
    return [-abs(20 - len(completion)) for completion in completions]


def accuracy_reward(completions, solution, **kwargs):
    """A TRL-style reward that reads a dataset column by keyword."""
    return [1.0 if completion.strip().endswith(s) else 0.0 for completion, s in zip(completions, solution)]


def test_trl_length_reward_receives_the_completions_not_the_prompts():
    assert len(PROMPTS[0]) == 20 and len(COMPLETIONS[1]) != 20
    assert call_reward(reward_len, PROMPTS, COMPLETIONS, RECORDS) == [0, -abs(20 - len(COMPLETIONS[1]))]


def test_trl_reward_reads_a_dataset_column_by_keyword():
    assert call_reward(accuracy_reward, PROMPTS, COMPLETIONS, RECORDS) == [0.0, 1.0]
    assert call_reward(math_reward, PROMPTS, COMPLETIONS, RECORDS) == [0.0, 100.0]


def test_call_reward_passes_prompts_completions_ids_and_every_column():
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        return [0.0] * len(kwargs["completions"])
    call_reward(spy, PROMPTS, COMPLETIONS, RECORDS, completion_ids=IDS)
    assert seen["prompts"] == PROMPTS and seen["completions"] == COMPLETIONS and seen["completion_ids"] == IDS
    assert seen["id"] == ["r0", "r1"] and seen["solution"] == ["20", "\\boxed{4}"] and seen["answer"] == ["20", "4"]
    assert seen["level"] == [None, 1]                                # a column one record lacks
    assert set(seen) == {"prompts", "completions", "completion_ids", "id", "question", "solution", "answer", "level"}
    assert seen["question"] == ["what is twenty", "2+2"]
    seen.clear()
    call_reward(spy, PROMPTS, COMPLETIONS, RECORDS)
    assert "completion_ids" not in seen


def test_dataset_columns_cannot_shadow_prompts_completions_or_ids():
    recs = [{**r, "prompts": "column", "completions": "column", "completion_ids": "column"} for r in RECORDS]
    assert set(reward_columns(recs)) == {"id", "question", "solution", "answer", "level"}
    seen = {}

    def spy(prompts, completions, completion_ids, **kwargs):
        seen.update(prompts=prompts, completions=completions, completion_ids=completion_ids)
        return [0.0, 0.0]
    call_reward(spy, PROMPTS, COMPLETIONS, recs, completion_ids=IDS)
    assert seen == {"prompts": PROMPTS, "completions": COMPLETIONS, "completion_ids": IDS}


def test_a_reward_of_the_wrong_length_is_an_error():
    def short(completions, **kwargs):
        return [1.0]
    with pytest.raises(RuntimeError, match=r"reward short returned 1 values for 2 completions"):
        call_reward(short, PROMPTS, COMPLETIONS, RECORDS)
    with pytest.raises(RuntimeError, match=r"returned 3 values for 2 completions"):
        call_reward(lambda completions, **_: [1.0, 2.0, 3.0], PROMPTS, COMPLETIONS, RECORDS)


def test_load_reward_resolves_module_and_function():
    assert load_reward("softcot.rewards:math_reward") is math_reward
    from tests.helpers import parity_reward
    assert load_reward("tests.helpers:parity_reward") is parity_reward
    with pytest.raises(ValueError, match="expected 'module:function'"):
        load_reward("softcot.rewards.math_reward")
    with pytest.raises(ValueError, match="has no function nope"):
        load_reward("softcot.rewards:nope")
