# Upload the export folder to the Hugging Face Hub (or list it, with hub.dry_run).
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.hub import run_push_job
from pretrain_mix.jobs import run_logged

run_logged(snakemake.log[0], run_push_job, folder=snakemake.input[0], hub=snakemake.params.hub)
