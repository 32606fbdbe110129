# Out-of-domain checks: multiple-choice accuracy (and acc_norm) and the per-token NLL of the correct
# answer, for the base model and every fine-tuned one (Table 2). With resources.evaluate.per_model (the
# embedded default) the evaluation job of each model runs them with the same model load instead.


if not res("evaluate", "per_model", False):

    rule ood:
        input:
            data=expand(f"{RES}/data/{{dataset}}.jsonl", dataset=OOD_SETS),
            model=model_inputs,
        output:
            f"{RES}/ood/{{model}}.json",
        params:
            model=lambda wc: model_path(wc.model),
            args=lambda wc: ood_base_args(wc.model),  # --gguf, --revision of a hub base
            data=lambda wc: shlex.join(a for d in OOD_SETS for a in ("--data", f"{d}={RES}/data/{d}.jsonl")),
            limit=config["ood"]["limit"],
            batch=config["ood"]["batch_size"],
        threads: lambda wc: res("evaluate", "threads", 1)
        resources:
            gpu=res("evaluate", "gpu", 0),
            mem_mb=res("evaluate", "mem_mb", 4000),
            runtime=res("evaluate", "runtime", 30),
        log:
            f"{LOGS}/ood/{{model}}.log",
        conda:
            ENV
        shell:
            "softcot ood --model {wildcards.model}={params.model:q} {params.args} {params.data} "
            "--limit {params.limit:q} --batch-size {params.batch:q} --threads {threads} --out {output:q} "
            "> {log:q} 2>&1"
