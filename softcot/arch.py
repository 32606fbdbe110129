"""Model shapes for the memory plan: a decoder's sizes from a local config.json or a built-in table of the
presets' models, and the parameter counts that follow from them. Torch-free and transformers-free.

    resolve_arch("meta-llama/Llama-3.1-8B-Instruct").params        # 8.03e9
    resolve_arch("results/toy/base").layers                          # from its config.json
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from softcot.config import ConfigError
from softcot.schema import SMOLLM2, SMOLLM2_GGUF, PretrainConfig


@dataclass(frozen=True)
class Arch:
    """The shapes that set a decoder's memory (a Llama-style block: RMSNorm, GQA attention, SwiGLU MLP)."""
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    head_dim: int | None = None
    qkv_bias: bool = False
    model_type: str = "llama"
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 4096

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def layer_params(self) -> int:
        d, q, k = self.hidden, self.heads * self.hd, self.kv_heads * self.hd
        attn = d * q + 2 * d * k + q * d + ((q + 2 * k) if self.qkv_bias else 0)
        return attn + 3 * d * self.intermediate + 2 * d

    @property
    def root_params(self) -> int:
        """Parameters outside the decoder layers: embeddings, final norm, untied LM head."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params

    @property
    def linear_params(self) -> int:
        """Parameters that enter a matrix product (autocast casts them): layers' projections and the LM head."""
        d = self.hidden
        return self.layers * (self.layer_params - 2 * d) + self.vocab * d

    @property
    def largest_tensor(self) -> int:
        return max(self.vocab * self.hidden, self.hidden * self.intermediate)

    def hf_config(self) -> dict:
        """Keyword arguments of transformers' LlamaConfig / Qwen2Config with these shapes."""
        out = dict(vocab_size=self.vocab, hidden_size=self.hidden, intermediate_size=self.intermediate,
                   num_hidden_layers=self.layers, num_attention_heads=self.heads, num_key_value_heads=self.kv_heads,
                   tie_word_embeddings=self.tied, rms_norm_eps=self.rms_norm_eps,
                   max_position_embeddings=self.max_position_embeddings, rope_theta=self.rope_theta)
        if self.head_dim:
            out["head_dim"] = self.head_dim
        return out


# The presets' models, from their config.json on the hub.
ARCHS = {
    "meta-llama/Llama-3.2-3B-Instruct": Arch("Llama-3.2-3B-Instruct", hidden=3072, layers=28, heads=24, kv_heads=8,
                                             intermediate=8192, vocab=128256, tied=True, head_dim=128,
                                             rope_theta=500000.0, max_position_embeddings=131072),
    "meta-llama/Llama-3.1-8B-Instruct": Arch("Llama-3.1-8B-Instruct", hidden=4096, layers=32, heads=32, kv_heads=8,
                                             intermediate=14336, vocab=128256, tied=False, head_dim=128,
                                             rope_theta=500000.0, max_position_embeddings=131072),
    "Qwen/Qwen2.5-3B-Instruct": Arch("Qwen2.5-3B-Instruct", hidden=2048, layers=36, heads=16, kv_heads=2,
                                     intermediate=11008, vocab=151936, tied=True, qkv_bias=True, model_type="qwen2",
                                     rope_theta=1000000.0, rms_norm_eps=1e-6, max_position_embeddings=32768),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Arch("SmolLM2-135M-Instruct", hidden=576, layers=30, heads=9, kv_heads=3,
                                                intermediate=1536, vocab=49152, tied=True, rope_theta=100000.0,
                                                max_position_embeddings=8192),
}
ALIASES = {SMOLLM2: "HuggingFaceTB/SmolLM2-135M-Instruct", "llama3b": "meta-llama/Llama-3.2-3B-Instruct",
           "llama8b": "meta-llama/Llama-3.1-8B-Instruct", "qwen3b": "Qwen/Qwen2.5-3B-Instruct"}
TOY_MODEL = "softcot/embedded-toy-base"      # what the workflow's config check calls the toy's base model
TOY_VOCAB = 4 + 100 + 2                      # softcot.chartok: specials, printable ASCII, the two word tokens
TOY_PROMPT_TOKENS = 32                       # "Q: 7+5-3+2\nA:" and the longest toy questions, one token a character


def toy_arch(pretrain: PretrainConfig) -> Arch:
    """The embedded default's char-level Llama (softcot.pretrain.build_model)."""
    return Arch("embedded toy base", hidden=pretrain.hidden_size, layers=pretrain.num_layers,
                heads=pretrain.num_heads, kv_heads=pretrain.num_heads, intermediate=pretrain.intermediate_size,
                vocab=TOY_VOCAB - (0 if pretrain.word_tokens else 2), tied=True)


def arch_from_config_json(cfg: dict, name: str) -> Arch:
    """An Arch from a Hugging Face config.json (Llama, Qwen2, Mistral and other Llama-style decoders)."""
    if "text_config" in cfg:
        cfg = {**cfg, **cfg["text_config"]}
    model_type = cfg.get("model_type", "llama")
    try:
        heads = cfg["num_attention_heads"]
        return Arch(name, hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], heads=heads,
                    kv_heads=cfg.get("num_key_value_heads") or heads, intermediate=cfg["intermediate_size"],
                    vocab=cfg["vocab_size"], tied=cfg.get("tie_word_embeddings", model_type not in ("llama", "qwen2")),
                    head_dim=cfg.get("head_dim"), qkv_bias=model_type == "qwen2" or bool(cfg.get("attention_bias")),
                    model_type=model_type)
    except KeyError as e:
        raise ConfigError(f"model.name_or_path: {name}/config.json has no {e.args[0]!r}; the memory plan reads "
                          f"hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, vocab_size") from None


def resolve_arch(name_or_path: str, gguf_file: str | None = None, pretrain: PretrainConfig | None = None,
                 key: str = "model.name_or_path") -> Arch:
    """A local config.json, else the built-in table (hub ids and the smollm2 alias), else a ConfigError."""
    if name_or_path == TOY_MODEL:
        return toy_arch(pretrain or PretrainConfig())
    local = Path(name_or_path).expanduser()
    if (local / "config.json").is_file():
        return arch_from_config_json(json.loads((local / "config.json").read_text()), name_or_path)
    hub_id = ALIASES.get(name_or_path, name_or_path)
    if gguf_file == SMOLLM2_GGUF or (local / SMOLLM2_GGUF).is_file():
        hub_id = ALIASES[SMOLLM2]
    for known, arch in ARCHS.items():
        if known.lower() == hub_id.lower() or known.split("/")[-1].lower() == local.name.lower():
            return arch
    raise ConfigError(f"{key}: the memory plan does not know the shapes of {name_or_path!r}; point {key} at a "
                      f"local directory with its config.json (or copy the hub's config.json into one), or use one "
                      f"of: {', '.join(sorted(ARCHS))}")
