"""The data-parallel strategy of training: DDP (replicated) or FSDP full shard, both through accelerate.

    acc = make_accelerator("fsdp", mixed_precision="bf16", cpu=False)
    scorer, opt, sched = prepare(acc, Scorer(model), lambda params: make_optimizer(params, cfg.optim, steps))
    with full_params(acc, scorer):          # rollouts and greedy validation
        rollout(model, ...)

FSDP (`strategy: fsdp`, accelerate's FSDP plugin, FSDP1): full shard, one unit per decoder layer (the model's
`_no_split_modules`) plus the root unit (embeddings, final norm, LM head), parameters kept in fp32 (the
plugin's mixed-precision policy is fp32) and matrix products in bf16 through accelerate's autocast, exactly
as under DDP: the densities a rollout samples from and those the loss rescores stay the same numbers.

Why `full_params`: rollouts and validation call the decoder body and the LM head directly, outside the
FSDP root's forward, so nothing gathers the root unit's sharded parameters (the embedding matrix, the final
norm, the LM head); after a backward they are freed views (RuntimeError: storage of size 0). `full_params`
gathers every unit once (summon_full_params, writeback=False; the plan's "FSDP full params" term) and lets
the decoder layers run as plain modules for the phase: an FSDP unit's own forward inside summon_full_params
would reshard its parameters under the summon.

FSDP1 flattens parameters when it wraps the model, so the optimizer is created after `accelerate.prepare`
has wrapped the model (accelerate's order for FSDP1: prepare the model, then build the optimizer). Gradient
accumulation over micro-batches does not use no_sync under FSDP (no_sync would hold unsharded gradients).
Checkpoints hold the full (unsharded) model and optimizer state, gathered collectively by `gathered` and
scattered back by `loadable`, so the files have the DDP layout for the weights; an FSDP run's
optimizer.pt is keyed by parameter name and resumes only under FSDP.

accelerate enables FSDP on accelerator devices only; torch's FSDP also runs on CPU processes over gloo,
which `make_accelerator` uses for more than one CPU process (the tests compare it with one process).
"""
from __future__ import annotations

import contextlib
import os

import torch

from softcot.config import ConfigError

PREFIX = "model."           # the HF model's parameter names inside softcot.loss.Scorer


# Set by `accelerate launch` with an FSDP config before the process starts. An Accelerator built with an FSDP
# plugin sets it as well, so it is read once, at import, and cleared for a later DDP Accelerator.
LAUNCHED_WITH_FSDP = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def make_accelerator(strategy: str, **kwargs):
    """An Accelerator for `strategy` (ddp | fsdp); kwargs go to Accelerator (mixed_precision, cpu)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    if strategy != "fsdp":
        if LAUNCHED_WITH_FSDP:
            raise ConfigError("strategy: ddp, but this process was launched with an FSDP accelerate config "
                              "(ACCELERATE_USE_FSDP=true); set strategy: fsdp or launch with "
                              "profiles/accelerate/8gpu.yaml")
        os.environ.pop("ACCELERATE_USE_FSDP", None)
        return Accelerator(**kwargs)
    plugin = fsdp_plugin()
    acc = Accelerator(fsdp_plugin=plugin, **kwargs)
    if acc.num_processes > 1 and acc.distributed_type != DistributedType.FSDP:
        if acc.device.type != "cpu":
            raise ConfigError(f"strategy: fsdp is not available for accelerate's {acc.distributed_type} "
                              f"on {acc.device.type}; use strategy: ddp")
        # torch's FSDP over gloo (see the docstring). Both shared states: AcceleratorState re-reads
        # PartialState's. FSDP compares device_id with its CPU device, which has no index.
        from accelerate.state import PartialState
        for shared in (PartialState._shared_state, acc.state.__dict__):
            shared.update(distributed_type=DistributedType.FSDP, device=torch.device("cpu"))
        acc.state.fsdp_plugin = plugin
    return acc


def fsdp_plugin():
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import MixedPrecision
    fp32 = MixedPrecision(param_dtype=torch.float32, reduce_dtype=torch.float32, buffer_dtype=torch.float32)
    return FullyShardedDataParallelPlugin(
        fsdp_version=1, sharding_strategy="FULL_SHARD", auto_wrap_policy="transformer_based_wrap",
        backward_prefetch="BACKWARD_PRE", mixed_precision_policy=fp32, use_orig_params=False,
        sync_module_states=False, cpu_ram_efficient_loading=False, limit_all_gathers=True,
        state_dict_type="FULL_STATE_DICT")


def is_fsdp(acc) -> bool:
    from accelerate.utils import DistributedType
    return acc is not None and acc.distributed_type == DistributedType.FSDP


def prepare(acc, scorer: torch.nn.Module, make_opt):
    """(prepared scorer, prepared optimizer, scheduler); `make_opt(params)` -> (optimizer, scheduler).

    Under FSDP the scorer is wrapped first (one unit per decoder layer of `scorer.model`) and the optimizer
    is built over the flattened shards; otherwise the optimizer comes first, as accelerate's DDP expects."""
    if not is_fsdp(acc):
        opt, sched = make_opt(scorer.parameters())
        scorer, opt = acc.prepare(scorer, opt)
        return scorer, opt, sched
    layers = list(getattr(scorer.model, "_no_split_modules", None) or [])
    if not layers:
        raise ConfigError(f"strategy: fsdp needs the model's decoder-layer class (_no_split_modules); "
                          f"{type(scorer.model).__name__} has none, use strategy: ddp")
    acc.state.fsdp_plugin.transformer_cls_names_to_wrap = layers
    scorer = acc.prepare(scorer)
    opt, sched = make_opt(scorer.parameters())
    return scorer, acc.prepare(opt), sched


