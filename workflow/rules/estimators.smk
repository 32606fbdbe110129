# The estimators comparison (target `estimators`; not part of `all`): the paper's three training modes beside
# the kinds of config `estimators.modes` (default multiplex and gumbel, options beyond the paper, see
# docs/estimators.md), with the default's training budget and seeds (`train.settings`, `train.seeds`).
# `snakemake estimators --cores all` trains and evaluates the new kinds (the six paper settings through the
# ordinary evaluate rules, plus each kind's own inference setting here; the base model is evaluated in every
# own setting too) and writes under results/<experiment>/estimators/: tables 1, 2 and 3-5 and figures 2-4 with
# every method, and `sampled`, the pass@1 / pass@n of each method in every sampled setting, the own ones
# included. The default grid (`all`) is unchanged.


rule estimators:
    """Tables 1, 2, 3-5, the sampled-settings table and figures 2-4 over every training method."""
    input:
        expand(f"{EST}/tables/{{name}}.md", name=["table1", "table2", "table3_5", "sampled"]),
        expand(f"{EST}/figures/{{name}}.png", name=["fig2", "fig3", "fig4"]),


rule estimators_eval:
    """One model's own inference settings on every test set, with one model load."""
    input:
        cfg=f"{RES}/configs/eval.yaml",
        data=expand(f"{RES}/data/{{dataset}}.jsonl", dataset=TEST_SETS),
        model=model_inputs,
    output:
        expand(f"{EST}/eval/{{{{model}}}}/{{dataset}}/summary.json", dataset=TEST_SETS),
    params:
        model=lambda wc: model_path(wc.model),
        settings=lambda wc: own_settings(wc.model),
        sets=lambda wc: shlex.join(
            a for d in TEST_SETS for a in ("--data", f"{RES}/data/{d}.jsonl", "--out", f"{EST}/eval/{wc.model}/{d}")
        ),
    threads: lambda wc: res("evaluate", "threads", 1)
    resources:
        gpu=res("evaluate", "gpu", 0),
        cpus_per_gpu=res("evaluate", "cpus_per_gpu", 8),
        mem_mb=res("evaluate", "mem_mb", 4000),
        runtime=res("evaluate", "runtime", 30),
    retries: res("evaluate", "retries", 0)
    log:
        f"{LOGS}/estimators/eval/{{model}}.log",
    benchmark:
        f"{BENCH}/estimators/eval/{{model}}.tsv"
    conda:
        ENV
    shell:
        "softcot evaluate --config {input.cfg:q} model.name_or_path={params.model:q} threads={threads} "
        "--settings {params.settings:q} {params.sets} --restart-on-change > {log:q} 2>&1"


rule estimators_table:
    """Table 1 (hard inference) and Tables 3-5 (nine inference columns) over every training method."""
    input:
        eval_inputs(estimator_models()),
    output:
        md=f"{EST}/tables/{{name}}.md",
        csv=f"{EST}/tables/{{name}}.csv",
    wildcard_constraints:
        name="table1|table3_5",
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/estimators/tables/{{name}}.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables {wildcards.name} --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule estimators_table2:
    """Table 2: out-of-domain accuracy and NLL of every training method."""
    input:
        expand(f"{RES}/ood/{{model}}.json", model=estimator_models()),
    output:
        md=f"{EST}/tables/table2.md",
        csv=f"{EST}/tables/table2.csv",
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/estimators/tables/table2.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table2 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule estimators_sampled:
    """pass@1 and pass@n of every method in every sampled setting, the new kinds' own included."""
    input:
        grid=eval_inputs(estimator_models()),
        own=expand(f"{EST}/eval/{{model}}/{{dataset}}/summary.json", model=own_setting_models(), dataset=TEST_SETS),
    output:
        md=f"{EST}/tables/sampled.md",
        csv=f"{EST}/tables/sampled.csv",
    params:
        args=FIG_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/estimators/tables/sampled.log",
    conda:
        ENV
    localrule: True
    shell:
        "python -m softcot.estimators --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule estimators_fig2:
    """Figure 2: training reward and greedy validation of every training method."""
    input:
        [train_dir(m) for m in estimator_models()[1:]],
    output:
        png=f"{EST}/figures/fig2.png",
        pdf=f"{EST}/figures/fig2.pdf",
    params:
        style=lambda wc: figure_style("fig2"),
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/estimators/figures/fig2.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures fig2 --inputs {input:q} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"


rule estimators_figure:
    """Figure 3 (pass@k curves) and Figure 4 (CoT entropy by position) over every training method."""
    input:
        eval_inputs(estimator_models()),
    output:
        png=f"{EST}/figures/{{name}}.png",
        pdf=f"{EST}/figures/{{name}}.pdf",
    wildcard_constraints:
        name="fig3|fig4",
    params:
        style=lambda wc: figure_style(wc.name),
        args=FIG_ARGS,
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/estimators/figures/{{name}}.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures {wildcards.name} --inputs {input:q} {params.args} --style {params.style:q} "
        "--out {params.out:q} > {log:q} 2>&1"
