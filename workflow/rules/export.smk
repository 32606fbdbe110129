# Export each trained run as a standard Hugging Face checkpoint ("train soft, deploy hard").


rule export:
    input:
        f"{RES}/train/{{variant}}/seed{{seed}}",
    output:
        directory(f"{RES}/export/{{variant}}/seed{{seed}}"),
    log:
        f"{LOGS}/export/{{variant}}/seed{{seed}}.log",
    conda:
        ENV
    shell:
        "softcot export --run {input:q} --out {output:q} > {log:q} 2>&1"
