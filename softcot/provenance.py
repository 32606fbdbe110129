"""Which code made a result: the git commit of softcot's own checkout (torch-free, no third-party imports).

    from softcot.provenance import provenance
    summary.update(provenance())       # {"code_commit": "3f2c...", "code_dirty": False}

`SOFTCOT_COMMIT` in the environment wins (a cluster job may run from a copy without .git, or from a wheel
built at a known commit). Otherwise `git rev-parse HEAD` runs in the folder above the package, and only
counts when that folder is the top of a git checkout: an installed copy that happens to lie inside some
other repository records "unknown", not that repository's commit. `code_dirty` says whether the package's
files differ from that commit (None when unknown).
"""
from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

ENV = "SOFTCOT_COMMIT"
UNKNOWN = "unknown"
_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        p = subprocess.run(["git", "-C", str(_ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):       # no git on this machine, or it hung
        return None
    return p.stdout.strip() if p.returncode == 0 else None


@lru_cache(maxsize=1)
def provenance() -> dict:
    """{"code_commit": 40-hex sha or "unknown", "code_dirty": bool or None}."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return {"code_commit": env, "code_dirty": None}
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != _ROOT:
        return {"code_commit": UNKNOWN, "code_dirty": None}
    sha = _git("rev-parse", "HEAD")
    if not sha:
        return {"code_commit": UNKNOWN, "code_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "softcot")
    return {"code_commit": sha, "code_dirty": None if status is None else bool(status)}


def code_commit() -> str:
    return provenance()["code_commit"]
