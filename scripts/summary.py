# The mixture summary: per-dataset counts and target vs achieved shares, as JSON and Markdown.
import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.summary import run_summary_job

run_logged(
    snakemake.log[0],
    run_summary_job,
    plan_path=snakemake.input.plan,
    sample_stats_paths=snakemake.input.sample_stats,
    clean_stats_paths=snakemake.input.clean_stats,
    measure_paths=snakemake.input.measures,
    languages=snakemake.params.languages,
    json_path=snakemake.output.json,
    markdown_path=snakemake.output.markdown,
)
