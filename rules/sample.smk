# Stage 1: one `sample` job per dataset, so datasets stream in parallel.


rule plan:
    output:
        f"{RAW}/sampling_plan.json",
    log:
        f"{RAW}/sampling_plan.log",
    localrule: True
    conda:
        "../envs/pretrain-mix.yaml"
    params:
        plan=get_plan_document(),
    script:
        "../scripts/plan.py"


rule sample:
    input:
        get_local_data_files,
    output:
        data=f"{RAW}/{{dataset}}/raw_data.jsonl.gz",
        stats=f"{RAW}/{{dataset}}/sample_stats.json",
    log:
        f"{RAW}/{{dataset}}/sample.log",
    conda:
        "../envs/pretrain-mix.yaml"
    threads: 1
    resources:
        mem_mb=get_sample_mem_mb,
        runtime=24 * 60,
    params:
        dataset=get_source_params,
        sample_size=get_sample_count,
        seed=config["seed"],
        sampling=get_sampling_settings,
    script:
        "../scripts/sample.py"


rule raw:
    input:
        get_raw_outputs(),
    localrule: True
