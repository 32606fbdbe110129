"""The memory plan: per-GPU memory of a training config, estimated before any job starts.

    softcot plan --config config/presets/llama8b_gsm8k.yaml
    softcot plan --config config/presets/llama3b_gsm8k.yaml train.settings.strategy=fsdp --gpus 4
    softcot plan --config train.yaml --gpus 0                    # a TrainConfig YAML, on the CPU

`--config` is a workflow config or preset (its `base.model`, `train.settings` and `resources.train`) or a
TrainConfig YAML; `key=value` overrides use that file's key paths. The workflow's config check
(softcot.workflow_config) runs the same plan and refuses a config whose peak exceeds
`resources.train.gpu_memory_gb`. No torch, no transformers: it answers in well under a second.

Notation. N parameters, N_lin those that go through a matrix product (every Linear, the LM head, but not
an untied input embedding nor the norms), per process W = number of processes (GPUs; 1 on the CPU),
d hidden, q = heads x head_dim, k = kv_heads x head_dim, I intermediate, V vocab, n_layers layers.
b = 2 bytes under bf16 autocast (precision auto on a GPU, or bf16), else 4. Per process: n rollouts of
a step = B G / W, R = min(rollout_batch, n), m = min(micro_batch, R). Sequence slots
S = P + L + Wp + A with P the assumed prompt length (`--prompt-tokens`, workflow key
`resources.train.plan_prompt_tokens`, default 256 tokens: the paper's prompt is ~90 tokens plus a GSM8K
question; MATH problems can be longer; 32 for the embedded default's char-level prompts), L = rollout.max_cot_tokens, Wp = 16 prefill tokens
(" The final answer is: \\boxed{" is ~10 BPE tokens), A = rollout.max_answer_tokens.

Terms (bytes, per process), in three phases: rollout (no gradients), update (teacher-forced forward and
backward of one micro-batch, gradients of earlier micro-batches held) and optimizer (AdamW step):
  weights            4 N fp32 master weights                     FSDP full shard: 4 N / W
  gradients          4 N (update, optimizer; freed before rollouts by zero_grad(set_to_none))   FSDP: / W
  AdamW states       8 N (exp_avg, exp_avg_sq)                                                FSDP: / W
  AdamW temporary    4 N / (W if FSDP): foreach AdamW's sqrt(exp_avg_sq) on a GPU (optimizer phase);
                     on the CPU the per-parameter loop holds two temporaries of the largest tensor
                     (sqrt(exp_avg_sq) and its quotient): 8 x largest tensor
  DDP buckets        4 N when W > 1 (DDP's gradient buckets, gradient_as_bucket_view off)
  autocast casts     2 N_lin under autocast: bf16 copies of the weights. Leaf fp32 weights are cached for
                     the whole autocast block (rollout and update phases); under FSDP the per-unit views
                     are cast per call and saved for backward, so with gradient checkpointing only one
                     unit's casts are live (2 x largest unit)
  FSDP units         update: the root unit (embeddings, final norm, LM head) stays gathered in fp32 through
                     forward and backward, plus two decoder-layer units (one prefetched), plus one unit's
                     unsharded fp32 gradient before its reduce-scatter:
                     4 U_root + 8 U_layer + 4 max(U_root, U_layer)
  FSDP full params   rollout: 4 N. Rollouts and greedy validation call the decoder outside the FSDP root's
                     forward, so softcot.distributed.full_params gathers every unit (summon_full_params,
                     writeback=False) for the phase; the sharded copy stays allocated (in `weights`)
  activations        update, T = m S tokens. Per token and layer without checkpointing:
                       2 (8 d + b d)               two RMSNorms: fp32 input and normalised copy, the cast
                                                   output the projections save
                       b (5 q + 2 k) + 2 b q       projections, RoPE, SDPA inputs and output, o_proj input;
                                                   the last term is repeat_kv's copies of K and V (HF uses
                                                   them whenever an attention mask is passed; 2 b k if the
                                                   model has no GQA)
                       4 b I                       gate, up, SiLU and product of the MLP
                     plus 12 d per token outside the layers (final norm, last hidden state).
                     Gradient checkpointing keeps each layer's fp32 input (4 d per token per layer) and
                     recomputes one layer at a time: 4 d n_layers T + one layer's full terms.
                     SDPA / flash / memory-efficient attention: no S x S attention memory is counted
                     (the math fallback would add heads x S^2 per layer).
  LM-head chunk      update, c = min(head_chunk, m (L + A)) scored positions per chunk:
                     c V (4 x 4 + (b if autocast)) bytes: fp32 logits, scaled logits, (log-)softmax and
                     its gradient, plus the bf16 head output. On a GPU the head is checkpointed per chunk;
                     on the CPU every chunk keeps its (log-)softmax (4 V per scored position) until backward
  KV cache           rollout: n_layers x 2 x kv_heads x head_dim x S x R x b (allocated once per rollout)
  rollout transient  rollout: the prompt forward's largest layer, R P (3 I + 4 d) b, repeat_kv's copies of
                     one layer's cache, 2 q S R b, and the step logits, R V (3 x 4 + b)
  CUDA context       1.5 GiB on a GPU (CUDA/NCCL context and the caching allocator's fragmentation; outside
                     torch.cuda.max_memory_allocated)
The peak is the largest phase total; it must fit `gpu_memory_gb` (GiB per GPU, as nvidia-smi's MiB / 1024).
Counts are steady state (after the first optimizer step has created the AdamW states).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field, replace

from softcot import config_layers
from softcot.arch import ALIASES, ARCHS, TOY_MODEL, TOY_PROMPT_TOKENS, Arch, resolve_arch  # noqa: F401  (re-exported)
from softcot.config import ConfigError, apply_overrides, from_dict, read_yaml
from softcot.schema import PretrainConfig, TrainConfig

GiB = 1024 ** 3
DEFAULT_PROMPT_TOKENS = 256
PREFILL_TOKENS = 16
DEFAULT_GPU_MEMORY_GB = 80.0            # H100 80GB
CUDA_CONTEXT = 1.5 * GiB
PHASES = ("rollout", "update", "optimizer")


# --------------------------------------------------------------------------- the estimate

@dataclass
class Setting:
    """Everything the plan depends on. `gpus` 0 means the CPU (one process)."""
    arch: Arch
    train: TrainConfig
    gpus: int = 1
    gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    keys: dict = field(default_factory=dict)      # how to name strategy, micro_batch, ... in advice

    @property
    def world(self) -> int:
        return max(1, self.gpus)

    @property
    def on_gpu(self) -> bool:
        return self.gpus > 0

    @property
    def autocast(self) -> bool:
        p = self.train.precision
        return p == "bf16" or (p == "auto" and self.on_gpu)

    @property
    def fsdp(self) -> bool:
        """Sharded only with more than one process (one process under strategy fsdp runs unwrapped)."""
        return self.train.strategy == "fsdp" and self.world > 1

    @property
    def local_rollouts(self) -> int:
        return max(1, self.train.prompts_per_step * self.train.group_size // self.world)

    @property
    def rollout_rows(self) -> int:
        return min(self.train.rollout_batch, self.local_rollouts)

    @property
    def micro_rows(self) -> int:
        return min(self.train.micro_batch, self.rollout_rows)

    @property
    def slots(self) -> int:
        r = self.train.rollout
        return self.prompt_tokens + r.max_cot_tokens + PREFILL_TOKENS + r.max_answer_tokens


@dataclass
class Plan:
    setting: Setting
    rows: list[tuple[str, dict[str, float]]]          # (term, {phase: bytes})

    def total(self, phase: str) -> float:
        return sum(v.get(phase, 0.0) for _, v in self.rows)

    def term(self, name: str, phase: str) -> float:
        return sum(v.get(phase, 0.0) for n, v in self.rows if n == name)

    @property
    def peak_phase(self) -> str:
        return max(PHASES, key=self.total)

    @property
    def peak(self) -> float:
        return self.total(self.peak_phase)

    @property
    def fits(self) -> bool:
        return not self.setting.on_gpu or self.peak <= self.setting.gpu_memory_gb * GiB


def activation_bytes_per_token_layer(a: Arch, b: int) -> float:
    d, q, k, I = a.hidden, a.heads * a.hd, a.kv_heads * a.hd, a.intermediate
    repeat = 2 * b * (q if a.kv_heads < a.heads else k)
    return 2 * (8 * d + b * d) + b * (5 * q + 2 * k) + repeat + 4 * b * I


def estimate(s: Setting) -> Plan:
    a, t, W = s.arch, s.train, s.world
    N, b = a.params, (2 if s.autocast else 4)
    shard = W if s.fsdp else 1
    rows: list[tuple[str, dict[str, float]]] = []

    def add(name, **phases):
        rows.append((name, {k: float(v) for k, v in phases.items() if v}))

    add("weights (fp32)", rollout=4 * N / shard, update=4 * N / shard, optimizer=4 * N / shard)
    add("gradients (fp32)", update=4 * N / shard, optimizer=4 * N / shard)
    add("AdamW states", rollout=8 * N / shard, update=8 * N / shard, optimizer=8 * N / shard)
    add("AdamW temporary", optimizer=4 * N / shard if s.on_gpu else 8 * a.largest_tensor)
    if not s.fsdp and W > 1:
        add("DDP gradient buckets", rollout=4 * N, update=4 * N, optimizer=4 * N)
    if s.autocast:
        unit = max(a.root_params, a.layer_params)
        upd = 2 * unit if (s.fsdp and t.gradient_checkpointing) else 2 * a.linear_params
        add("autocast bf16 weight casts", rollout=2 * a.linear_params, update=upd)
    if s.fsdp:
        add("FSDP gathered units", update=4 * a.root_params + 8 * a.layer_params + 4 * max(a.root_params, a.layer_params))
        add("FSDP full params (rollouts)", rollout=4 * N)
    T = s.micro_rows * s.slots
    per_layer = activation_bytes_per_token_layer(a, b)
    if t.gradient_checkpointing:
        acts = T * (4 * a.hidden * a.layers + per_layer + 12 * a.hidden)
    else:
        acts = T * (per_layer * a.layers + 12 * a.hidden)
    add("activations", update=acts)
    scored = s.micro_rows * (t.rollout.max_cot_tokens + t.rollout.max_answer_tokens)
    chunk = min(t.head_chunk, scored)
    head = chunk * a.vocab * (16 + (b if s.autocast else 0))
    if not s.on_gpu:                        # no head checkpoint: every chunk keeps its (log-)softmax
        head += (scored - chunk) * a.vocab * 4
    add("LM-head chunk", update=head)
    R = s.rollout_rows
    add("KV cache", rollout=a.layers * 2 * a.kv_heads * a.hd * s.slots * R * b)
    q = a.heads * a.hd
    transient = max(R * s.prompt_tokens * (3 * a.intermediate + 4 * a.hidden) * b, 2 * q * s.slots * R * b)
    add("rollout transient", rollout=transient + R * a.vocab * (12 + b))
    if s.on_gpu:
        add("CUDA context + allocator", rollout=CUDA_CONTEXT, update=CUDA_CONTEXT, optimizer=CUDA_CONTEXT)
    return Plan(s, rows)


# --------------------------------------------------------------------------- advice and the table

def advice(s: Setting) -> list[str]:
    """Single changes that make a config fit, as `key: value (peak)`."""
    k, t = s.keys, s.train
    tries = []
    if t.strategy != "fsdp":
        tries.append((f"{k['strategy']}: fsdp", replace(s, train=replace(t, strategy="fsdp"))))
    if not t.gradient_checkpointing:
        tries.append((f"{k['gradient_checkpointing']}: true", replace(s, train=replace(t, gradient_checkpointing=True))))
    for name in ("micro_batch", "rollout_batch"):
        v = getattr(t, name) // 2
        while v >= 1:
            tries.append((f"{k[name]}: {v}", replace(s, train=replace(t, **{name: v}))))
            v //= 2
    for g in (2, 4, 8):
        if g > s.gpus and not (t.strategy != "fsdp" and estimate(tries[0][1]).fits):
            fsdp = replace(t, strategy="fsdp")
            tries.append((f"{k['gpu']}: {g} with {k['strategy']}: fsdp", replace(s, gpus=g, train=fsdp)))
    out, seen = [], set()
    for label, cand in tries:
        p = estimate(cand)
        key = label.split(":")[0]
        if p.fits and key not in seen:
            seen.add(key)
            out.append(f"{label} ({p.peak / GiB:.1f} GiB)")
    return out


def describe(p: Plan) -> str:
    s, a, t = p.setting, p.setting.arch, p.setting.train
    where = (f"{s.gpus} GPU{'s' if s.gpus > 1 else ''} x {s.gpu_memory_gb:g} GiB" if s.on_gpu else "CPU, 1 process")
    strategy = t.strategy + ("" if s.fsdp or t.strategy == "ddp" else " (1 process: unsharded)")
    head = [f"{a.name}: {a.params / 1e9:.3g} B parameters ({'tied' if a.tied else 'untied'} embeddings), "
            f"strategy {strategy}, {where}",
            f"  assumes prompt {s.prompt_tokens} tokens -> S = {s.slots} slots; rollout batch {s.rollout_rows}, "
            f"micro-batch {s.micro_rows}; {'bf16 autocast' if s.autocast else 'fp32'}; gradient checkpointing "
            f"{'on' if t.gradient_checkpointing else 'off'}; SDPA (no S^2 attention memory)"]
    width = max(len(n) for n, _ in p.rows)
    lines = [f"  {'GiB per process'.ljust(width)}  " + "  ".join(ph.rjust(9) for ph in PHASES)]
    for name, v in p.rows:
        lines.append(f"  {name.ljust(width)}  " + "  ".join(
            (f"{v[ph] / GiB:9.2f}" if ph in v else " " * 8 + "-") for ph in PHASES))
    lines.append(f"  {'total'.ljust(width)}  " + "  ".join(f"{p.total(ph) / GiB:9.2f}" for ph in PHASES))
    if s.on_gpu:
        verdict = "fits" if p.fits else "does NOT fit"
        lines.append(f"  peak {p.peak / GiB:.1f} GiB ({p.peak_phase}) of {s.gpu_memory_gb:g} GiB per GPU: {verdict}")
    else:
        lines.append(f"  peak {p.peak / GiB:.2f} GiB ({p.peak_phase}) on the CPU")
    return "\n".join(head + lines)


# --------------------------------------------------------------------------- from configs

WORKFLOW_KEYS = {"strategy": "train.settings.strategy", "micro_batch": "train.settings.micro_batch",
                 "rollout_batch": "train.settings.rollout_batch",
                 "gradient_checkpointing": "train.settings.gradient_checkpointing", "gpu": "resources.train.gpu",
                 "gpu_memory_gb": "resources.train.gpu_memory_gb"}
TRAIN_KEYS = {"strategy": "strategy", "micro_batch": "micro_batch", "rollout_batch": "rollout_batch",
              "gradient_checkpointing": "gradient_checkpointing", "gpu": "--gpus", "gpu_memory_gb": "--gpu-memory-gb"}


def is_workflow_config(data: dict) -> bool:
    return isinstance(data.get("train"), dict) and "settings" in data["train"]


def _train_config(settings: dict, model: dict, prefix: str) -> TrainConfig:
    """TrainConfig from settings, with placeholders for the data files (they are made by the workflow)."""
    settings = copy.deepcopy(settings)
    settings["model"] = {**model, **settings.get("model", {})}
    settings.setdefault("data", {})
    settings["data"].update(train=__file__, val=None)
    try:
        return from_dict(TrainConfig, settings)
    except ConfigError as e:
        raise ConfigError(prefix + str(e)) from None


def workflow_setting(config: dict, gpus: int | None = None, gpu_memory_gb: float | None = None,
                     prompt_tokens: int | None = None) -> Setting:
    """The Setting of a workflow config's training jobs (its base model, train.settings, resources.train)."""
    toy = config.get("data", {}).get("source") == "toy"
    model = {"name_or_path": TOY_MODEL} if toy else dict(config.get("base", {}).get("model") or {})
    train = _train_config(config["train"]["settings"], model, "train.settings.")
    pretrain = from_dict(PretrainConfig, dict(config.get("pretrain") or {})) if toy else None
    res = (config.get("resources") or {}).get("train") or {}
    name = "base.model.name_or_path" if "name_or_path" not in config["train"]["settings"].get("model", {}) \
        else "train.settings.model.name_or_path"
    arch = resolve_arch(train.model.name_or_path, train.model.gguf_file, pretrain, key=name)
    return Setting(arch=arch, train=train, gpus=res.get("gpu", 0) if gpus is None else gpus,
                   gpu_memory_gb=gpu_memory_gb or res.get("gpu_memory_gb", DEFAULT_GPU_MEMORY_GB),
                   prompt_tokens=prompt_tokens or res.get("plan_prompt_tokens",
                                                           TOY_PROMPT_TOKENS if toy else DEFAULT_PROMPT_TOKENS),
                   keys=WORKFLOW_KEYS)


