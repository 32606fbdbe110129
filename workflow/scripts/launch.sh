#!/usr/bin/env bash
# launch.sh GPUS SUBCOMMAND ARGS...: run a softcot sub-command with `accelerate launch` on GPUs (one
# process per GPU, committed accelerate config) or as plain `softcot` on the CPU. GPUS is the job's
# `gpu` resource, so a SLURM profile that sets it switches the launcher too.
set -euo pipefail
gpus="$1"
shift
if [ "$gpus" -gt 1 ]; then
    exec accelerate launch --config_file profiles/accelerate/8gpu.yaml --num_processes "$gpus" -m softcot.cli "$@"
elif [ "$gpus" -eq 1 ]; then
    exec accelerate launch --config_file profiles/accelerate/1gpu.yaml --num_processes 1 -m softcot.cli "$@"
else
    exec softcot "$@"
fi
