"""softcot.provenance: the git commit of softcot's own checkout, an environment override, and "unknown" for a copy
outside a checkout (also one that lies inside some other repository)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from softcot import provenance as prov

ROOT = Path(__file__).resolve().parents[1]


def _git(*args, cwd=ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def _in_copy(tmp_path: Path, env: dict | None = None) -> str:
    """provenance() of a copy of the module at tmp_path/softcot, in a fresh interpreter."""
    pkg = tmp_path / "softcot"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy2(ROOT / "softcot" / "provenance.py", pkg / "provenance.py")
    env = {**{k: v for k, v in os.environ.items() if k != prov.ENV}, "PYTHONPATH": str(tmp_path), **(env or {})}
    return subprocess.run([sys.executable, "-c", "from softcot.provenance import provenance; print(provenance())"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_the_checkouts_commit(monkeypatch):
    monkeypatch.delenv(prov.ENV, raising=False)
    prov.provenance.cache_clear()
    got = prov.provenance()
    assert got["code_commit"] == _git("rev-parse", "HEAD") and isinstance(got["code_dirty"], bool)
    prov.provenance.cache_clear()


def test_environment_override(monkeypatch):
    monkeypatch.setenv(prov.ENV, "abc123")
    prov.provenance.cache_clear()
    assert prov.provenance() == {"code_commit": "abc123", "code_dirty": None} and prov.code_commit() == "abc123"
    prov.provenance.cache_clear()


def test_unknown_outside_a_checkout(tmp_path):
    assert "'code_commit': 'unknown'" in _in_copy(tmp_path)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_unknown_inside_another_repository(tmp_path):
    _git("init", "-q", cwd=tmp_path)
    assert "'code_commit': 'unknown'" in _in_copy(tmp_path / "vendored")
