# Stage 2 up to near-dedup (scope mixture): judged batches and signatures for the mixture step.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.clean import run_clean_stage_job
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    run_clean_stage_job,
    raw_path=snakemake.input.raw,
    settings=snakemake.params.settings,
    store_folder=snakemake.output[0],
)
