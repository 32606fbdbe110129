# softcot: RL of continuous chains of thought ("Soft Tokens, Hard Truths", arXiv 2509.19170).
#
#   snakemake --cores all                          the embedded default: the whole grid in miniature, CPU
#   snakemake --cores all table1 fig3              one table or figure from cached intermediates
#   snakemake --configfile config/presets/llama3b_gsm8k.yaml \
#       --workflow-profile profiles/slurm -j 20    a paper setup on a SLURM GPU cluster
#   snakemake --report results/report.html         the HTML report with captions
#   snakemake --cores all docs                     docs/results.md: findings, tables, figures of this run
#
# DAG: data -> (toy: pretrain the base) -> train {hard,soft,fuzzy} x seeds -> export -> evaluate (six
# inference settings, pass@k) -> out-of-domain -> tables, figures, report.

from snakemake.utils import min_version

min_version("9.10")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/base.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/ood.smk"
include: "workflow/rules/estimators.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/docs.smk"


rule all:
    default_target: True
    input:
        default_targets(),
