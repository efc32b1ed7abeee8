# The offline demo data (config/config.yaml reads it), generated from a seed.
import os

from pretrain_mix.demo import DEMO_FILES

DEMO = config["demo"]
DEMO_FOLDER = DEMO["folder"]


rule demo_data:
    output:
        [f"{DEMO_FOLDER}/{name}" for names in DEMO_FILES.values() for name in names],
    log:
        f"{DEMO_FOLDER}/demo_data.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        folder=lambda wildcards, output: os.path.commonpath(output),
        seed=DEMO["seed"],
        documents_per_dataset=DEMO["documents_per_dataset"],
    script:
        "../scripts/make_demo_data.py"
