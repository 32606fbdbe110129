"""Shell safety of the workflow and the library: every config value that reaches a shell command in
workflow/rules is quoted, and the library never builds a shell string."""
from __future__ import annotations

import re

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
                if field[1] not in ("args", "overrides", "gguf", "data", "sets", "ood"):   # shlex.join-ed
                    pytest.fail(f"{smk.name}: unquoted {{{field[0]}.{field[1]}}} in: {line.strip()}")


def test_no_shell_strings_built_from_config():
    files = sorted((REPO / "softcot").rglob("*.py"))
    assert files
    for path in files:
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text, path