@contextlib.contextmanager
def full_params(acc, module: torch.nn.Module):
    """Gather every parameter of the prepared `module` for a phase that calls its submodules directly
    (rollouts, greedy validation); a no-op unless FSDP. Collective: every process must enter it."""
    if not is_fsdp(acc):
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    with FSDP.summon_full_params(module, writeback=False, recurse=True), _plain_units(module):
        yield


@contextlib.contextmanager
def _plain_units(root: torch.nn.Module):
    """Replace each inner FSDP unit by the module it wraps (its parameters are whole under summon), then
    put the units back."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    swaps = []
    for name, sub in list(root.named_modules()):
        if sub is root or not isinstance(sub, FSDP):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        swaps.append((parent, child, sub))
    # Deepest first, so that a parent's name still resolves when its children are swapped.
    for parent, child, sub in reversed(swaps):
        setattr(parent, child, sub._fsdp_wrapped_module)
    try:
        yield
    finally:
        for parent, child, sub in swaps:
            setattr(parent, child, sub)


def agree(acc, value):
    """The main process's `value` on every process under FSDP (decisions that gate a collective)."""
    if not is_fsdp(acc) or acc.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list
    return broadcast_object_list([value], from_process=0)[0]


def grad_sq_sum(acc, params) -> float:
    """Sum of squared gradient entries over every process's shard under FSDP (the local sum otherwise)."""
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    for p in params:
        if p.grad is not None:
            total += p.grad.double().pow(2).sum()
    if is_fsdp(acc) and acc.num_processes > 1:
        torch.distributed.all_reduce(total)
    return float(total)


# --------------------------------------------------------------------------- full state for files

def _full_state_type(module, rank0_only: bool):
    """FULL_STATE_DICT, gathered to CPU memory on GPUs (torch's offload_to_cpu breaks CPU-resident shards)."""
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    offload = next(module.parameters()).device.type != "cpu"
    return FSDP.state_dict_type(module, StateDictType.FULL_STATE_DICT,
                                FullStateDictConfig(offload_to_cpu=offload, rank0_only=rank0_only),
                                FullOptimStateDictConfig(offload_to_cpu=offload, rank0_only=rank0_only))


def hf_state_dict(acc, scorer) -> dict | None:
    """Under FSDP, the HF model's full state dict on the main process ({} elsewhere); None otherwise (save
    the module as it is). Collective under FSDP."""
    if not is_fsdp(acc):
        return None
    with _full_state_type(scorer, rank0_only=True):
        sd = scorer.state_dict()
    return {k.removeprefix(PREFIX): v for k, v in sd.items() if k.startswith(PREFIX)}


class _Saved:
    """A gathered state dict in the shape save_checkpoint expects (an object with .state_dict())."""

    def __init__(self, state: dict):
        self._state = state

    def state_dict(self) -> dict:
        return self._state


def gathered(acc, scorer, opt):
    """(model, optimizer) to hand to softcot.checkpoint.save_checkpoint on the main process. Under FSDP
    both are gathered here, a collective every process must call."""
    if not is_fsdp(acc):
        return acc.unwrap_model(scorer).model, opt
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    model_sd = hf_state_dict(acc, scorer)
    with _full_state_type(scorer, rank0_only=True):
        optim_sd = FSDP.optim_state_dict(scorer, _inner(opt))
    return _Saved(model_sd), _Saved(optim_sd)


class _ShardedModel:
    """load_state_dict of full HF-named weights into the FSDP-wrapped scorer (every process reads the file)."""

    def __init__(self, scorer):
        self.scorer = scorer

    def load_state_dict(self, weights: dict, strict: bool = True):
        with _full_state_type(self.scorer, rank0_only=False):
            res = self.scorer.load_state_dict({PREFIX + k: v for k, v in weights.items()}, strict=strict)
        return [k.removeprefix(PREFIX) for k in res.missing_keys], [k.removeprefix(PREFIX) for k in res.unexpected_keys]


class _ShardedOptimizer:
    def __init__(self, scorer, opt):
        self.scorer, self.opt = scorer, opt

    def load_state_dict(self, full: dict) -> None:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with _full_state_type(self.scorer, rank0_only=False):
            flat = FSDP.optim_state_dict_to_load(self.scorer, _inner(self.opt), full)
        self.opt.load_state_dict(flat)


def loadable(acc, scorer, opt):
    """(model, optimizer) for softcot.checkpoint.load_checkpoint: under FSDP, loaders that scatter the
    full state of a checkpoint into the shards."""
    if not is_fsdp(acc):
        return acc.unwrap_model(scorer).model, opt
    return _ShardedModel(scorer), _ShardedOptimizer(scorer, opt)


def _inner(opt):
    return getattr(opt, "optimizer", opt)          # accelerate's AcceleratedOptimizer wraps the torch one
