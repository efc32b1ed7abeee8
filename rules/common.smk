# Config checking, the dataset table and the sampling plan, path helpers.
import re
from pathlib import Path

from snakemake.utils import validate

from pretrain_mix.config import load_mixture, load_yaml
from pretrain_mix.plan import format_plan_table, make_plan, plan_document
from pretrain_mix.near_dedup import mixture_settings
from pretrain_mix.profiles import check_clean_settings, clean_settings

SCHEMA = Path(workflow.basedir) / "config" / "schema.yaml"

# One-line errors first (unknown key, bad weight, duplicate folder...), then Snakemake's
# own validation, which also fills in the schema's defaults.
DATASETS = {spec.id: spec for spec in load_mixture(config, load_yaml(SCHEMA))}


validate(config, schema=SCHEMA)
check_clean_settings(config, list(DATASETS.values()))
# Near-dedup across datasets (scope: mixture): the near_dedup_mixture rule's params, or None.
NEAR_DEDUP_MIXTURE = mixture_settings(
    config,
    {dataset_id: clean_settings(config, spec) for dataset_id, spec in DATASETS.items()},
)


RAW = config["raw_folder"]
CLEANED = config["cleaned_folder"]
PLAN = {
    row.id: row for row in make_plan(list(DATASETS.values()), config["target_samples"])
}


wildcard_constraints:
    dataset="|".join(re.escape(dataset_id) for dataset_id in DATASETS),


onstart:
    print(format_plan_table(list(PLAN.values())))


def raw_data(dataset_id):
    return f"{RAW}/{dataset_id}/raw_data.jsonl.gz"


def get_raw_outputs():
    return [f"{RAW}/sampling_plan.json"] + [
        raw_data(dataset_id) for dataset_id in DATASETS
    ]


def get_cleaned_outputs():
    return [f"{CLEANED}/{dataset_id}/cleaned_data.jsonl.gz" for dataset_id in DATASETS]


def get_final_output():
    return get_raw_outputs() + get_cleaned_outputs()


def get_plan_document():
    return plan_document(list(PLAN.values()), config["target_samples"], config["seed"])


def get_local_data_files(wildcards):
    """Local files a dataset reads, so Snakemake builds (demo) or tracks them; globs excluded."""
    spec = DATASETS[wildcards.dataset]
    files = spec.data_files if spec.is_local else None
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list):
        return []
    return [path for path in files if not any(char in path for char in "*?[")]


def get_source_params(wildcards):
    return DATASETS[wildcards.dataset].source_params()


def get_sample_count(wildcards):
    return PLAN[wildcards.dataset].count


def get_sampling_settings(wildcards):
    """The sampling section, with this dataset's own scan limit where it sets one."""
    settings = dict(config["sampling"])
    spec = DATASETS[wildcards.dataset]
    if spec.max_rows_scanned is not None:
        settings["max_rows_scanned"] = spec.max_rows_scanned
    return settings


def get_sample_mem_mb(wildcards):
    """Room for twice the sample as Python strings (~20 kB a document) plus the stream."""
    return 2000 + PLAN[wildcards.dataset].count // 50


def get_clean_settings(wildcards):
    return clean_settings(config, DATASETS[wildcards.dataset])


def get_clean_mem_mb(wildcards):
    """A batch of documents several times over (polars columns, regex copies), plus the index;
    with near-dedup in the job, its MinHash index (about 200 bytes a document) and the shingle
    sets of candidate documents for verification (~1 kB a document if a fifth are candidates).
    """
    batch = config["cleaning"]["batch_size"]
    count = PLAN[wildcards.dataset].count
    near_dedup = get_clean_settings(wildcards)["near_dedup"] is not None
    near_dedup_mb = count // 5_000 + count // 1_000 if near_dedup else 0
    return 1000 + batch // 10 + count // 20_000 + near_dedup_mb


def get_mixture_dedup_datasets():
    """Datasets whose near duplicates are decided across the mixture (rule near_dedup_mixture)."""
    return NEAR_DEDUP_MIXTURE["datasets"] if NEAR_DEDUP_MIXTURE else []


def get_dataset_pattern(mixture_dedup):
    """Wildcard regex of the datasets that do (or do not) take part in mixture near-dedup."""
    chosen = set(get_mixture_dedup_datasets())
    ids = [i for i in DATASETS if (i in chosen) == mixture_dedup]
    return "|".join(re.escape(dataset_id) for dataset_id in ids) or "(?!)"  # (?!): none


def get_mixture_dedup_settings():
    return NEAR_DEDUP_MIXTURE


def get_mixture_dedup_mem_mb(wildcards):
    """The MinHash index of every dataset (about 200 bytes a document) and, for verification,
    the shingle sets of candidate documents (~1 kB a document if a fifth are candidates).
    """
    count = sum(PLAN[dataset_id].count for dataset_id in get_mixture_dedup_datasets())
    return 1000 + count // 5_000 + count // 1_000


def get_report_outputs():
    """The summary and the plots (rules/report.smk), built with `all`."""
    return [str(path) for path in [rules.summary.output.markdown, *rules.plots.output]]
