"""The embedded default's data: procedural, seeded reasoning tasks small enough for a char-level model.

Main family (`source: "toy_arith"`): multi-step +/- chains over single-digit operands whose running value
stays in [0, max_value]. Difficulty = number of steps.

    question  7+5-3+2
    cot       7+5=12-3+2 12-3=9+2 9+2=11 The final answer is: \\boxed{11}   (cot_style "chain", default)
              12-3+2 = 9+2 = 11 The final answer is: \\boxed{11}            (cot_style "rewrite")
              7+5=12 12-3=9 9+2=11 The final answer is: \\boxed{11}         (cot_style "steps")
    demo      format_prompt(question) + " " + cot   ->   "Q: 7+5-3+2\\nA: 7+5=12-3+2 12-3=9+2 ..."

In the default "chain" style every character of the CoT is either a local computation (the result right
after its operation) or a copy of the text after the previous `=` (the running value and the operations
still to do), both easy for a tiny transformer. With "steps" a ~1M-parameter char model must find the k-th
operand of the question by counting: in six 250-400-step runs almost all its errors were copying the wrong
operand and greedy test accuracy ended anywhere in 18-86%; with "rewrite" it copies well but computes
poorly (the operation sits a whole state back): 16% after 300 steps.

`shortcut_rate` (default 0) turns that fraction of the pre-training demos into answers without a chain of
thought, `The final answer is: \\boxed{11}` (same questions; the record gets `"shortcut": true`): a base that
sometimes answers without reasoning, a habit RL could unlearn (docs/experiments.md has what it did).

OOD family (`source: "toy_seq"`): sequence continuation as a 4-way multiple choice, `c,d,e,?` with
choices like ["g", "f", "e", "h"] and the index of the right one (by default letters a-z / A-Z counting up
or down by one, 2-5 terms shown; `seq_max_diff: 2` makes steps of +-1..2, and `seq_kind: numbers` gives
arithmetic sequences `2,5,8,11,?`: the default tiny model learns neither well in its budget without a chain
of thought, 38% and chance-level multiple-choice accuracy). Its pre-training demo is
`format_prompt(question) + " " + choices[label]`; multiple-choice scoring compares the model's
log-likelihood of `" " + choice` after the prompt.

Splits (written by `softcot toy-data`): train, val, test (steps_test), test_hard (steps_hard) of the main
family, `ood` (the OOD evaluation set) and `ood_train` (OOD demos for pre-training only, disjoint from
`ood`). No question appears in two splits. Every split is a deterministic function of the config; each
split draws from its own seeded stream, and the evaluation splits are drawn first, so changing `n_train`
leaves val/test/test_hard unchanged.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from softcot.config import ConfigError, load_config, require
from softcot.io import write_jsonl
from softcot.prompt import MARKER, TOY_PROMPT, TOY_SEQ_SOURCE, build_prompt
from softcot.rewards import extract_boxed

TOY_PROMPT_TEMPLATE = TOY_PROMPT
TOY_WORDS = (MARKER, "\\boxed{")   # whole tokens of the base model's char tokenizer (softcot.chartok)
ARITH_SOURCE = "toy_arith"
SEQ_SOURCE = TOY_SEQ_SOURCE
SPLITS = ("pretrain", "train", "val", "test", "test_hard", "ood", "ood_train")


def format_prompt(question: str, template: str = TOY_PROMPT_TEMPLATE) -> str:
    """Fill `{question}` in `template` (plain replacement, so braces elsewhere, e.g. `\\boxed{}`, are safe)."""
    return build_prompt(question, template)


def demo_text(record: dict, template: str = TOY_PROMPT_TEMPLATE) -> tuple[str, str]:
    """(prompt, completion) of a record's pre-training demo; the full text is prompt + completion."""
    prompt = format_prompt(record["question"], template)
    if record.get("source") == SEQ_SOURCE:
        return prompt, " " + record["choices"][record["label"]]
    return prompt, " " + record["cot"]


def is_correct(completion: str, gold: str) -> bool:
    ans = extract_boxed(completion)
    return ans is not None and ans.strip() == str(gold).strip()


