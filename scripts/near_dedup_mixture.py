# Near duplicates across the mixture: one index over every dataset's signatures.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.near_dedup import run_mixture_job

run_logged(
    snakemake.log[0],
    run_mixture_job,
    stores=list(snakemake.input.stores),
    settings=snakemake.params.settings,
    decisions_path=snakemake.output.decisions,
    stats_path=snakemake.output.stats,
)
