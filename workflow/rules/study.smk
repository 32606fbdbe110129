# The soft/fuzzy learning study: does RL with soft and fuzzy CoTs learn at laptop scale, and
# if not, why? `snakemake study --cores all` runs, on the embedded default's base, for the grid's kinds and
# the estimators' (config `estimators.modes`: multiplex, gumbel):
#   * the estimator diagnostics (softcot diagnose): gradient signal-to-noise per mode and per loss term,
#     against a shuffled-advantage null control, and where the sampled diversity comes from (CoT noise or
#     answer sampling);
#   * null-control training runs (<mode>-null: advantages shuffled, same noise, no signal) beside the
#     grid's runs, with the same seeds;
#   * the levers of config `study.levers` (each a set of training overrides, e.g. more rollouts per step or a
#     lower learning rate) for `study.modes` x `study.seeds` (variants <mode>-lever<name>);
# and writes results/<experiment>/study/study.md (greedy pass@1 per mode vs its null control and levers, SNR
# and diversity tables) and study_curves.png/pdf (training and validation curves of all of them). Beside them:
#   * gains.md/csv: per setup (the default settings, each lever) and mode, the test gain of the best checkpoint
#     over the base, beside its null control's, and their difference;
#   * positions.md/csv/png: where the CoT term's gradient comes from, split over CoT steps (study.positions);
#   * scale.md/csv/png: bases pre-trained at study.scale.bases' sizes (toy data only), each with the gradient
#     diagnostics and RL at the default budget, against the default's base: does the soft/fuzzy gap to hard
#     narrow as the model grows?


include: "study_common.smk"


rule diagnose_snr:
    input:
        base=base_inputs,
        data=f"{RES}/data/train.jsonl",
    output:
        f"{RES}/study/snr.json",
    params:
        model=base_model(),
        args=shlex.join(["--modes", *all_kinds()]),
        template=lambda wc: TRAIN.data.prompt_template,  # a function: the template's {question} is no wildcard
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
        "softcot diagnose --model {params.model:q} --data {input.data:q} {params.args} --batches 20 "
        "--prompts {params.B:q} --group {params.G:q} --max-cot-tokens {params.cot:q} "
        "--max-answer-tokens {params.ans:q} --template {params.template:q} --threads {threads} "
        "--diversity 8 --diversity-prompts 64 "
        "--out {output:q} > {log:q} 2>&1"


rule study:
    """The study table: every mode beside its null control, and the gradient SNR diagnostics."""
    input:
        evals=eval_inputs(estimator_models() + study_models(), TEST_SETS[:1]),
        extras=lambda wc: study_extra_targets(),
        snr=f"{RES}/study/snr.json",
        curves=f"{RES}/study/study_curves.png",
    output:
        md=f"{RES}/study/study.md",
        csv=f"{RES}/study/study.csv",
        html=report(f"{RES}/study/study.html", caption="../report/study.rst", category="Study"),
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
        [train_dir(m) for m in estimator_models()[1:] + study_models()],
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


# ---------------------------------------------------------------------------------------------- gains