@dataclass
class ToyConfig:
    seed: int = 0
    n_pretrain: int = 20000
    n_train: int = 4000
    n_val: int = 128
    n_test: int = 256
    n_test_hard: int = 256
    n_ood: int = 100
    n_ood_train: int = 260
    steps_pretrain: tuple[int, int] = (2, 3)  # the base model's demos (inclusive range of the number of operations)
    steps_train: tuple[int, int] = (3, 4)     # RL training problems
    steps_test: tuple[int, int] = (3, 4)      # val and test
    steps_hard: tuple[int, int] = (5, 6)      # test_hard
    max_operand: int = 9                      # operands are 1..max_operand, the start value 1..max_operand
    max_value: int = 20                       # every running value stays in [0, max_value]
    cot_style: str = "chain"                  # see the module docstring: "chain" | "rewrite" | "steps"
    seq_kind: str = "letters"                 # OOD sequences of "letters" (a-z, A-Z) or "numbers"
    seq_max_diff: int = 1                     # common difference in +-1..seq_max_diff
    seq_max_start: int = 30                   # numbers only: first term 0..seq_max_start
    seq_terms: tuple[int, int] = (2, 5)       # number of terms shown
    shortcut_rate: float = 0.0                # fraction of pre-training demos that skip the CoT (see above)

    def validate(self, prefix: str = "") -> None:
        for name in ("steps_pretrain", "steps_train", "steps_test", "steps_hard", "seq_terms"):
            rng = list(getattr(self, name))
            require(len(rng) == 2 and 1 <= rng[0] <= rng[1], prefix + name, f"got {rng}; need [min, max], 1 <= min <= max")
        for name in ("n_pretrain", "n_train", "n_val", "n_test", "n_test_hard", "n_ood", "n_ood_train"):
            require(getattr(self, name) >= 0, prefix + name, f"got {getattr(self, name)}; need >= 0")
        require(1 <= self.max_operand <= 9, prefix + "max_operand", f"got {self.max_operand}; need 1..9 (single digits)")
        require(self.max_value >= self.max_operand, prefix + "max_value",
                f"got {self.max_value}; need >= max_operand ({self.max_operand})")
        require(self.cot_style in ("chain", "rewrite", "steps"), prefix + "cot_style",
                f"got {self.cot_style!r}; allowed: 'chain', 'rewrite', 'steps'")
        require(self.seq_kind in ("letters", "numbers"), prefix + "seq_kind",
                f"got {self.seq_kind!r}; allowed: 'letters', 'numbers'")
        require(0.0 <= self.shortcut_rate < 1.0, prefix + "shortcut_rate",
                f"got {self.shortcut_rate}; need 0 <= shortcut_rate < 1")
        require(self.seq_max_start >= 0, prefix + "seq_max_start", f"got {self.seq_max_start}; need >= 0")
        require(self.seq_max_diff >= 1, prefix + "seq_max_diff", f"got {self.seq_max_diff}; need >= 1")


DEFAULT_TOY = ToyConfig()


# ----------------------------------------------------------------------------------------------------------
# generators

def arith_chain(rng: random.Random, n_steps: int, max_operand: int = 9, max_value: int = 20,
                cot_style: str = "rewrite") -> tuple[str, str, int]:
    """One chain: (question, CoT steps text, answer). Each op picks + or - (among those with a legal operand),
    then an operand that keeps the running value in [0, max_value].

    cot_style "rewrite": each step rewrites the remaining expression, `7+5-3+2` -> `12-3+2 = 9+2 = 11`
    (the next operand is always right after the running value, so the model copies instead of counting);
    "steps": one equation per step, `7+5=12 12-3=9 9+2=11` (a tiny model must find the k-th operand in the
    question by counting, which it learns late and erratically)."""
    v = rng.randint(1, max_operand)
    values, ops = [v], []
    for _ in range(n_steps):
        legal = [op for op in "+-" if (v + 1 <= max_value if op == "+" else v - 1 >= 0)]
        op = rng.choice(legal)
        hi = min(max_operand, max_value - v) if op == "+" else min(max_operand, v)
        b = rng.randint(1, hi)
        v = v + b if op == "+" else v - b
        ops.append(f"{op}{b}")
        values.append(v)
    question = str(values[0]) + "".join(ops)
    if cot_style == "steps":
        text = " ".join(f"{values[i]}{ops[i]}={values[i + 1]}" for i in range(n_steps))
    elif cot_style == "chain":
        text = " ".join(f"{values[i]}{ops[i]}={values[i + 1]}" + "".join(ops[i + 1:]) for i in range(n_steps))
    elif cot_style == "rewrite":
        text = " = ".join(str(values[i + 1]) + "".join(ops[i + 1:]) for i in range(n_steps))
    else:
        raise ValueError(f"cot_style: got {cot_style!r}; allowed: 'chain', 'rewrite', 'steps'")
    return question, text, v


def arith_record(rid: str, question: str, steps: str, answer: int, n_steps: int) -> dict:
    return {"id": rid, "question": question, "answer": str(answer), "source": ARITH_SOURCE,
            "cot": f"{steps} {MARKER} \\boxed{{{answer}}}", "n_steps": n_steps}


def shortcut(record: dict) -> dict:
    """The same problem demonstrated without a chain of thought: `The final answer is: \\boxed{11}`."""
    return {**record, "cot": f"{MARKER} \\boxed{{{record['answer']}}}", "shortcut": True}


def _draw_arith(split: str, n: int, steps: tuple[int, int], cfg: ToyConfig, seen: set[str]) -> list[dict]:
    rng = random.Random(f"toy-arith-{cfg.seed}-{split}")
    rows: list[dict] = []
    attempts, limit = 0, 100 * n + 1000
    while len(rows) < n:
        attempts += 1
        if attempts > limit:
            raise ConfigError(f"split {split}: could only draw {len(rows)} of {n} distinct questions with "
                             f"steps {steps}, max_operand {cfg.max_operand}, max_value {cfg.max_value}; "
                             "ask for fewer or widen the ranges")
        k = rng.randint(*steps)
        q, s, a = arith_chain(rng, k, cfg.max_operand, cfg.max_value, cfg.cot_style)
        if q in seen:
            continue
        seen.add(q)
        rows.append(arith_record(f"{split}-{len(rows):05d}", q, s, a, k))
    return rows


