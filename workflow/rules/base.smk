# The embedded default's base model: a tiny char-level Llama pre-trained from scratch on CoT demos of
# both task families, stopped at a middling accuracy so that RL has room to improve. (Paper presets use
# an instruct model from the hub instead and skip this rule.)


rule pretrain_base:
    input:
        expand(f"{RES}/data/{{split}}.jsonl", split=TOY_SPLITS),
    output:
        model=directory(f"{RES}/base"),
        cfg=f"{RES}/configs/pretrain.yaml",
    params:
        pretrain=lambda wc: section("pretrain"),
        data=lambda wc, input: os.path.dirname(input[0]),
        ckpt=f"{CKPT}/base",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        f"{LOGS}/base/pretrain.log",
    benchmark:
        f"{BENCH}/pretrain_base.tsv"
    conda:
        ENV
    shell:
        "python workflow/scripts/write_yaml.py {output.cfg:q} {params.pretrain:q} threads={threads} && "
        "softcot pretrain --data {params.data:q} --config {output.cfg:q} --out {output.model:q} "
        "--ckpt-dir {params.ckpt:q} > {log:q} 2>&1"
