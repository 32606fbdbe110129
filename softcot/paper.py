"""The paper's reference numbers, for "paper vs ours" side by side.

The values are those of Tables 1-8 of "Soft Tokens, Hard Truths" (Butt et al., arXiv 2509.19170v2),
transcribed from the shared notes ``shared/paper-tables.md`` into ``softcot/paper_tables.yaml``,
which ships with the package. Every value is kept as the string the paper prints ("75.9±1.3" is
mean±std over 3 seeds, 2 for the ablations; "no finetune" rows have no std; "-" is an empty cell).
tests/test_paper.py checks the YAML against the markdown value by value.

    load_paper_tables()["table3"]["columns"]    # ['HG', 'HS', 'HS32', 'FG', ...]
    paper_rows("table1", "llama8b_gsm8k")       # the Llama3.1-8B rows: no finetune, gsm8k hard/fuzzy/soft

Rows of tables 1-5 carry a ``preset`` (one of llama3b_gsm8k, llama3b_math, llama3b_deepscaler,
llama8b_gsm8k, qwen3b_math; a list of all of a model's presets for its "no finetune" row).
Tables 6-8 are ablations without presets.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources

from softcot.config import load_yaml

TABLES = tuple(f"table{i}" for i in range(1, 9))


@lru_cache(maxsize=1)
def _tables() -> dict:
    text = resources.files("softcot").joinpath("paper_tables.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


def load_paper_tables() -> dict:
    """All of paper_tables.yaml: table1..table8 ({title, columns, rows, ...}), notes, source.

    The file is read once; each call returns a fresh copy, so callers may modify it freely."""
    return copy.deepcopy(_tables())


def _presets_of(row: dict) -> list[str]:
    p = row.get("preset")
    if p is None:
        return []
    return [p] if isinstance(p, str) else list(p)


def paper_presets() -> list[str]:
    """Every preset name that some row of the paper tables maps to, sorted."""
    t = _tables()
    return sorted({p for name in TABLES for row in t[name]["rows"] for p in _presets_of(row)})


def paper_rows(table: str, preset: str) -> list[dict]:
    """The rows of ``table`` ("table1".."table8") that belong to ``preset``, in the paper's order.

    A model's "no finetune" row belongs to every preset of that model. Each row comes back as
    {"model", "method", "values": {column: value string}}. Tables without presets (6-8) give [].
    """
    t = _tables()
    if table not in TABLES:
        raise KeyError(f"unknown paper table {table!r}; expected one of {', '.join(TABLES)}")
    known = paper_presets()
    if preset not in known:
        raise ValueError(f"unknown paper preset {preset!r}; expected one of {', '.join(known)}")
    cols = t[table]["columns"]
    out = []
    for row in t[table]["rows"]:
        if preset in _presets_of(row):
            out.append({"model": row.get("model"), "method": row.get("method"),
                        "values": dict(zip(cols, row["values"], strict=True))})
    return out
