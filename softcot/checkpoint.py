"""Step checkpoints that survive kill -9: model, optimiser, scheduler, every RNG state, step, extras.

Layout of a checkpoint directory (`ckpt_dir/step_000120/`):
    model.safetensors      the trainable parameters (fp32 master weights), safetensors only
    optimizer.pt           optimiser state dict (tensors and numbers; loaded with weights_only=True)
    scheduler.json         LR scheduler state
    rng.safetensors        torch CPU RNG state and the state of each named torch.Generator
    state.json             step, python/numpy RNG states, user extras (data position, best score, ...)
`ckpt_dir/latest` is a one-line file naming the newest complete checkpoint; it is replaced atomically
after the checkpoint directory itself has been renamed into place, so a kill at any moment leaves
either the old or the new checkpoint, never a torn one. Older checkpoints beyond `keep` are deleted.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from softcot.io import atomic_dir, write_text


def _np_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_np_state(s: dict) -> None:
    np.random.set_state((s["name"], np.array(s["keys"], dtype=np.uint32), s["pos"], s["has_gauss"], s["cached"]))


def _py_state() -> list:
    v, internal, gauss = random.getstate()
    return [v, list(internal), gauss]


def _set_py_state(s: list) -> None:
    random.setstate((s[0], tuple(s[1]), s[2]))


def save_checkpoint(ckpt_dir: str | Path, step: int, model: torch.nn.Module, optimizer=None, scheduler=None,
                    generators: dict[str, torch.Generator] | None = None, extra: dict | None = None,
                    keep: int = 2) -> Path:
    """Write `ckpt_dir/step_{step:06d}` atomically and point `latest` at it. Returns its path."""
    ckpt_dir = Path(ckpt_dir)
    target = ckpt_dir / f"step_{step:06d}"
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Tied weights share storage; safetensors refuses duplicates, so keep the first name of each.
    seen, unique = set(), {}
    for k, v in model.state_dict().items():
        ptr = v.data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        unique[k] = state[k]
    with atomic_dir(target) as tmp:
        save_file(unique, str(tmp / "model.safetensors"))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if scheduler is not None:
            (tmp / "scheduler.json").write_text(json.dumps(scheduler.state_dict()))
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"torch_cuda_{i}"] = s
        for name, g in (generators or {}).items():
            rng[f"gen_{name}"] = g.get_state()
        save_file(rng, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps(
            {"step": step, "python_rng": _py_state(), "numpy_rng": _np_state(), "extra": extra or {}}))
    write_text(ckpt_dir / "latest", target.name + "\n")
    steps = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in steps[:-keep] if keep > 0 else []:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    ckpt_dir = Path(ckpt_dir)
    pointer = ckpt_dir / "latest"
    if not pointer.exists():
        return None
    path = ckpt_dir / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer=None, scheduler=None,
                    generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote; returns {"step": int, "extra": dict}."""
    path = Path(path)
    weights = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # Names dropped as tied duplicates come back through the tie; anything else missing is an error.
    tied = {k for k in missing if k.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"{path}/model.safetensors does not match the model: missing {sorted(set(missing) - tied)}, "
                           f"unexpected {sorted(unexpected)}; was it written for another model config?")
    if optimizer is not None and (path / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    if scheduler is not None and (path / "scheduler.json").exists():
        scheduler.load_state_dict(json.loads((path / "scheduler.json").read_text()))
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(k for k in rng if k.startswith("torch_cuda_"))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    for name, g in (generators or {}).items():
        if f"gen_{name}" in rng:
            g.set_state(rng[f"gen_{name}"])
    state = json.loads((path / "state.json").read_text())
    _set_py_state(state["python_rng"])
    _set_np_state(state["numpy_rng"])
    return {"step": state["step"], "extra": state["extra"]}