def train_setting(data: dict, gpus: int | None = None, gpu_memory_gb: float | None = None,
                  prompt_tokens: int | None = None) -> Setting:
    train = _train_config(data, {}, "")
    arch = resolve_arch(train.model.name_or_path, train.model.gguf_file)
    return Setting(arch=arch, train=train, gpus=1 if gpus is None else gpus,
                   gpu_memory_gb=gpu_memory_gb or DEFAULT_GPU_MEMORY_GB,
                   prompt_tokens=prompt_tokens or DEFAULT_PROMPT_TOKENS, keys=TRAIN_KEYS)


def check_fits(p: Plan) -> None:
    """Raise a ConfigError naming the keys to change when the plan's peak exceeds the declared GPU memory."""
    if p.fits:
        return
    s = p.setting
    fixes = advice(s)
    hint = ("; it fits with any one of: " + "; ".join(fixes)) if fixes else (
        f"; lower {s.keys['micro_batch']} / {s.keys['rollout_batch']}, raise {s.keys['gpu']} with "
        f"{s.keys['strategy']}: fsdp, or give the real per-GPU memory in {s.keys['gpu_memory_gb']}")
    raise ConfigError(f"{s.keys['strategy']}: the memory plan's peak is {p.peak / GiB:.1f} GiB per GPU "
                      f"({p.peak_phase} phase, strategy {s.train.strategy}, {s.gpus} GPU(s)) but "
                      f"{s.keys['gpu_memory_gb']} is {s.gpu_memory_gb:g} GiB{hint} (softcot plan --config ... "
                      f"shows every term)")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot plan", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a workflow config / preset, or a TrainConfig YAML")
    ap.add_argument("overrides", nargs="*", help="key=value overrides in the file's own key paths")
    ap.add_argument("--gpus", type=int, default=None, help="GPUs = processes (0: the CPU). Default: "
                    "resources.train.gpu of a workflow config, 1 for a TrainConfig YAML")
    ap.add_argument("--gpu-memory-gb", type=float, default=None,
                    help=f"GiB per GPU (default resources.train.gpu_memory_gb or {DEFAULT_GPU_MEMORY_GB:g})")
    ap.add_argument("--prompt-tokens", type=int, default=None,
                    help=f"assumed prompt length in tokens (default {DEFAULT_PROMPT_TOKENS})")
    ap.add_argument("--json", action="store_true", help="print the terms as JSON (bytes)")
    args = ap.parse_args(argv)
    data = apply_overrides(config_layers.load(args.config, read_yaml), args.overrides)   # with its `extends` chain
    build = workflow_setting if is_workflow_config(data) else train_setting
    try:
        setting = build(data, args.gpus, args.gpu_memory_gb, args.prompt_tokens)
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    p = estimate(setting)
    if args.json:
        print(json.dumps({"model": setting.arch.name, "params": setting.arch.params, "gpus": setting.gpus,
                          "strategy": setting.train.strategy, "slots": setting.slots, "peak": p.peak,
                          "peak_phase": p.peak_phase, "fits": p.fits, "terms": dict(p.rows)}, indent=2))
        return 0
    print(describe(p))
    if not p.fits:
        fixes = advice(setting)
        print("  fits with any one of: " + ("; ".join(fixes) if fixes else "(no single change found)"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
