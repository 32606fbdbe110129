"""Shell safety and form of the workflow and the library: every config value that reaches a shell command in
workflow/rules is quoted, the library never builds a shell string, and the rule files are snakefmt-clean."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

RULES = REPO / "workflow" / "rules"


def test_workflow_quotes_config_strings():
    files = sorted(RULES.glob("*.smk"))
    assert files, f"no rule files in {RULES}"
    for smk in files:
        for line in smk.read_text().splitlines():
            # every path or config value substituted into a shell command is quoted with :q
            for field in re.findall(r"\{(input|output|params)\.(\w+)\}", line):
                if field[1] not in ("args", "overrides", "gguf", "data", "sets", "ood", "also"):   # shlex.join-ed
                    pytest.fail(f"{smk.name}: unquoted {{{field[0]}.{field[1]}}} in: {line.strip()}")


def test_no_shell_strings_built_from_config():
    files = sorted((REPO / "softcot").rglob("*.py"))
    assert files
    for path in files:
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text, path


def test_rule_files_are_snakefmt_clean():
    """`snakefmt --check` with the settings of pyproject.toml ([tool.snakefmt]); fix with `snakefmt Snakefile workflow`.
    snakefmt is pinned in the test extra (pip install -e '.[test]')."""
    p = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", "Snakefile", "workflow"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "run `snakefmt Snakefile workflow`:\n" + (p.stdout + p.stderr)[-4000:]
