# One named target per regenerated table: `snakemake table1 --cores all` rebuilds exactly that table. Each writes
# the same numbers three ways: .md to read, .csv (mean, std, n, per-seed values) to compute with, .html for the report.


rule table1:
    """Table 1: hard inference (greedy pass@1, sample pass@1, sample pass@n) for every training mode."""
    input:
        eval_inputs(grid_models()),
    output:
        md=f"{RES}/tables/table1.md",
        csv=f"{RES}/tables/table1.csv",
        html=report(f"{RES}/tables/table1.html", caption="../report/table1.rst", category="Tables"),
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/tables/table1.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table1 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule table3_5:
    """Tables 3-5: the nine inference columns, one table per test set."""
    input:
        eval_inputs(grid_models()),
    output:
        md=f"{RES}/tables/table3_5.md",
        csv=f"{RES}/tables/table3_5.csv",
        html=report(f"{RES}/tables/table3_5.html", caption="../report/table3_5.rst", category="Tables"),
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/tables/table3_5.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table3_5 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule table2:
    """Table 2: out-of-domain accuracy and NLL, base and fine-tuned models side by side."""
    input:
        expand(f"{RES}/ood/{{model}}.json", model=grid_models()),
    output:
        md=f"{RES}/tables/table2.md",
        csv=f"{RES}/tables/table2.csv",
        html=report(f"{RES}/tables/table2.html", caption="../report/table2.rst", category="Tables"),
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/tables/table2.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table2 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule table6:
    """Table 6: noise-scale ablation (gamma), on the first test set."""
    input:
        eval_inputs(ablation_models("gamma"), TEST_SETS[:1]),
    output:
        md=f"{RES}/tables/table6.md",
        csv=f"{RES}/tables/table6.csv",
        html=report(f"{RES}/tables/table6.html", caption="../report/table6.rst", category="Ablations"),
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/tables/table6.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table6 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"


rule table8:
    """Table 8: CoT-temperature ablation (tau), on the first test set."""
    input:
        eval_inputs(ablation_models("tau"), TEST_SETS[:1]),
    output:
        md=f"{RES}/tables/table8.md",
        csv=f"{RES}/tables/table8.csv",
        html=report(f"{RES}/tables/table8.html", caption="../report/table8.rst", category="Ablations"),
    params:
        args=TABLE_ENV_ARGS,
        out=lambda wc, output: output.md[: -len(".md")],
    log:
        f"{LOGS}/tables/table8.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot tables table8 --inputs {input:q} {params.args} --out {params.out:q} > {log:q} 2>&1"
