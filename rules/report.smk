# See and ship the mixture: measurements, summary and plots (in `all`); merged, export, push, inspect.
import time

from pretrain_mix.measure import local_tokenizer_files
from pretrain_mix.summary import fresh_summary_text

REPORTS = config["reports_folder"]
MERGED = config["merged_folder"]
EXPORT = config["export"]["folder"]
RUN_STARTED = time.time()


onsuccess:
    text = fresh_summary_text(f"{REPORTS}/summary.md", since=RUN_STARTED)
    if text:
        print(text)


rule measure:
    input:
        raw=f"{RAW}/{{dataset}}/raw_data.jsonl.gz",
        cleaned=f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz",
        rejected=f"{CLEANED}/{{dataset}}/rejected_data.jsonl.gz",
        tokenizer=local_tokenizer_files(config["tokenizer"]),
    output:
        f"{REPORTS}/measure/{{dataset}}.json",
    log:
        f"{REPORTS}/measure/{{dataset}}.log",
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    params:
        tokenizer=config["tokenizer"],
    script:
        "../scripts/measure.py"


rule summary:
    input:
        plan=f"{RAW}/sampling_plan.json",
        sample_stats=expand(
            f"{RAW}/{{dataset}}/sample_stats.json", dataset=list(DATASETS)
        ),
        clean_stats=expand(f"{CLEANED}/{{dataset}}/stats.json", dataset=list(DATASETS)),
        measures=expand(f"{REPORTS}/measure/{{dataset}}.json", dataset=list(DATASETS)),
    output:
        json=f"{REPORTS}/summary.json",
        markdown=f"{REPORTS}/summary.md",
    log:
        f"{REPORTS}/summary.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        languages={dataset_id: spec.language for dataset_id, spec in DATASETS.items()},
    script:
        "../scripts/summary.py"


rule plots:
    input:
        f"{REPORTS}/summary.json",
    output:
        funnel=report(
            f"{REPORTS}/plots/funnel.png",
            category="Cleaning",
            caption="../report/funnel.rst",
        ),
        reasons=report(
            f"{REPORTS}/plots/reasons.png",
            category="Cleaning",
            caption="../report/reasons.rst",
        ),
        lengths=report(
            f"{REPORTS}/plots/lengths.png",
            category="Cleaning",
            caption="../report/lengths.rst",
        ),
        languages=report(
            f"{REPORTS}/plots/languages.png",
            category="Mixture",
            caption="../report/languages.rst",
        ),
        mixture=report(
            f"{REPORTS}/plots/mixture.png",
            category="Mixture",
            caption="../report/mixture.rst",
        ),
    log:
        f"{REPORTS}/plots/plots.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    script:
        "../scripts/plots.py"


rule merged:
    input:
        cleaned=expand(
            f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz", dataset=list(DATASETS)
        ),
        stats=expand(f"{CLEANED}/{{dataset}}/stats.json", dataset=list(DATASETS)),
    output:
        f"{MERGED}/all_cleaned.jsonl.gz",
    log:
        f"{MERGED}/merge.log",
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        seed=config["seed"],
    script:
        "../scripts/merge.py"


rule export:
    input:
        summary=f"{REPORTS}/summary.json",
        cleaned=expand(
            f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz", dataset=list(DATASETS)
        ),
    output:
        directory(EXPORT),
    log:
        f"{REPORTS}/export.log",
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        export=config["export"],
        repo_id=config["hub"]["repo_id"],
    script:
        "../scripts/export.py"


# No output: `snakemake push` uploads (or, with hub.dry_run, lists) every time it is asked.
rule push:
    input:
        EXPORT,
    log:
        f"{REPORTS}/push.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        hub=config["hub"],
    script:
        "../scripts/push.py"


# No output: `snakemake inspect` prints its sample of every dataset each time it is asked.
rule inspect:
    input:
        cleaned=expand(
            f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz", dataset=list(DATASETS)
        ),
        rejected=expand(
            f"{CLEANED}/{{dataset}}/rejected_data.jsonl.gz", dataset=list(DATASETS)
        ),
    log:
        f"{REPORTS}/inspect.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        inspect=config["inspect"],
    script:
        "../scripts/inspect.py"
