# Every kept document once, datasets interleaved in a seeded random order, one gzip stream.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.merge import run_merge_job

run_logged(
    snakemake.log[0],
    run_merge_job,
    cleaned_paths=snakemake.input.cleaned,
    stats_paths=snakemake.input.stats,
    seed=snakemake.params.seed,
    output_path=snakemake.output[0],
)
