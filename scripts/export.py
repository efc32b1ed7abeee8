# A folder ready for the Hugging Face Hub: parquet shards per dataset and a dataset card.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.export import run_export_job
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    run_export_job,
    summary_path=snakemake.input.summary,
    cleaned_paths=snakemake.input.cleaned,
    settings=snakemake.params.export,
    repo_id=snakemake.params.repo_id,
    folder=snakemake.output[0],
)
