# Print random kept and rejected documents of every dataset, with their reasons.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.inspect import run_inspect_job
from pretrain_mix.jobs import run_logged

run_logged(
    snakemake.log[0],
    run_inspect_job,
    cleaned_paths=snakemake.input.cleaned,
    rejected_paths=snakemake.input.rejected,
    settings=snakemake.params.inspect,
)
