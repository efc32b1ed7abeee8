# Stage 2 after the mixture step: one dataset's cleaned, rejected and stats files.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.clean import run_clean_finish_job
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    run_clean_finish_job,
    store_folder=snakemake.input.store,
    decisions_path=snakemake.input.decisions,
    mixture_stats_path=snakemake.input.mixture_stats,
    dataset_id=snakemake.wildcards.dataset,
    cleaned_path=snakemake.output.cleaned,
    rejected_path=snakemake.output.rejected,
    stats_path=snakemake.output.stats,
)
