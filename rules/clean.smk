# Stage 2: one `clean` job per dataset; its params are exactly its resolved profile settings.
# With near-dedup `scope: mixture`, the datasets taking part go clean_stage -> (all of them)
# near_dedup_mixture -> clean_finish instead, and end in the same three files.


rule clean:
    input:
        raw=f"{RAW}/{{dataset}}/raw_data.jsonl.gz",
    output:
        cleaned=f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz",
        rejected=f"{CLEANED}/{{dataset}}/rejected_data.jsonl.gz",
        stats=f"{CLEANED}/{{dataset}}/stats.json",
    log:
        f"{CLEANED}/{{dataset}}/clean.log",
    wildcard_constraints:
        dataset=get_dataset_pattern(mixture_dedup=False),
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    resources:
        mem_mb=get_clean_mem_mb,
        runtime=6 * 60,
    params:
        settings=get_clean_settings,
    script:
        "../scripts/clean.py"


# Mixture scope: filters and exact dedup as in `clean`; the judged batches and the MinHash
# signatures of the documents that passed are kept for the mixture step.
rule clean_stage:
    input:
        raw=f"{RAW}/{{dataset}}/raw_data.jsonl.gz",
    output:
        directory(f"{CLEANED}/{{dataset}}/pre_near_dedup"),
    log:
        f"{CLEANED}/{{dataset}}/clean_stage.log",
    wildcard_constraints:
        dataset=get_dataset_pattern(mixture_dedup=True),
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    resources:
        mem_mb=get_clean_mem_mb,
        runtime=6 * 60,
    params:
        settings=get_clean_settings,
    script:
        "../scripts/clean_stage.py"


# One job: every dataset's signatures in one LSH index; the priority list decides survivors.
rule near_dedup_mixture:
    input:
        stores=expand(
            f"{CLEANED}/{{dataset}}/pre_near_dedup",
            dataset=get_mixture_dedup_datasets(),
        ),
    output:
        decisions=f"{CLEANED}/_near_dedup/near_duplicates.parquet",
        stats=f"{CLEANED}/_near_dedup/stats.json",
    log:
        f"{CLEANED}/_near_dedup/near_dedup_mixture.log",
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    resources:
        mem_mb=get_mixture_dedup_mem_mb,
        runtime=6 * 60,
    params:
        settings=get_mixture_dedup_settings(),
    script:
        "../scripts/near_dedup_mixture.py"


rule clean_finish:
    input:
        store=f"{CLEANED}/{{dataset}}/pre_near_dedup",
        decisions=rules.near_dedup_mixture.output.decisions,
        mixture_stats=rules.near_dedup_mixture.output.stats,
    output:
        cleaned=f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz",
        rejected=f"{CLEANED}/{{dataset}}/rejected_data.jsonl.gz",
        stats=f"{CLEANED}/{{dataset}}/stats.json",
    log:
        f"{CLEANED}/{{dataset}}/clean_finish.log",
    wildcard_constraints:
        dataset=get_dataset_pattern(mixture_dedup=True),
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    resources:
        mem_mb=get_clean_mem_mb,
        runtime=6 * 60,
    script:
        "../scripts/clean_finish.py"


rule cleaned:
    input:
        get_cleaned_outputs(),
    localrule: True
