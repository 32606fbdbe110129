# RL training of the CoT in hard, soft or fuzzy mode (and the ablation variants), one job per
# (variant, seed). Step checkpoints live in checkpoints/, outside the declared output, so that a job
# retried by Snakemake or requeued by SLURM resumes instead of starting over.


rule train_config:
    """The training section of the config as a YAML file (rewritten only when that section changes)."""
    output:
        f"{RES}/configs/train.yaml",
    params:
        train=lambda wc: section("train", "settings"),
        model=lambda wc: section("base", "model") if not is_toy() else json.dumps({}),
    log:
        f"{LOGS}/train/config.log",
    conda:
        ENV
    localrule: True
    shell:
        "python workflow/scripts/write_yaml.py {output:q} {params.train:q} --model {params.model:q} > {log:q} 2>&1"


rule train:
    input:
        cfg=f"{RES}/configs/train.yaml",
        train=f"{RES}/data/train.jsonl",
        val=f"{RES}/data/val.jsonl",
        base=lambda wc: base_inputs_of(runs.model_name(wc.variant, wc.seed)),
    output:
        directory(f"{RES}/train/{{variant}}/seed{{seed}}"),
    params:
        ckpt=lambda wc: f"{CKPT}/train/{wc.variant}/seed{wc.seed}",
        base=lambda wc: base_of(runs.model_name(wc.variant, wc.seed)),  # a scale variant: its scaled base
        overrides=lambda wc: " ".join(variant_overrides(wc.variant)),
        strategy=TRAIN.strategy,  # launch.sh: the accelerate config
    threads: lambda wc: res("train", "threads", 1)
    resources:
        gpu=res("train", "gpu", 0),
        cpus_per_gpu=res("train", "cpus_per_gpu", 8),
        mem_mb=res("train", "mem_mb", 4000),
        runtime=res("train", "runtime", 30),
    retries: res("train", "retries", 0)
    log:
        f"{LOGS}/train/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/train/{{variant}}/seed{{seed}}.tsv"
    conda:
        ENV
    shell:
        "SOFTCOT_STRATEGY={params.strategy:q} bash workflow/scripts/launch.sh {resources.gpu} train --config {input.cfg:q} {params.overrides} seed={wildcards.seed} "
        "model.name_or_path={params.base:q} data.train={input.train:q} data.val={input.val:q} "
        "output_dir={output:q} ckpt_dir={params.ckpt:q} threads={threads} > {log:q} 2>&1"
