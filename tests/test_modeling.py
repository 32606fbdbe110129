"""softcot.modeling: loading (safetensors only, no remote code), tiny models, and the plumbing every stage
shares (decoder body, LM head in fp32, the cache keyword) against the model's own forward."""
from __future__ import annotations

import inspect

import pytest
import torch

from softcot.modeling import (ModelConfig, cache_kwarg, decoder_of, lm_logits, load_model, resolve_dtype, synced_clock,
                              tiny_model)
from tests.helpers import REPO, make_tiny, save_tiny, state_equal

SRC = REPO / "softcot"


def test_no_remote_code_or_pickled_weights_by_default():
    assert ModelConfig().trust_remote_code is False
    for path in SRC.rglob("*.py"):
        assert "trust_remote_code=True" not in path.read_text(), path
    modeling = (SRC / "modeling.py").read_text()
    assert 'kw["use_safetensors"] = True' in modeling


def test_pickled_weights_are_refused(tmp_path):
    """A folder with only a pickled pytorch_model.bin (which transformers would unpickle) does not load."""
    model, tok = make_tiny("llama", seed=0)
    model.config.save_pretrained(tmp_path / "bin")
    tok.save_pretrained(tmp_path / "bin")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_model(ModelConfig(name_or_path=str(tmp_path / "bin")), device="cpu")
    from transformers import (
        AutoModelForCausalLM,  # control: transformers itself would load it
    )
    assert state_equal(AutoModelForCausalLM.from_pretrained(tmp_path / "bin"), model)


def test_load_model_round_trip(tmp_path):
    save_tiny(tmp_path / "m", seed=3)
    model, tok = load_model(ModelConfig(name_or_path=str(tmp_path / "m")), device="cpu")
    ref, _ = make_tiny("llama", seed=3)
    assert state_equal(model, ref) and not model.training
    assert tok.padding_side == "left" and model.generation_config.pad_token_id == tok.pad_token_id
    assert next(model.parameters()).dtype == torch.float32


def test_lm_logits_and_decoder_reproduce_the_models_forward():
    for arch in ("llama", "qwen2"):
        model, tok = make_tiny(arch, seed=1)
        ids = torch.tensor([tok.encode("Q: 1+2\nA:")])
        with torch.no_grad():
            full = model(input_ids=ids).logits
            hidden = decoder_of(model)(input_ids=ids).last_hidden_state
            torch.testing.assert_close(lm_logits(model, hidden), full)
        assert lm_logits(model, hidden).dtype == torch.float32


def test_lm_logits_applies_final_logit_softcapping():
    model, tok = make_tiny("llama", seed=2)
    model.config.final_logit_softcapping = 0.5
    hidden = torch.randn(3, model.config.hidden_size)
    raw = model.get_output_embeddings()(hidden)
    torch.testing.assert_close(lm_logits(model, hidden), torch.tanh(raw / 0.5) * 0.5)
    assert lm_logits(model, hidden).abs().max() <= 0.5


def test_cache_kwarg_is_a_parameter_of_the_decoder():
    model, _ = make_tiny("llama")
    body = decoder_of(model)
    assert cache_kwarg(body) in inspect.signature(body.forward).parameters


def test_tiny_model_architectures_and_dtypes():
    assert type(tiny_model("qwen2", vocab_size=50)).__name__ == "Qwen2ForCausalLM"
    tied = tiny_model("llama", vocab_size=50, tie=True)
    assert tied.lm_head.weight.data_ptr() == tied.get_input_embeddings().weight.data_ptr()
    with pytest.raises(ValueError, match="unknown tiny architecture 'gpt2'"):
        tiny_model("gpt2")
    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16


def test_synced_clock_is_monotonic():
    a = synced_clock()
    b = synced_clock("cpu")
    assert b >= a
