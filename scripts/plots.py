# The report's plots, drawn from summary.json.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.plots import run_plots_job

run_logged(
    snakemake.log[0],
    run_plots_job,
    summary_path=snakemake.input[0],
    outputs=dict(snakemake.output.items()),
)
