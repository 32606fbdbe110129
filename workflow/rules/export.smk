# Export each trained run as a standard Hugging Face checkpoint ("train soft, deploy hard"); its model card carries
# the run's evaluation results (the summaries of that model on every test set).


rule export:
    input:
        run=f"{RES}/train/{{variant}}/seed{{seed}}",
        evals=lambda wc: eval_inputs([runs.model_name(wc.variant, wc.seed)]),
    output:
        directory(f"{RES}/export/{{variant}}/seed{{seed}}"),
    log:
        f"{LOGS}/export/{{variant}}/seed{{seed}}.log",
    conda:
        ENV
    shell:
        "softcot export --run {input.run:q} --eval {input.evals:q} --out {output:q} > {log:q} 2>&1"
