# Data preparation: the embedded default's procedural tasks, or real benchmarks normalised to one schema.


if is_toy():

    rule toy_data:
        """Seeded arithmetic-chain tasks (base-model demos, RL train/val/test/test_hard) and a multiple-choice OOD family."""
        output:
            expand(f"{RES}/data/{{split}}.jsonl", split=TOY_SPLITS),
            cfg=f"{RES}/data/toy_config.yaml",
        params:
            toy=lambda wc: section("data", "toy"),
            out=lambda wc, output: os.path.dirname(output.cfg),
        log:
            f"{LOGS}/data/toy_data.log",
        conda:
            ENV
        localrule: True
        shell:
            "python workflow/scripts/write_yaml.py {output.cfg:q} {params.toy:q} && "
            "softcot toy-data --config {output.cfg:q} --out {params.out:q} > {log:q} 2>&1"

else:

    rule prepare_benchmark:
        """One benchmark set (GSM8K, MATH, MATH-500, OlympiadBench, ARC, MMLU, HellaSwag, ...) as JSONL."""
        output:
            f"{RES}/data/{{dataset}}.jsonl",
        params:
            args=lambda wc: benchmark_args(wc.dataset),
        log:
            f"{LOGS}/data/{{dataset}}.log",
        conda:
            ENV
        shell:
            "softcot prepare-data {params.args} --out {output:q} > {log:q} 2>&1"
