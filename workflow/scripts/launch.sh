#!/usr/bin/env bash
# launch.sh GPUS SUBCOMMAND ARGS...: run a softcot sub-command with `accelerate launch` on GPUs (one
# process per GPU, committed accelerate config) or as plain `softcot` on the CPU. GPUS is the job's
# `gpu` resource, so a SLURM profile that sets it switches the launcher too. SOFTCOT_STRATEGY (ddp |
# fsdp, the train rule passes train.settings.strategy) picks the multi-GPU config: 8gpu.yaml (DDP) or
# fsdp.yaml (FSDP full shard); one GPU runs unsharded either way.
set -euo pipefail
gpus="$1"
shift
case "${SOFTCOT_STRATEGY:-ddp}" in
    ddp) multi=profiles/accelerate/8gpu.yaml ;;
    fsdp) multi=profiles/accelerate/fsdp.yaml ;;
    *) echo "launch.sh: SOFTCOT_STRATEGY=${SOFTCOT_STRATEGY}: allowed ddp | fsdp (train.settings.strategy)" >&2; exit 2 ;;
esac
if [ "$gpus" -gt 1 ]; then
    exec accelerate launch --config_file "$multi" --num_processes "$gpus" -m softcot.cli "$@"
elif [ "$gpus" -eq 1 ]; then
    exec accelerate launch --config_file profiles/accelerate/1gpu.yaml --num_processes 1 -m softcot.cli "$@"
else
    exec softcot "$@"
fi
