# Count what a dataset's output files hold (documents, characters, words, tokens, reasons).
import os
import sys

# tokenizers encodes on a Rayon pool that would otherwise take every core, not the job's threads.
os.environ["RAYON_NUM_THREADS"] = str(snakemake.threads)

sys.path.insert(0, f"{snakemake.scriptdir}/../src")  # the library, also in conda envs
from pretrain_mix.jobs import run_logged
from pretrain_mix.measure import run_measure_job

run_logged(
    snakemake.log[0],
    run_measure_job,
    dataset_id=snakemake.wildcards.dataset,
    raw_path=snakemake.input.raw,
    cleaned_path=snakemake.input.cleaned,
    rejected_path=snakemake.input.rejected,
    tokenizer=snakemake.params.tokenizer,
    output_path=snakemake.output[0],
)
