# pretrain-mix: sample a weighted mixture of Hugging Face datasets (stage 1), then clean it
# (stage 2). The whole workflow on one screen; logic lives in src/pretrain_mix.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/sample.smk"
include: "rules/clean.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
        get_report_outputs(),
