# Stage 2 for one dataset: normalise, filter and deduplicate its raw sample.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.clean import run_clean_job
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    run_clean_job,
    raw_path=snakemake.input.raw,
    settings=snakemake.params.settings,
    cleaned_path=snakemake.output.cleaned,
    rejected_path=snakemake.output.rejected,
    stats_path=snakemake.output.stats,
)
