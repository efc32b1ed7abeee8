# Generate the offline demo datasets from a seed.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.demo import write_demo_data
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    write_demo_data,
    folder=snakemake.params.folder,
    seed=snakemake.params.seed,
    documents_per_dataset=snakemake.params.documents_per_dataset,
)
