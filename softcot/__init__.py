"""softcot: RL of continuous chains of thought ("Soft Tokens, Hard Truths", arXiv 2509.19170).

Modules (one job each):
  config     typed dataclass configs, YAML + key=value overrides, validation
  modeling   loading any causal LM (hub id, local dir, GGUF), dtype and device choice
  modes      the three CoT modes (hard/soft/fuzzy) and the soft-token mixer p E + sigma eps
  rollout    batched, KV-cached rollout with marker detection and the discrete answer phase
  rewards    Math-Verify rewards (100/10/0) with a TRL-style signature
  loss       teacher-forced rescoring, Gaussian log-densities, RLOO advantages, the loss
  trainer    the accelerate training loop: checkpoints, resume, validation, signals
  export     a standard Hugging Face checkpoint ("train soft, deploy hard")
  passk      the unbiased pass@k estimator
  benchmarks loaders for GSM8K, MATH, MATH-500, OlympiadBench, DeepScaleR, ARC, MMLU, HellaSwag, ...
  toy        the embedded default's procedural tasks; chartok its char tokenizer; pretrain its base
  evaluate   the six inference settings; ood multiple-choice scoring; generate for a quick look
"""

__version__ = "0.1.0"
