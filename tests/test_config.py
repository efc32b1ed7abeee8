"""Config errors are one line, name the dataset and key, and happen before any job."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pretrain_mix.config import DatasetSpec, default_dataset_id, load_mixture
from pretrain_mix.errors import ConfigError

BASE: dict[str, Any] = {
    "target_samples": 100,
    "datasets": [
        {"name": "HuggingFaceFW/fineweb-edu", "weight": 0.5},
        {"name": "HuggingFaceFW/fineweb-2", "config": "vie_Latn", "weight": 0.5},
    ],
}


def config_with(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


def config_error(config: dict[str, Any], schema: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mixture(config, schema)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def test_unknown_top_level_key_is_named(schema) -> None:
    message = config_error(config_with(target_sample=5), schema)
    assert "unknown top-level key(s) target_sample" in message
    assert "target_samples" in message  # the known keys are listed


@pytest.mark.parametrize("weight", [0, -1, "heavy", None])
def test_weight_must_be_a_positive_number(schema, weight) -> None:
    config = config_with()
    config["datasets"][1]["weight"] = weight
    message = config_error(config, schema)
    assert "datasets[1].weight" in message
    assert "HuggingFaceFW/fineweb-2" in message
    assert "positive number" in message


def test_missing_name_is_an_error(schema) -> None:
    config = config_with()
    del config["datasets"][0]["name"]
    message = config_error(config, schema)
    assert "datasets[0]" in message and "'name' is a required property" in message


def test_two_datasets_in_the_same_folder_are_an_error(schema) -> None:
    config = config_with()
    config["datasets"].append({"name": "HuggingFaceFW/fineweb-edu", "weight": 1})
    message = config_error(config, schema)
    assert "datasets[0]" in message and "datasets[2]" in message
    assert "folder 'HuggingFaceFW_fineweb-edu'" in message and "id:" in message


def test_distinct_ids_make_the_same_source_twice_valid(schema) -> None:
    config = config_with()
    config["datasets"].append({"name": "HuggingFaceFW/fineweb-edu", "id": "edu_2", "weight": 1})
    assert [d.id for d in load_mixture(config, schema)][-1] == "edu_2"


def test_local_builder_needs_data_files(schema) -> None:
    message = config_error(config_with(datasets=[{"name": "json", "weight": 1}]), schema)
    assert "datasets[0] ('json')" in message and "data_files" in message


def test_text_field_and_template_together_are_an_error(schema) -> None:
    entry = {"name": "a/b", "weight": 1, "text_field": "text", "text_template": "{x}"}
    assert "not both" in config_error(config_with(datasets=[entry]), schema)


def test_template_with_format_spec_is_an_error(schema) -> None:
    entry = {"name": "a/b", "weight": 1, "text_template": "{problem:>10}"}
    assert "plain {column} placeholders" in config_error(config_with(datasets=[entry]), schema)


def test_bad_scan_limit_says_what_is_allowed(schema) -> None:
    message = config_error(config_with(sampling={"max_rows_scanned": "ten"}), schema)
    assert "sampling.max_rows_scanned" in message and "'10x'" in message


def test_unknown_sampling_key_is_an_error(schema) -> None:
    message = config_error(config_with(sampling={"shufle_shards": True}), schema)
    assert "shufle_shards" in message


def test_original_script_config_loads_unchanged(schema) -> None:
    """The original two-stage script's format: subset alias, extra keys, a filtering section."""
    config = {
        "datasets": [
            {
                "name": "HuggingFaceFW/fineweb-2",
                "subset": "vie_Latn",
                "split": "train",
                "text_field": "text",
                "weight": 0.00325,
                "streaming": True,
                "description": "Vietnamese web",
                "categories": ["multilingual", "web"],
                "verified": True,
                "source": "SmolLM3",
            },
            {"name": "mlfoundations/dclm-baseline-1.0", "weight": 0.37},
        ],
        "filtering": {
            "min_length": 100,
            "max_length": 1000000,
            "keep_keywords": None,
            "exclude_keywords": ["click here"],
            "junk_patterns": ["!!!!!+"],
            "language_confidence_threshold": 0.7,
            "deduplication": {"enabled": True, "similarity_threshold": 0.85},
        },
    }
    vie, dclm = load_mixture(config, schema)
    assert vie.id == "HuggingFaceFW_fineweb-2_vie_Latn"
    assert vie.load_kwargs() == {
        "path": "HuggingFaceFW/fineweb-2",
        "name": "vie_Latn",
        "split": "train",
    }
    assert dclm.id == "mlfoundations_dclm-baseline-1.0" and dclm.text_field == "text"


def test_local_entry_maps_onto_load_dataset_arguments(schema) -> None:
    entry = {"name": "parquet", "id": "mine", "data_files": ["a.parquet"], "weight": 2}
    (spec,) = load_mixture(config_with(datasets=[entry]), schema)
    assert spec.load_kwargs() == {"path": "parquet", "split": "train", "data_files": ["a.parquet"]}
    assert spec.is_local


def test_source_params_round_trip() -> None:
    spec = DatasetSpec(id="x", name="a/b", weight=1.5, config="c", metadata_fields=("url",))
    assert DatasetSpec.from_params(spec.source_params()) == spec


def test_default_id_follows_the_original_folder_names() -> None:
    assert default_dataset_id("HuggingFaceTB/finemath", "finemath-3plus") == (
        "HuggingFaceTB_finemath_finemath-3plus"
    )
    assert default_dataset_id("mlfoundations/dclm-baseline-1.0", None) == (
        "mlfoundations_dclm-baseline-1.0"
    )
