# Stage 1 for one dataset: stream it, draw the planned sample, write raw_data + sample_stats.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.sampling import run_sample_job

run_logged(
    snakemake.log[0],
    run_sample_job,
    dataset=snakemake.params.dataset,
    count=snakemake.params.sample_size,
    seed=snakemake.params.seed,
    sampling=snakemake.params.sampling,
    data_path=snakemake.output.data,
    stats_path=snakemake.output.stats,
)