rule study_gains:
    """Per setup and mode: the test gain of the best checkpoint over the base, beside its null control's."""
    input:
        evals=eval_inputs(gain_models(), TEST_SETS[:1]),
        runs=[train_dir(m) for m in gain_models()[1:]],
    output:
        md=f"{RES}/study/gains.md",
        csv=f"{RES}/study/gains.csv",
    params:
        args=lambda wc: shlex.join(
            ["--compare", *(f"{v}={n}" if n else v for v, n in gain_comparisons()), "--test-set", TEST_SETS[0]]
        ),
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/study/gains.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot study gains --inputs {input.evals:q} {input.runs:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


# ---------------------------------------------------------------------------------------------- positions


rule diagnose_positions:
    """The CoT term's gradient split over CoT steps on the base, per mode, against the answer term."""
    input:
        base=base_inputs,
        data=f"{RES}/data/train.jsonl",
    output:
        f"{RES}/study/positions.json",
    params:
        model=base_model(),
        args=diagnose_args,
        edges=lambda wc: f"positions={json.dumps(config['study']['positions']['edges'])}",
        batches=lambda wc: config["study"]["positions"]["batches"],
    threads: 1
    resources:
        runtime=120,
    log:
        f"{LOGS}/study/positions.log",
    benchmark:
        f"{BENCH}/study/positions.tsv"
    conda:
        ENV
    shell:
        "softcot diagnose --model {params.model:q} --data {input.data:q} {params.args} --batches {params.batches:q} "
        "--no-snr {params.edges:q} --threads {threads} --out {output:q} > {log:q} 2>&1"


rule study_positions:
    """Its table (Markdown, numeric CSV) and figure."""
    input:
        f"{RES}/study/positions.json",
    output:
        md=f"{RES}/study/positions.md",
        csv=f"{RES}/study/positions.csv",
        png=report(f"{RES}/study/positions.png", caption="../report/study_positions.rst", category="Study"),
        pdf=f"{RES}/study/positions.pdf",
    params:
        style=lambda wc: figure_style("study"),
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/study/positions_table.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot study positions --inputs {input:q} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"


# ---------------------------------------------------------------------------------------------- scale


rule pretrain_scaled_base:
    """A larger base for the scale study: the default's pre-training (config pretrain) with
    study.scale.bases.<scale>'s overrides, on the same demos. Step checkpoints stay outside the output."""
    input:
        expand(f"{RES}/data/{{split}}.jsonl", split=TOY_SPLITS),
    output:
        model=directory(f"{RES}/base-scale{{scale}}"),
        cfg=f"{RES}/configs/pretrain-scale{{scale}}.yaml",
    wildcard_constraints:
        scale=runs.SCALE_RE,
    params:
        pretrain=lambda wc: json.dumps(scaled_pretrain(config, wc.scale), sort_keys=True),
        data=lambda wc, input: os.path.dirname(input[0]),
        ckpt=lambda wc: f"{CKPT}/base-scale{wc.scale}",
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    log:
        f"{LOGS}/base/pretrain-scale{{scale}}.log",
    benchmark:
        f"{BENCH}/pretrain_scale{{scale}}.tsv"
    conda:
        ENV
    shell:
        "python workflow/scripts/write_yaml.py {output.cfg:q} {params.pretrain:q} threads={threads} && "
        "softcot pretrain --data {params.data:q} --config {output.cfg:q} --out {output.model:q} "
        "--ckpt-dir {params.ckpt:q} > {log:q} 2>&1"


rule diagnose_base:
    """Gradient SNR per mode and loss term on one base of the scale study, at the training batch."""
    input:
        base=lambda wc: base_inputs_of(wc.model),
        data=f"{RES}/data/train.jsonl",
    output:
        f"{RES}/study/diagnose/{{model}}.json",
    wildcard_constraints:
        model=runs.BASE_RE,
    params:
        model=lambda wc: base_of(wc.model),
        args=diagnose_args,
        batches=lambda wc: config["study"]["scale"]["batches"],
    threads: 1
    resources:
        mem_mb=8000,
        runtime=240,
    log:
        f"{LOGS}/study/diagnose/{{model}}.log",
    benchmark:
        f"{BENCH}/study/diagnose/{{model}}.tsv"
    conda:
        ENV
    shell:
        "softcot diagnose --model {params.model:q} --data {input.data:q} {params.args} --batches {params.batches:q} "
        "--threads {threads} --out {output:q} > {log:q} 2>&1"


rule study_scale:
    """Per base: parameters, each mode's RL gain and gap to hard, gradient SNR and CoT/answer ratio."""
    input:
        scale_inputs(),
    output:
        md=f"{RES}/study/scale.md",
        csv=f"{RES}/study/scale.csv",
    params:
        test=TEST_SETS[0],
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/study/scale.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot study scale --inputs {input:q} --test-set {params.test:q} --out {params.out:q} > {log:q} 2>&1"


rule study_scale_figure:
    """Test gain, gradient SNR and CoT/answer gradient ratio per mode against the parameter count."""
    input:
        scale_inputs(),
    output:
        png=report(f"{RES}/study/scale.png", caption="../report/study_scale.rst", category="Study"),
        pdf=f"{RES}/study/scale.pdf",
    params:
        test=TEST_SETS[0],
        style=lambda wc: figure_style("study"),
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/study/scale_figure.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot study scale-figure --inputs {input:q} --test-set {params.test:q} --style {params.style:q} "
        "--out {params.out:q} > {log:q} 2>&1"
