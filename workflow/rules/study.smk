# The soft/fuzzy learning study (issue 7): does RL with soft and fuzzy CoTs learn at laptop scale, and
# if not, why? `snakemake study --cores all` runs, on the embedded default's base:
#   * the estimator diagnostics (softcot diagnose): gradient signal-to-noise per mode and per loss term,
#     against a shuffled-advantage null control, and where the sampled diversity comes from (CoT noise or
#     answer sampling);
#   * null-control training runs (<mode>-null: advantages shuffled, same noise, no signal) beside the
#     grid's runs, with the same seeds;
# and writes results/<experiment>/study/study.md (greedy pass@1 per mode vs its null control, SNR table).


rule diagnose_snr:
    input:
        base=base_inputs,
        data=f"{RES}/data/train.jsonl",
    output:
        f"{RES}/study/snr.json",
    params:
        model=base_model(),
        template=lambda wc: config["train"]["settings"].get("data", {}).get("prompt_template", "paper"),
        cot=lambda wc: config["train"]["settings"].get("rollout", {}).get("max_cot_tokens", 128),
        ans=lambda wc: config["train"]["settings"].get("rollout", {}).get("max_answer_tokens", 32),
        B=lambda wc: config["train"]["settings"].get("prompts_per_step", 2),
        G=lambda wc: config["train"]["settings"].get("group_size", 32),
    threads: 1
    log:
        f"{LOGS}/study/snr.log",
    benchmark:
        f"{BENCH}/study/snr.tsv"
    conda:
        ENV
    shell:
        "softcot diagnose --model {params.model:q} --data {input.data:q} --modes hard soft fuzzy --batches 20 "
        "--prompts {params.B:q} --group {params.G:q} --max-cot-tokens {params.cot:q} "
        "--max-answer-tokens {params.ans:q} --template {params.template:q} --threads {threads} "
        "--diversity 8 --diversity-prompts 64 "
        "--out {output:q} > {log:q} 2>&1"


rule study:
    """Issue 7's study table: every mode beside its null control, and the gradient SNR diagnostics."""
    input:
        evals=eval_inputs(grid_models() + [f"{m}-null_seed{s}" for m in MODES for s in SEEDS], TEST_SETS[:1]),
        snr=f"{RES}/study/snr.json",
    output:
        md=report(f"{RES}/study/study.md", caption="../report/study.rst", category="Study"),
        csv=f"{RES}/study/study.csv",
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/study/study.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables study --inputs {input.evals:q} {input.snr:q} {params.args} --out {params.out:q} > {log:q} 2>&1"
