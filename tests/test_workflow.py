"""The Snakemake workflow end to end, on data the tests make (no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, Workflow, numbered_docs, read_jsonl_gz, write_jsonl


def local_entry(folder: Path, dataset_id: str, weight: float, rows: int = 400) -> dict[str, Any]:
    path = write_jsonl(folder / "data" / f"{dataset_id}.jsonl", numbered_docs(dataset_id, rows))
    return {"name": "json", "id": dataset_id, "data_files": str(path), "weight": weight}


def mixture(workflow: Workflow, weights: dict[str, float], target: int) -> dict[str, Any]:
    entries = [local_entry(workflow.folder, name, w) for name, w in weights.items()]
    return {"target_samples": target, "seed": 42, "datasets": entries}


def dry_run(workflow: Workflow, *args: str) -> str:
    result = workflow.run("--dry-run", *args)
    return result.stdout + result.stderr


def test_demo_mixture_runs_end_to_end_and_reproducibly(tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        workflow = Workflow(tmp_path / name)
        workflow.folder.mkdir()
        shutil.copy(REPO / "config" / "config.yaml", workflow.folder / "config.yaml")
        result = workflow.run("--cores", "2")
        assert "Dataset sampling plan:" in result.stdout + result.stderr
        runs.append(workflow.folder)
    plan = json.loads((runs[0] / "raw" / "sampling_plan.json").read_text())
    assert sum(d["count"] for d in plan["datasets"]) == plan["target_samples"] == 2500
    for entry in plan["datasets"]:
        raw = runs[0] / "raw" / entry["id"] / "raw_data.jsonl.gz"
        assert len(read_jsonl_gz(raw)) == entry["count"]
        twin = runs[1] / "raw" / entry["id"] / "raw_data.jsonl.gz"
        assert raw.read_bytes() == twin.read_bytes(), entry["id"]
    stats = json.loads((runs[0] / "raw" / "demo_web_en" / "sample_stats.json").read_text())
    assert stats["rows_without_text"] == {"missing": 1, "not_string": 0, "empty": 2}
    for entry in plan["datasets"]:
        folder = runs[0] / "cleaned" / entry["id"]
        kept = read_jsonl_gz(folder / "cleaned_data.jsonl.gz")
        rejected = read_jsonl_gz(folder / "rejected_data.jsonl.gz")
        assert len(kept) + len(rejected) == entry["count"], entry["id"]
        assert all(r["metadata"]["filter_reason"] for r in rejected)
        for output in ("cleaned_data.jsonl.gz", "rejected_data.jsonl.gz"):
            twin = runs[1] / "cleaned" / entry["id"] / output
            assert (folder / output).read_bytes() == twin.read_bytes()


def test_single_dataset_target_builds_only_that_dataset(workflow: Workflow) -> None:
    workflow.write_config(mixture(workflow, {"a": 1, "b": 1, "c": 1}, 30))
    workflow.run("--cores", "1", "raw/b/raw_data.jsonl.gz")
    assert sorted(p.name for p in (workflow.folder / "raw").iterdir()) == ["b"]
    assert len(read_jsonl_gz(workflow.folder / "raw" / "b" / "raw_data.jsonl.gz")) == 10


def test_changing_one_weight_resamples_only_datasets_whose_count_changed(
    workflow: Workflow,
) -> None:
    workflow.write_config(mixture(workflow, {"a": 1, "b": 1, "c": 2}, 400))  # 100, 100, 200
    workflow.run("--cores", "2")
    assert workflow.jobs(dry_run(workflow), "sample") == set()
    workflow.write_config(mixture(workflow, {"a": 2, "b": 1, "c": 2}, 500))  # 200, 100, 200
    output = dry_run(workflow)
    assert workflow.jobs(output, "sample") == {"a"}
    assert "reason: Params have changed since last execution" in output


def test_changing_a_filter_setting_reruns_only_the_clean_jobs_that_use_it(
    workflow: Workflow,
) -> None:
    config = mixture(workflow, {"a": 1, "b": 1, "code": 1}, 60)
    config["datasets"][2]["profile"] = "code"
    config["filtering"] = {"min_length": 10, "exclude_keywords": ["spam"]}
    workflow.write_config(config)
    workflow.run("--cores", "2")
    config["filtering"]["min_length"] = 20
    workflow.write_config(config)
    output = dry_run(workflow)
    assert workflow.jobs(output, "sample") == set()
    assert workflow.jobs(output, "clean") == {"a", "b"}  # the code profile sets its own
    config["filtering"]["min_length"] = 10
    config["filtering"]["exclude_keywords"] = ["spam", "casino"]
    workflow.write_config(config)
    output = dry_run(workflow)
    assert workflow.jobs(output, "sample") == set()
    assert workflow.jobs(output, "clean") == {"a", "b"}  # code has no keyword filter


def test_changing_a_language_block_reruns_only_that_languages_clean_jobs(
    workflow: Workflow,
) -> None:
    config = mixture(workflow, {"vi_data": 1, "en_data": 1}, 40)
    config["datasets"][0] |= {"profile": "web_multilingual", "language": "vi"}
    config["datasets"][1] |= {"profile": "web", "language": "en"}
    workflow.write_config(config)
    workflow.run("--cores", "2")
    config["languages"] = {"vi": {"language_id": {"threshold": 0.9}}}
    workflow.write_config(config)
    output = dry_run(workflow)
    assert workflow.jobs(output, "sample") == set()
    assert workflow.jobs(output, "clean") == {"vi_data"}


def test_adding_a_dataset_does_not_change_what_the_others_draw(tmp_path: Path) -> None:
    before, after = Workflow(tmp_path / "before"), Workflow(tmp_path / "after")
    for workflow in (before, after):
        workflow.folder.mkdir()
    before.write_config(mixture(before, {"a": 1, "b": 1}, 100))  # 50, 50
    after.write_config(mixture(after, {"a": 1, "b": 1, "new": 2}, 200))  # 50, 50, 100
    for workflow in (before, after):
        workflow.run("--cores", "2")
    for dataset in ("a", "b"):
        path = Path("raw") / dataset / "raw_data.jsonl.gz"
        assert (before.folder / path).read_bytes() == (after.folder / path).read_bytes()


def test_failed_dataset_leaves_no_raw_file_and_others_go_on(workflow: Workflow) -> None:
    config = mixture(workflow, {"good": 1, "broken": 1}, 20)
    broken = Path(config["datasets"][1]["data_files"])
    broken.write_text(broken.read_text() + "{this is not json\n")
    workflow.write_config(config)
    result = workflow.run("--cores", "1", "--keep-going", check=False)
    assert result.returncode != 0
    assert (workflow.folder / "raw" / "good" / "raw_data.jsonl.gz").exists()
    assert not (workflow.folder / "raw" / "broken" / "raw_data.jsonl.gz").exists()
    log = (workflow.folder / "raw" / "broken" / "sample.log").read_text()
    assert "dataset 'broken'" in log and "reading shard 0 failed" in log


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": 1, "colour": "red"}, "unknown top-level key(s) colour"),
        ({"datasets": [{"name": "a/b", "weight": 0}]}, "weight must be a positive number, got 0"),
        ({"datasets": [{"weight": 1}]}, "'name' is a required property"),
        (
            {"datasets": [{"name": "a/b", "weight": 1}, {"name": "a/b", "weight": 2}]},
            "would both be written to folder 'a_b'",
        ),
        (
            {"filtering": {"junk_patterns": ["ok", "(?=x)"]}},
            "filtering.junk_patterns[1]: invalid regex '(?=x)'",
        ),
        (
            {"datasets": [{"name": "a/b", "weight": 1, "profile": "poetry"}]},
            "unknown profile 'poetry'",
        ),
        (
            {"filtering": {"min_lenght": 5}},
            "config key 'filtering': unknown key(s) min_lenght",
        ),
    ],
)
def test_config_error_stops_before_any_job(workflow: Workflow, change, expected) -> None:
    config = {"target_samples": 10, "datasets": [{"name": "a/b", "weight": 1}]} | change
    workflow.write_config(config)
    result = workflow.run("--dry-run", check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (workflow.folder / "raw").exists()


def test_original_script_config_dry_runs_offline(workflow: Workflow) -> None:
    config = {
        "datasets": [
            {
                "name": "HuggingFaceFW/fineweb-2",
                "subset": "vie_Latn",
                "text_field": "text",
                "split": "train",
                "weight": 0.5,
                "streaming": True,
                "categories": ["multilingual"],
                "description": "Vietnamese",
            },
            {"name": "mlfoundations/dclm-baseline-1.0", "text_field": "text", "weight": 0.5},
        ],
        "filtering": {"min_length": 100, "keep_keywords": None, "exclude_keywords": ["spam"]},
    }
    workflow.write_config(config)
    output = dry_run(workflow)
    assert workflow.jobs(output, "sample") == {
        "HuggingFaceFW_fineweb-2_vie_Latn",
        "mlfoundations_dclm-baseline-1.0",
    }


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_smollm3_mixture_dry_runs_offline(workflow: Workflow, stage: str) -> None:
    source = REPO / "config" / "smollm3" / f"{stage}.yaml"
    config = yaml.safe_load(source.read_text())
    shutil.copy(source, workflow.folder / "config.yaml")
    output = dry_run(workflow, "--config", "target_samples=100000", "raw_folder=raw_s1")
    assert len(workflow.jobs(output, "sample")) == len(config["datasets"])
    assert "raw_s1/sampling_plan.json" in output


def test_workflow_is_lint_clean(workflow: Workflow) -> None:
    workflow.write_config(mixture(workflow, {"a": 1}, 5))
    result = workflow.run("--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
