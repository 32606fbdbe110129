# docs/results.md: the paper's four findings judged on this experiment's numbers, the tables, the base model's
# accuracies and the figures (copied to docs/figures/) with captions read from the results. Not part of `all`:
# it writes into the repository's docs/ (and the results digest block of README.md), so run it on purpose:
# snakemake --cores all docs
# Optional results (ablations, study/, estimators/) are included when they exist as the DAG is built: run
# their targets first, then `docs`.


rule docs:
    """The results document of one experiment (softcot docs)."""
    input:
        tables=expand(f"{RES}/tables/{{name}}.{{ext}}", name=["table1", "table2", "table3_5"], ext=["md", "csv"]),
        figures=expand(f"{RES}/figures/{{name}}.png", name=["fig2", "fig3", "fig4"]),
        train=[train_dir(m) for m in grid_models()[1:]],
        evals=eval_inputs(grid_models(), TEST_SETS[:1]),
        base=base_inputs,
        extras=docs_extras(),
    output:
        md="docs/results.md",
        figures=docs_figures(),
    params:
        args=TABLE_ENV_ARGS,
        also=lambda wc: shlex.join(
            a for name, label in config["docs"]["also"].items() for a in ("--also", f"results/{name}={label}")
        ),
        res=lambda wc, input: os.path.dirname(os.path.dirname(input.tables[0])),  # results/<experiment>
    log:
        f"{LOGS}/docs.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot docs --results {params.res:q} {params.args} {params.also} --out {output.md:q} --readme README.md > {log:q} 2>&1"
