# Evaluation under the six inference settings ({hard, fuzzy, soft} x {greedy, sample}) with the unbiased
# pass@k, CoT entropy by position and diversity. Only summary.json and samples are declared outputs: the
# per-shard files beside them survive a rerun, so a killed evaluation resumes shard by shard.


rule eval_config:
    output:
        f"{RES}/configs/eval.yaml",
    params:
        ev=lambda wc: section("eval"),
        model=lambda wc: section("base", "model") if not is_toy() else json.dumps({}),
    log:
        f"{LOGS}/eval/config.log",
    conda:
        ENV
    localrule: True
    shell:
        "python workflow/scripts/write_yaml.py {output:q} {params.ev:q} --model {params.model:q} > {log:q} 2>&1"


if res("evaluate", "per_model", False):

    rule evaluate_model:
        """Every test set of one model and its out-of-domain checks, with one model load."""
        input:
            cfg=f"{RES}/configs/eval.yaml",
            data=expand(f"{RES}/data/{{dataset}}.jsonl", dataset=TEST_SETS),
            ood=expand(f"{RES}/data/{{dataset}}.jsonl", dataset=OOD_SETS),
            model=model_inputs,
        output:
            summaries=expand(f"{RES}/eval/{{{{model}}}}/{{dataset}}/summary.json", dataset=TEST_SETS),
            ood=f"{RES}/ood/{{model}}.json",
        params:
            model=lambda wc: model_path(wc.model),
            sets=lambda wc: shlex.join(
                a
                for d in TEST_SETS
                for a in ("--data", f"{RES}/data/{d}.jsonl", "--out", f"{RES}/eval/{wc.model}/{d}")
            ),
            ood=lambda wc: shlex.join(a for d in OOD_SETS for a in ("--ood-data", f"{d}={RES}/data/{d}.jsonl")),
            limit=config["ood"]["limit"],
            batch=config["ood"]["batch_size"],
        threads: lambda wc: res("evaluate", "threads", 1)
        resources:
            gpu=res("evaluate", "gpu", 0),
            cpus_per_gpu=res("evaluate", "cpus_per_gpu", 8),
            mem_mb=res("evaluate", "mem_mb", 4000),
            runtime=res("evaluate", "runtime", 30),
        retries: res("evaluate", "retries", 0)
        log:
            f"{LOGS}/eval/{{model}}.log",
        benchmark:
            f"{BENCH}/eval/{{model}}.tsv"
        conda:
            ENV
        shell:
            "softcot evaluate --config {input.cfg:q} model.name_or_path={params.model:q} threads={threads} "
            "{params.sets} --restart-on-change {params.ood} --ood-name {wildcards.model} "
            "--ood-limit {params.limit:q} --ood-batch-size {params.batch:q} --ood-out {output.ood:q} > {log:q} 2>&1"

else:

    rule evaluate:
        """One test set of one model (a SLURM job per pair: each can take hours on a GPU)."""
        input:
            cfg=f"{RES}/configs/eval.yaml",
            data=f"{RES}/data/{{dataset}}.jsonl",
            model=model_inputs,
        output:
            summary=f"{RES}/eval/{{model}}/{{dataset}}/summary.json",
        params:
            model=lambda wc: model_path(wc.model),
            out=lambda wc: f"{RES}/eval/{wc.model}/{wc.dataset}",
        threads: lambda wc: res("evaluate", "threads", 1)
        resources:
            gpu=res("evaluate", "gpu", 0),
            cpus_per_gpu=res("evaluate", "cpus_per_gpu", 8),
            mem_mb=res("evaluate", "mem_mb", 4000),
            runtime=res("evaluate", "runtime", 30),
        retries: res("evaluate", "retries", 0)
        log:
            f"{LOGS}/eval/{{model}}/{{dataset}}.log",
        benchmark:
            f"{BENCH}/eval/{{model}}/{{dataset}}.tsv"
        conda:
            ENV
        shell:
            "softcot evaluate --config {input.cfg:q} model.name_or_path={params.model:q} data={input.data:q} "
            "threads={threads} --out {params.out:q} --restart-on-change > {log:q} 2>&1"
