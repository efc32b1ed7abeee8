# Stage 2: one `clean` job per dataset; its params are exactly its resolved profile settings.


rule clean:
    input:
        raw=f"{RAW}/{{dataset}}/raw_data.jsonl.gz",
    output:
        cleaned=f"{CLEANED}/{{dataset}}/cleaned_data.jsonl.gz",
        rejected=f"{CLEANED}/{{dataset}}/rejected_data.jsonl.gz",
        stats=f"{CLEANED}/{{dataset}}/stats.json",
    params:
        settings=get_clean_settings,
    log:
        f"{CLEANED}/{{dataset}}/clean.log",
    threads: 1
    resources:
        mem_mb=get_clean_mem_mb,
        runtime=6 * 60,
    conda:
        "../envs/pretrain-mix.yaml"
    script:
        "../scripts/clean.py"


rule cleaned:
    input:
        get_cleaned_outputs(),
    localrule: True
