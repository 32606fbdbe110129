"""Row parsers of the benchmarks in softcot.benchmarks: one function per column layout, each turning a raw row
(hub or ../shared/data layout) into softcot's record schema, or raising BadRow naming the column and the fix.

    from softcot.benchmark_rows import PARSERS
    PARSERS["gsm8k"]({"question": "1+1?", "answer": "... #### 2"}, "test.jsonl")   # {"question", "answer": "2", ...}
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Callable

from softcot.rewards import extract_boxed


class BadRow(Exception):
    """Raised by a row parser; load_benchmark adds the file and row number."""

    def __init__(self, column: str, problem: str, fix: str):
        super().__init__(f"column '{column}' {problem}; fix: {fix}")


# ----------------------------------------------------------------------------------------------------
# Small parsing helpers


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if absent or empty."""
    return extract_boxed(text) or None


def _text(row: dict, *columns: str) -> str:
    """The first present, non-empty string among columns; BadRow naming the first column otherwise."""
    for c in columns:
        v = row.get(c)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str) and v.strip():
            return v.strip()
    state = "is empty" if any(c in row for c in columns) else "is missing"
    raise BadRow(columns[0], state, f"give every row a non-empty '{columns[0]}' or drop the row")


def _as_list(value: Any) -> list | None:
    """Lists arrive as lists (json, parquet, hub) or as their repr (csv exports)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return None
    if isinstance(value, tuple):
        value = list(value)
    return value if isinstance(value, list) else None


def _label(value: Any, n: int, column: str, letters: list[str] | None = None) -> int:
    """A 0-based label from an int, a digit string or a letter (A=0); checked against n choices."""
    letters = letters or [chr(65 + k) for k in range(n)]
    v = value.strip() if isinstance(value, str) else value
    if isinstance(v, str) and v in letters:
        k = letters.index(v)
    elif isinstance(v, str) and v.lstrip("-").isdigit():
        k = int(v)
    elif isinstance(v, int) and not isinstance(v, bool):
        k = v
    else:
        raise BadRow(column, f"is {value!r}, not one of {letters} or an index",
                      "set it to the correct choice's label")
    if not 0 <= k < n:
        raise BadRow(column, f"is {value!r}, out of range for {n} choices", "set it to the correct choice's label")
    return k


# ----------------------------------------------------------------------------------------------------
# Row parsers: (row, origin) -> record without id/source. Each accepts the hub layout and the local one.


def _gsm8k(row: dict, origin: str) -> dict:
    question, solution = _text(row, "question"), _text(row, "answer")
    if "####" not in solution:
        raise BadRow("answer", "has no '#### <final answer>' line", "end the solution with '#### <number>'")
    gold = re.sub(r"[,\s]", "", solution.rsplit("####", 1)[1])
    if not gold:
        raise BadRow("answer", "has nothing after '####'", "put the final number after '####'")
    return {"question": question, "answer": gold}


def _math(row: dict, origin: str) -> dict:
    rec = {"question": _text(row, "problem", "question")}
    gold = row.get("answer")
    gold = str(gold).strip() if gold is not None else ""
    if not gold and row.get("solution"):  # hub MATH has no answer column: the last \boxed{} is the gold
        solution = row["solution"]
        gold = last_boxed(solution if isinstance(solution, str) else str(solution)) or ""
        if not gold:
            raise BadRow("solution", "has no \\boxed{...} final answer (or its braces do not balance)",
                          "add the final answer as \\boxed{...} or an 'answer' column")
    if not gold:
        raise BadRow("answer", "is empty" if "answer" in row else "is missing",
                      "fill in the gold final answer (or add a solution ending in \\boxed{...})")
    rec["answer"] = gold
    for key, columns in (("level", ("level",)), ("subject", ("subject", "type")), ("unique_id", ("unique_id",))):
        for c in columns:
            if row.get(c) is not None:
                rec[key] = row[c]
                break
    rec["id"] = row.get("unique_id")
    return rec


def olympiad_keep(row: dict) -> bool:
    """True for an English, text-only, open-ended maths problem with a final answer (the paper's 675).

    Uses whichever columns exist, so the hub's full configs and the pre-filtered local file both work:
    ``language`` must be English; ``modality`` must be text-only and no ``image_N`` column may be set;
    no image reference ('<img', '![') in ``question`` or ``context``; ``subject`` must be maths;
    ``question_type`` must not be a theorem proof; ``final_answer`` must hold a non-empty answer.
    """
    def low(c: str) -> str:
        return str(row.get(c) or "").strip().lower()

    if low("language") and not low("language").startswith("en"):
        return False
    if low("modality") and ("multi" in low("modality") or "text" not in low("modality")):
        return False
    if any(row.get(c) not in (None, "") for c in row if re.fullmatch(r"image_\d+", c)):
        return False
    if any(tag in str(row.get(c) or "") for c in ("question", "context") for tag in ("<img", "![")):
        return False
    if low("subject") and not low("subject").startswith("math"):
        return False
    if "proof" in low("question_type") or "theorem" in low("question_type"):
        return False
    answers = _as_list(row.get("final_answer"))
    if answers is None:
        answers = [row.get("final_answer")]
    return any(str(a).strip() for a in answers if a is not None)


def _olympiad(row: dict, origin: str) -> dict:
    question = _text(row, "question")
    context = row.get("context")
    if isinstance(context, str) and context.strip():  # some problems state their setting in `context`
        question = f"{context.strip()}\n\n{question}"
    answers = _as_list(row.get("final_answer"))
    answers = answers if answers is not None else [row.get("final_answer")]
    gold = ", ".join(str(a).strip() for a in answers if a is not None and str(a).strip())
    if not gold:
        raise BadRow("final_answer", "is missing or empty", "give the row a final_answer list")
    rec = {"question": question, "answer": gold, "id": row.get("id")}
    rec.update({c: row[c] for c in ("subfield", "answer_type", "is_multiple_answer", "unit") if c in row})
    return rec


def _arc(row: dict, origin: str) -> dict:
    q = row.get("question")
    if isinstance(q, dict):  # original ARC jsonl: {"stem", "choices": [{"text", "label"}]}
        stem, raw = q.get("stem"), q.get("choices") or []
        texts = [c.get("text") for c in raw if isinstance(c, dict)]
        labels = [str(c.get("label")) for c in raw if isinstance(c, dict)]
    else:  # hub: question str, choices {"text": [...], "label": [...]}
        stem, raw = q, row.get("choices")
        raw = raw if isinstance(raw, dict) else {}
        texts = _as_list(raw.get("text")) or []
        labels = [str(x) for x in (_as_list(raw.get("label")) or [])]
    if not isinstance(stem, str) or not stem.strip():
        raise BadRow("question", "has no question text", "give the row its question stem")
    if len(texts) < 2 or len(texts) != len(labels) or not all(isinstance(t, str) for t in texts):
        raise BadRow("choices", "does not hold matching text/label lists of 2+ choices", "repair the choices")
    key = str(row.get("answerKey", "")).strip()
    if key not in labels:  # labels are letters A-E or, for some NY Regents items, digits 1-5
        raise BadRow("answerKey", f"is {key!r}, not one of the choice labels {labels}", "set it to a choice's label")
    return {"question": stem.strip(), "choices": texts, "label": labels.index(key), "id": row.get("id")}


def _mmlu(row: dict, origin: str) -> dict:
    if "_fields" in row:  # original headerless csv: question, A, B, C, D, answer letter
        fields = row["_fields"]
        if len(fields) != 6:
            raise BadRow("fields", f"has {len(fields)} fields, expected 6 (question, 4 options, answer letter)",
                          "quote fields that contain commas")
        subject = re.sub(r"_(test|val|dev)$", "", Path(origin).stem)
        row = {"question": fields[0], "choices": fields[1:5], "answer": fields[5], "subject": subject}
    choices = _as_list(row.get("choices"))
    if not choices or len(choices) < 2:
        raise BadRow("choices", "is missing or has fewer than 2 options", "give the row its options")
    return {"question": _text(row, "question"), "choices": [str(c) for c in choices],
            "label": _label(row.get("answer"), len(choices), "answer"), "subject": row.get("subject")}


def _hellaswag_clean(text: str) -> str:
    """The WikiHow markup clean-up used for ../shared/data/hellaswag (and lm-eval-harness)."""
    for tag in ("[header]", "[step]", "[substeps]"):
        text = text.replace(tag, "")
    text = text.replace(" [title]", ". ").replace("[title] ", "").replace("[title].", "")
    return text.replace("  ", " ").strip()


def _hellaswag(row: dict, origin: str) -> dict:
    endings = _as_list(row.get("endings"))
    if not endings or not all(isinstance(e, str) for e in endings):
        raise BadRow("endings", "is missing or not a list of strings", "give the row its candidate endings")
    if "activity_label" in row:  # hub layout: rebuild "label: ctx" and clean it like the local file
        ctx = row.get("ctx") or f"{row.get('ctx_a') or ''} {row.get('ctx_b') or ''}".strip()
        if not ctx.strip():
            raise BadRow("ctx", "is empty", "give the row its context")
        question = _hellaswag_clean(f"{row['activity_label']}: {ctx}")
        endings = [_hellaswag_clean(e) for e in endings]
    else:
        question = _text(row, "ctx")
    label = row.get("label")
    if label is None or label == "":  # the hub's test split has no labels
        raise BadRow("label", "is empty (unlabelled split?)", "use the validation split or add labels")
    rec = {"question": question, "choices": endings, "label": _label(label, len(endings), "label")}
    if row.get("activity_label"):
        rec["activity_label"] = row["activity_label"]
    return rec


def _plain_qa(row: dict, origin: str) -> dict:
    """gsm_symbolic / champ rows (generated, or reloaded from a prepare-data JSONL)."""
    rec = {"question": _text(row, "question"), "answer": _text(row, "answer"), "id": row.get("id")}
    if row.get("category"):
        rec["category"] = row["category"]
    return rec


PARSERS: dict[str, Callable[[dict, str], dict]] = {
    "gsm8k": _gsm8k, "math": _math, "math500": _math, "deepscaler": _math, "olympiadbench": _olympiad,
    "arc": _arc, "mmlu": _mmlu, "hellaswag": _hellaswag, "gsm_symbolic": _plain_qa, "champ": _plain_qa,
}
FILTERS: dict[str, Callable[[dict], bool]] = {"olympiadbench": olympiad_keep}
