"""Task records and their order: one loader for training, evaluation and multiple-choice files, and the
deterministic prompt sampler of the trainer.

    recs = load_records("data/train.jsonl")                        # {id, question, answer, ...}
    recs = load_records("data/ood.jsonl", kind="choice")           # {id, question, choices, label, ...}
    recs = load_records(path, on_bad_row="skip"); recs.skipped     # [(file, 1-based row, reason), ...]

Every record comes back with a string `id` (its own, or its 0-based row number). A malformed row raises
softcot.io.DataError naming the file, the row and the fix; with on_bad_row="skip" it is left out and listed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from softcot.io import DataError, read_jsonl

RecordKind = Literal["qa", "choice"]


class Records(list):
    """Loaded records; `skipped` lists (file, 1-based row, reason) of the rows left out as malformed."""

    def __init__(self, *args: Any):
        super().__init__(*args)
        self.skipped: list[tuple[str, int, str]] = []


def _blank(value) -> bool:
    return value is None or not str(value).strip()


def row_problem(row: dict, kind: RecordKind) -> str | None:
    """Why `row` is not a usable record of `kind`, or None."""
    if kind == "qa":
        missing = [k for k in ("question", "answer") if _blank(row.get(k))]
        return f"missing or empty {', '.join(missing)}" if missing else None
    ch, lab = row.get("choices"), row.get("label")
    if (not isinstance(row.get("question"), str) or not isinstance(ch, list) or len(ch) < 2
            or not all(isinstance(c, str) for c in ch) or isinstance(lab, bool) or not isinstance(lab, int)
            or not 0 <= lab < len(ch)):
        return "need a question, a list of 2+ string choices and a 0-based label"
    return None


def load_records(path: str | Path, kind: RecordKind = "qa", *, on_bad_row: str = "error",
                 limit: int | None = None, source: str | None = None) -> Records:
    """The first `limit` usable records of a JSONL file (see the module docstring); `source` fills a
    missing `source` column."""
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', not {on_bad_row!r}")
    out = Records()
    for i, row in enumerate(read_jsonl(path), 1):
        if limit is not None and len(out) >= limit:
            break
        problem = row_problem(row, kind)
        if problem:
            if on_bad_row == "skip":
                out.skipped.append((str(path), i, problem))
                continue
            raise DataError(f"{path}, row {i}: {problem}; fix the row, normalise the file with `softcot "
                            f"prepare-data`, or set on_bad_row: skip to count and exclude such rows")
        rec = {**row, "id": str(row["id"] if row.get("id") is not None else i - 1)}
        if source is not None and not rec.get("source"):
            rec["source"] = source
        out.append(rec)
    if not out:
        raise DataError(f"{path}: no usable rows")
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise DataError(f"{path}: the id {dup!r} occurs more than once; every record needs its own id")
    return out


class PromptSampler:
    """Deterministic epochs of shuffled indices; the position (epoch, index) is checkpointed."""

    def __init__(self, n: int, seed: int, epoch: int = 0, index: int = 0):
        self.n, self.seed, self.epoch, self.index = n, seed, epoch, index
        self._perm = self._make_perm()

    def _make_perm(self) -> list[int]:
        import torch
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.index >= self.n:
                self.epoch, self.index = self.epoch + 1, 0
                self._perm = self._make_perm()
            out.append(self._perm[self.index])
            self.index += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}
