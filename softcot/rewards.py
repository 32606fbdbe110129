"""Rewards for maths answers, called the way TRL's GRPOTrainer calls them, so users can plug in their own.

    reward(prompts=list[str], completions=list[str], **dataset_columns) -> list[float | None]

`call_reward` passes everything by keyword, as TRL does: `prompts`, `completions`, every column of the
records (`answer`, `id`, ...), and `completion_ids` where the caller has them. A reward function should
take `**kwargs` for the columns it does not use.

`math_reward` scores 100 when Math-Verify judges the last `\\boxed{...}` of the completion equal to the
gold `answer` column, 10 when a boxed answer was extracted but is wrong, 0 when there is none. A judge that
crashes or times out gives None ("no reward"; excluded from the RLOO baseline and counted in the metrics),
never a silent 0.

Math-Verify times out with `signal.alarm`, which works only in the main thread: off the main thread we
pass its timeout options as None (no alarm).
"""
from __future__ import annotations

import functools
import importlib
import logging
import re
import threading
from typing import Callable

CORRECT, FORMATTED, WRONG_FORMAT = 100.0, 10.0, 0.0
RewardFn = Callable[..., list]

logging.getLogger("math_verify").setLevel(logging.ERROR)


class JudgeError(RuntimeError):
    """Math-Verify failed on an answer (parse error or timeout)."""


def extract_boxed(text: str) -> str | None:
    """Contents of the last balanced `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in text, else None."""
    for m in reversed(list(re.finditer(r"\\(?:boxed|fbox)(\s*\{| )", text))):
        start = m.end()
        if m.group(1) == " ":                        # "\boxed 5$": the argument runs to the next '$' or space
            arg = re.match(r"([^\s$]+)", text[start:])
            return arg.group(1) if arg else None
        depth = 1
        for i in range(start, len(text)):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
        return None                                  # the last box never closes
    return None


def normalize_gold(gold: str) -> str:
    """GSM8K-style golds keep only what follows '####', without thousands separators."""
    gold = str(gold).strip()
    if "####" in gold:
        gold = gold.split("####")[-1].strip().replace(",", "")
    return gold


def judge(pred: str, gold: str) -> bool:
    """Math-Verify's verdict on a predicted answer string against the gold string. Raises JudgeError.

    Verdicts are memoised per (pred, gold): samples of one problem repeat their answers (a 128-problem x 8
    evaluation holds about 230 distinct pairs in 1,024), and Math-Verify costs ~0.3 ms a call. A failure is
    not memoised (lru_cache keeps no exceptions), so it is retried and reported each time."""
    return _judge(pred, gold, threading.current_thread() is threading.main_thread())


@functools.lru_cache(maxsize=1 << 16)
def _judge(pred: str, gold: str, main_thread: bool) -> bool:
    from math_verify import parse, verify
    pt = {} if main_thread else {"parsing_timeout": None}
    vt = {} if main_thread else {"timeout_seconds": None}
    gold = normalize_gold(gold)
    try:
        g = parse("\\boxed{" + gold + "}", raise_on_error=True, **pt)
        p = parse("\\boxed{" + pred + "}", raise_on_error=True, **pt)
        if not g:
            raise JudgeError(f"Math-Verify could not parse the gold answer {gold!r}")
        if not p:
            return False
        return bool(verify(g, p, raise_on_error=True, **vt))
    except JudgeError:
        raise
    except Exception as e:  # noqa: BLE001 - any crash inside the judge must surface, not score 0
        raise JudgeError(f"Math-Verify failed on pred={pred!r} gold={gold!r}: {type(e).__name__}: {e}") from e


def score_completion(completion: str, gold: str) -> float | None:
    boxed = extract_boxed(completion)
    if boxed is None:
        return WRONG_FORMAT
    try:
        return CORRECT if judge(boxed, gold) else FORMATTED
    except JudgeError as e:
        logging.getLogger("softcot.rewards").warning("%s", e)
        return None


def math_reward(prompts: list[str], completions: list[str], answer: list[str], **_columns) -> list[float | None]:
    """100 / 10 / 0 per completion against the dataset's `answer` column; None if the judge crashed."""
    if len(completions) != len(answer):
        raise ValueError(f"{len(completions)} completions but {len(answer)} gold answers")
    return [score_completion(c, g) for c, g in zip(completions, answer)]


RESERVED = ("prompts", "completions", "completion_ids")     # keywords a dataset column may not shadow


def reward_columns(records: list[dict]) -> dict[str, list]:
    """The records' columns as lists, one value per record (None where a record lacks the column)."""
    keys = set().union(*(r.keys() for r in records)) if records else set()
    return {k: [r.get(k) for r in records] for k in keys if k not in RESERVED}


def call_reward(fn: RewardFn, prompts: list[str], completions: list[str], records: list[dict],
                completion_ids: list[list[int]] | None = None) -> list:
    """Call a reward function by keyword, TRL-style; check it returned one value per completion."""
    kw = reward_columns(records)
    kw.update(prompts=prompts, completions=completions)
    if completion_ids is not None:
        kw["completion_ids"] = completion_ids
    out = list(fn(**kw))
    if len(out) != len(completions):
        name = getattr(fn, "__name__", repr(fn))
        raise RuntimeError(f"reward {name} returned {len(out)} values for {len(completions)} completions")
    return out


def load_reward(spec: str) -> RewardFn:
    """'softcot.rewards:math_reward' or 'my_pkg.my_mod:fn' -> the function."""
    mod, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"reward {spec!r}: expected 'module:function'")
    fn = getattr(importlib.import_module(mod), name, None)
    if fn is None:
        raise ValueError(f"reward {spec!r}: module {mod} has no function {name}")
    return fn
