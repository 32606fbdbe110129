# The soft/fuzzy learning study (issue 7): does RL with soft and fuzzy CoTs learn at laptop scale, and
# if not, why? `snakemake study --cores all` runs, on the embedded default's base:
#   * the estimator diagnostics (softcot diagnose): gradient signal-to-noise per mode and per loss term,
#     against a shuffled-advantage null control, and where the sampled diversity comes from (CoT noise or
#     answer sampling);
#   * null-control training runs (<mode>-null: advantages shuffled, same noise, no signal) beside the
#     grid's runs, with the same seeds;
#   * the levers of config `study.levers` (each a set of training overrides, e.g. more rollouts per step or a
#     lower learning rate) for `study.modes` x `study.seeds` (variants <mode>-lever<name>);
# and writes results/<experiment>/study/study.md (greedy pass@1 per mode vs its null control and levers, SNR
# and diversity tables) and study_curves.png/pdf (training and validation curves of all of them).


rule diagnose_snr:
    input:
        base=base_inputs,
        data=f"{RES}/data/train.jsonl",
    output:
        f"{RES}/study/snr.json",
    params:
        model=base_model(),
        template=lambda wc: TRAIN.data.prompt_template,     # a function: the template's {question} is no wildcard
        cot=TRAIN.rollout.max_cot_tokens,
        ans=TRAIN.rollout.max_answer_tokens,
        B=TRAIN.prompts_per_step,
        G=TRAIN.group_size,
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
        evals=eval_inputs(grid_models() + study_models(), TEST_SETS[:1]),
        snr=f"{RES}/study/snr.json",
        curves=f"{RES}/study/study_curves.png",
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


rule study_curves:
    """Training reward and greedy validation of every mode, its null control and each lever."""
    input:
        [train_dir(m) for m in grid_models()[1:] + study_models()],
    output:
        png=report(f"{RES}/study/study_curves.png", caption="../report/study.rst", category="Study"),
        pdf=f"{RES}/study/study_curves.pdf",
    params:
        style=lambda wc: figure_style("fig2"),
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/study/curves.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures study --inputs {input:q} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"
