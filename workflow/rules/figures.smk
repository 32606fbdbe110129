# One named target per regenerated figure. Each gets only the `figures` config section, so a style edit
# reruns that figure and nothing upstream.


rule fig2:
    """Figure 2: training reward and greedy-validation curves per training mode."""
    input:
        expand(f"{RES}/train/{{variant}}/seed{{seed}}", variant=MODES, seed=SEEDS),
    output:
        png=report(f"{RES}/figures/fig2.png", caption="../report/fig2.rst", category="Figures"),
        pdf=f"{RES}/figures/fig2.pdf",
    params:
        style=lambda wc: figure_style("fig2"),
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/figures/fig2.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures fig2 --inputs {input:q} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"


rule fig3:
    """Figure 3: pass@k curves."""
    input:
        eval_inputs(grid_models()),
    output:
        png=report(f"{RES}/figures/fig3.png", caption="../report/fig3.rst", category="Figures"),
        pdf=f"{RES}/figures/fig3.pdf",
    params:
        style=lambda wc: figure_style("fig3"),
        args=FIG_ARGS,
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/figures/fig3.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures fig3 --inputs {input:q} {params.args} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"


rule fig4:
    """Figure 4: CoT entropy by position."""
    input:
        eval_inputs(grid_models(), TEST_SETS[:1]),
    output:
        png=report(f"{RES}/figures/fig4.png", caption="../report/fig4.rst", category="Figures"),
        pdf=f"{RES}/figures/fig4.pdf",
    params:
        style=lambda wc: figure_style("fig4"),
        args=FIG_ARGS,
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/figures/fig4.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures fig4 --inputs {input:q} {params.args} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"


rule fig5:
    """Figure 5: ablation curves (noise scale and CoT temperature)."""
    input:
        [train_dir(m) for m in ablation_models("gamma") + ablation_models("tau")],
    output:
        png=report(f"{RES}/figures/fig5.png", caption="../report/fig5.rst", category="Ablations"),
        pdf=f"{RES}/figures/fig5.pdf",
    params:
        style=lambda wc: figure_style("fig5"),
        out=lambda wc, output: output.png[: -len(".png")],
    log:
        f"{LOGS}/figures/fig5.log",
    conda:
        ENV
    localrule: True
    shell:
        "softcot figures fig5 --inputs {input:q} --style {params.style:q} --out {params.out:q} > {log:q} 2>&1"