LETTER_ALPHABETS = ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _seq_space(cfg: ToyConfig) -> list[tuple[int, int, int, int]]:
    """Every OOD sequence as (alphabet, first, step, n_terms); alphabet -1 = numbers, else LETTER_ALPHABETS[i]."""
    space = []
    kinds = [(-1, cfg.seq_max_start + 1, None)] if cfg.seq_kind == "numbers" else \
        [(i, len(alpha), len(alpha)) for i, alpha in enumerate(LETTER_ALPHABETS)]
    for n_terms in range(cfg.seq_terms[0], cfg.seq_terms[1] + 1):
        for kind, n_start, size in kinds:
            for a in range(n_start):
                for d in range(-cfg.seq_max_diff, cfg.seq_max_diff + 1):
                    last = a + n_terms * d   # the answer
                    if d != 0 and last >= 0 and (size is None or last < size):
                        space.append((kind, a, d, n_terms))
    return space


def seq_record(rid: str, kind: int, a: int, d: int, n_terms: int, rng: random.Random) -> dict:
    """A 4-way multiple choice: the next term, and three distractors (the last term repeated, a step too
    far, off-by-one or two neighbours), shuffled; `label` indexes the right one."""
    size = None if kind < 0 else len(LETTER_ALPHABETS[kind])
    render = str if kind < 0 else LETTER_ALPHABETS[kind].__getitem__
    terms = [a + i * d for i in range(n_terms)]
    ans = a + n_terms * d
    cands = [ans - d, ans + d, ans + 1, ans - 1, ans + 2, ans - 2, ans + 2 * d, ans - 2 * d, ans + 3, ans - 3]
    pool = []
    for c in cands:
        if c >= 0 and (size is None or c < size) and c != ans and c not in pool:
            pool.append(c)
    distractors = rng.sample(pool, 3)
    choices = [ans] + distractors
    rng.shuffle(choices)
    return {"id": rid, "question": ",".join(render(t) for t in terms) + ",?",
            "choices": [render(c) for c in choices], "label": choices.index(ans), "source": SEQ_SOURCE}


def _draw_seq(cfg: ToyConfig) -> tuple[list[dict], list[dict]]:
    space = _seq_space(cfg)
    rng = random.Random(f"toy-seq-{cfg.seed}")
    rng.shuffle(space)
    need = cfg.n_ood + cfg.n_ood_train
    if need > len(space):
        raise ConfigError(f"n_ood + n_ood_train = {need} exceeds the {len(space)} distinct {cfg.seq_kind} sequences; "
                         "ask for fewer or widen seq_terms / seq_max_diff (/ seq_max_start for numbers)")
    ood = [seq_record(f"ood-{i:05d}", *space[i], rng) for i in range(cfg.n_ood)]
    train = [seq_record(f"ood_train-{i:05d}", *space[cfg.n_ood + i], rng) for i in range(cfg.n_ood_train)]
    return ood, train


def make_splits(cfg: ToyConfig = DEFAULT_TOY) -> dict[str, list[dict]]:
    """All splits as {name: records}; deterministic in `cfg` (and so in `cfg.seed`)."""
    cfg.validate()
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    # Evaluation splits first, so their content does not depend on n_train.
    out["test_hard"] = _draw_arith("test_hard", cfg.n_test_hard, cfg.steps_hard, cfg, seen)
    out["test"] = _draw_arith("test", cfg.n_test, cfg.steps_test, cfg, seen)
    out["val"] = _draw_arith("val", cfg.n_val, cfg.steps_test, cfg, seen)
    out["train"] = _draw_arith("train", cfg.n_train, cfg.steps_train, cfg, seen)
    out["pretrain"] = _draw_arith("pretrain", cfg.n_pretrain, cfg.steps_pretrain, cfg, seen)
    if cfg.shortcut_rate > 0:   # its own stream: the questions of every split stay the same
        rng = random.Random(f"toy-shortcut-{cfg.seed}")
        out["pretrain"] = [shortcut(r) if rng.random() < cfg.shortcut_rate else r for r in out["pretrain"]]
    out["ood"], out["ood_train"] = _draw_seq(cfg)
    return {k: out[k] for k in SPLITS}


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="softcot toy-data", description=(
        "Write the embedded default's procedural tasks: OUT/{pretrain,train,val,test,test_hard,ood,ood_train}.jsonl. "
        f"Config keys (YAML mapping or key=value): {', '.join(f.name for f in dataclasses.fields(ToyConfig))}."))
    p.add_argument("--config", help="YAML file of ToyConfig fields (defaults: DEFAULT_TOY)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seed=1 steps_hard=[5,7]")
    p.add_argument("--out", required=True, help="output directory")
    args = p.parse_intermixed_args(argv)
    splits = make_splits(load_config(ToyConfig, args.config, args.overrides))
    write_splits(splits, args.out)
    print(" ".join(f"{k}={len(v)}" for k, v in splits.items()) + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
