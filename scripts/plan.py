# Write the sampling plan (computed from the config in rules/common.smk) as JSON.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.io import write_json
from pretrain_mix.jobs import run_logged

run_logged(snakemake.log[0], write_json, path=snakemake.output[0], document=snakemake.params.plan)
