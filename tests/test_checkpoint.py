"""softcot.checkpoint: step checkpoints restore the model, optimiser, scheduler and every random stream
exactly; `latest` only ever names a complete checkpoint; old ones are pruned; nothing is unpickled."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

from softcot.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from softcot.modeling import tiny_model
from tests.helpers import REPO, state_equal

SRC = REPO / "softcot"


def test_every_torch_load_is_weights_only():
    found = 0
    for path in SRC.rglob("*.py"):
        for m in re.finditer(r"torch\.load\(([^)]*)\)", path.read_text()):
            found += 1
            assert "weights_only=True" in m.group(1), f"{path}: {m.group(0)}"
    assert found, "softcot.checkpoint loads the optimiser state with torch.load"


def _setup(tie=False):
    model = tiny_model("llama", vocab_size=40, hidden=16, layers=1, heads=2, kv_heads=1, seed=0, tie=tie)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s))
    return model, opt, sched


def _train_step(model, opt, sched, ids):
    loss = model(input_ids=ids, labels=ids).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def _draws(gen):
    return (torch.rand(3).tolist(), random.random(), float(np.random.rand()), torch.rand(2, generator=gen).tolist())


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_round_trip_continues_exactly_like_the_uninterrupted_run(tmp_path, tie):
    ids = torch.randint(0, 40, (2, 6), generator=torch.Generator().manual_seed(0))
    model, opt, sched = _setup(tie)
    gen = torch.Generator().manual_seed(5)
    _train_step(model, opt, sched, ids)
    torch.rand(4, generator=gen)
    path = save_checkpoint(tmp_path, 1, model, opt, sched, {"rollout": gen}, {"sampler": {"epoch": 0, "index": 3}})
    assert path.name == "step_000001" and latest_checkpoint(tmp_path) == path
    want = _draws(gen)
    _train_step(model, opt, sched, ids)
    want_model = {k: v.clone() for k, v in model.state_dict().items()}

    model2, opt2, sched2 = _setup(tie)
    gen2 = torch.Generator().manual_seed(99)
    torch.manual_seed(123), random.seed(123), np.random.seed(123)
    st = load_checkpoint(path, model2, opt2, sched2, {"rollout": gen2})
    assert st == {"step": 1, "extra": {"sampler": {"epoch": 0, "index": 3}}}
    assert _draws(gen2) == want                         # torch, python, numpy and the named generator
    _train_step(model2, opt2, sched2, ids)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert all(torch.equal(v, want_model[k]) for k, v in model2.state_dict().items())
    if tie:
        assert model2.lm_head.weight.data_ptr() == model2.get_input_embeddings().weight.data_ptr()


def test_keep_prunes_old_checkpoints_and_latest_names_the_newest(tmp_path):
    model, opt, sched = _setup()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, opt, sched, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000003"]
    assert (tmp_path / "latest").read_text() == "step_000003\n"
    assert latest_checkpoint(tmp_path) == tmp_path / "step_000003"
    assert not list(tmp_path.glob(".*tmp*"))


def test_latest_ignores_a_missing_or_incomplete_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    (tmp_path / "step_000007").mkdir()
    (tmp_path / "latest").write_text("step_000007\n")         # no state.json: not complete
    assert latest_checkpoint(tmp_path) is None


def test_loading_into_another_architecture_is_an_error(tmp_path):
    model, opt, sched = _setup()
    path = save_checkpoint(tmp_path, 1, model)
    other = tiny_model("llama", vocab_size=40, hidden=16, layers=2, heads=2, kv_heads=1, seed=0)
    with pytest.raises(RuntimeError, match="does not match the model"):
        load_checkpoint(path, other)
    again = tiny_model("llama", vocab_size=40, hidden=16, layers=1, heads=2, kv_heads=1, seed=3)
    load_checkpoint(path, again)
    assert state_equal(again, model)
