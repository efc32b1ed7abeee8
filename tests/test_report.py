"""Summary, plots, report, merged file, Hub export, push and inspect (rules/report.smk)."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, Workflow, read_jsonl_gz
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers

from pretrain_mix.io import gzip_writer, json_line

DEMO_TARGET = 600


def write_gz(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip_writer(path) as stream:
        for record in records:
            stream.write(json_line(record))
    return path


def build_word_tokenizer(path: Path) -> Path:
    """A tiny WordLevel tokenizer (no download): one token per whitespace-separated word."""
    vocab = {"[UNK]": 0, "the": 1, "a": 2}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(path))
    return path


def gzip_members(path: Path) -> int:
    data, members = path.read_bytes(), 0
    while data:
        decompressor = zlib.decompressobj(wbits=31)
        decompressor.decompress(data)
        assert decompressor.eof, "truncated gzip member"
        data, members = decompressor.unused_data, members + 1
    return members


def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


# --- the demo, run once for the workflow-level tests --------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workflow, str]:
    """The demo mixture (fewer documents) with a local tokenizer; returns the run's output."""
    workflow = Workflow(tmp_path_factory.mktemp("demo"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["target_samples"] = DEMO_TARGET
    config["demo"]["documents_per_dataset"] = 400
    config["tokenizer"] = str(build_word_tokenizer(workflow.folder / "tokenizer.json"))
    config["export"]["max_shard_size"] = "60kB"
    workflow.write_config(config)
    result = workflow.run("--cores", "2", "all", "merged", "export")  # one run: time
    return workflow, result.stdout + result.stderr


def dataset_ids(workflow: Workflow) -> list[str]:
    plan = json.loads((workflow.folder / "raw" / "sampling_plan.json").read_text())
    return [row["id"] for row in plan["datasets"]]


def test_summary_numbers_equal_the_counts_in_each_datasets_files(demo) -> None:
    workflow, output = demo
    folder = workflow.folder
    summary = json.loads((folder / "reports" / "summary.json").read_text())
    plan = json.loads((folder / "raw" / "sampling_plan.json").read_text())
    assert [d["id"] for d in summary["datasets"]] == dataset_ids(workflow)
    all_kept_chars = 0
    for row, d in zip(plan["datasets"], summary["datasets"], strict=True):
        kept = read_jsonl_gz(folder / "cleaned" / d["id"] / "cleaned_data.jsonl.gz")
        rejected = read_jsonl_gz(folder / "cleaned" / d["id"] / "rejected_data.jsonl.gz")
        raw = read_jsonl_gz(folder / "raw" / d["id"] / "raw_data.jsonl.gz")
        assert d["planned"] == row["count"]
        assert d["sampled"] == len(raw) == len(kept) + len(rejected)
        assert d["kept"] == len(kept) and d["rejected"] == len(rejected)
        reasons = Counter(r["metadata"]["filter_reason"] for r in rejected)
        assert {r: n for r, n in d["rejected_by_reason"].items() if n} == dict(reasons)
        assert d["characters"]["kept"] == sum(len(r["text"]) for r in kept)
        assert d["characters"]["raw"] == sum(len(r["text"]) for r in raw)
        assert d["words_kept"] == sum(len(r["text"].split()) for r in kept)
        assert d["bytes_kept"] == sum(len(r["text"].encode()) for r in kept)
        assert d["tokens_kept"] == d["words_kept"]  # the test tokenizer: one token a word
        assert d["target_share"] == pytest.approx(row["weight"] / plan["total_weight"])
        assert sum(d["length_histogram"]["kept"]) == len(kept)
        assert sum(d["languages"].values()) == len(kept)
        all_kept_chars += d["characters"]["kept"]
    totals = summary["totals"]
    assert totals["sampled"] == DEMO_TARGET
    for d in summary["datasets"]:
        assert d["achieved_share"]["documents"] == pytest.approx(d["kept"] / totals["kept"])
        assert d["achieved_share"]["characters"] == pytest.approx(
            d["characters"]["kept"] / all_kept_chars
        )
    markdown = (folder / "reports" / "summary.md").read_text()
    assert "| total " in markdown and "tokens kept" in markdown
    assert f"{totals['kept']:,}" in markdown
    assert markdown.strip() in output  # printed at the end of the run


def test_plots_are_non_empty_images(demo) -> None:
    workflow, _ = demo
    for name in ("funnel", "reasons", "lengths", "languages", "mixture"):
        path = workflow.folder / "reports" / "plots" / f"{name}.png"
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 300 and image.height > 150
            low, high = image.convert("L").getextrema()
            assert high - low > 100, f"{name}.png is blank"


def test_snakemake_report_contains_the_plots_with_categories(demo) -> None:
    workflow, _ = demo
    workflow.run("--report", "report.html")
    html = (workflow.folder / "report.html").read_text(encoding="utf-8")
    for text in ("funnel.png", "mixture.png", "languages.png", "Cleaning", "Mixture"):
        assert text in html
    assert "Target vs achieved mixture" in html  # a caption


def test_changing_the_tokenizer_reruns_only_the_measurements(demo, tmp_path: Path) -> None:
    workflow, _ = demo
    other = build_word_tokenizer(tmp_path / "other.json")
    result = workflow.run("--dry-run", "--config", f"tokenizer={other}")
    output = result.stdout + result.stderr
    assert workflow.jobs(output, "measure") == set(dataset_ids(workflow))
    assert workflow.jobs(output, "clean") == set() and workflow.jobs(output, "sample") == set()


def test_merged_file_has_exactly_the_kept_documents_interleaved(demo) -> None:
    workflow, _ = demo
    path = workflow.folder / "merged" / "all_cleaned.jsonl.gz"
    assert gzip_members(path) == 1
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        merged = handle.read().splitlines()
    expected: list[str] = []
    by_dataset: dict[str, list[str]] = {}
    for dataset_id in dataset_ids(workflow):
        cleaned = workflow.folder / "cleaned" / dataset_id / "cleaned_data.jsonl.gz"
        with gzip.open(cleaned, "rt", encoding="utf-8") as handle:
            by_dataset[dataset_id] = handle.read().splitlines()
        expected += by_dataset[dataset_id]
    assert Counter(merged) == Counter(expected) and len(merged) == len(expected)
    order = [json.loads(line)["metadata"]["dataset_id"] for line in merged]
    for dataset_id, lines in by_dataset.items():  # each dataset keeps its own order
        assert [m for m, o in zip(merged, order, strict=True) if o == dataset_id] == lines
    switches = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert switches > len(order) // 3  # interleaved, not dataset after dataset


def test_export_loads_each_source_with_datasets_offline(
    demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow, _ = demo
    export = workflow.folder / "export"
    summary = json.loads((workflow.folder / "reports" / "summary.json").read_text())
    card = (export / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == dataset_ids(workflow)
    assert "## Mixture: target share vs achieved share" in card and "exact_dedup" in card
    offline_env(monkeypatch)
    for d in summary["datasets"]:
        shards = sorted((export / "data" / d["id"]).glob("*.parquet"))
        assert shards[0].name.endswith(f"-of-{len(shards):05d}.parquet")
        for shard in shards:
            assert pq.read_metadata(shard).num_rows > 0
            assert shard.stat().st_size <= 60_000
        loaded = datasets.load_dataset(
            str(export), d["id"], split="train", cache_dir=str(tmp_path / "cache")
        )
        assert loaded.num_rows == d["kept"]
        assert loaded[0]["metadata"]["dataset_id"] == d["id"]
    web = summary["datasets"][0]
    assert len(list((export / "data" / web["id"]).glob("*.parquet"))) > 1  # size-bounded


def test_push_without_network_fails_on_one_line_and_never_logs_the_token(
    demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow, _ = demo
    token = "hf_NotARealTokenButSecret"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = workflow.run("--cores", "1", "push", "--config", "hub={repo_id: me/mix}", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "ERROR HubError: cannot reach the Hugging Face Hub at http://127.0.0.1:9" in output
    log = (workflow.folder / "reports" / "push.log").read_text()
    assert "Traceback" not in log and token not in log + output


def test_inspect_target_prints_kept_and_rejected_documents(demo) -> None:
    workflow, _ = demo
    result = workflow.run("--cores", "1", "inspect")
    output = result.stdout + result.stderr
    for dataset_id in dataset_ids(workflow):
        assert f"=== {dataset_id}: 3 of " in output
    reasons = set()
    for dataset_id in dataset_ids(workflow):
        stats = json.loads((workflow.folder / "cleaned" / dataset_id / "stats.json").read_text())
        reasons |= {reason for reason, n in stats["rejected_by_reason"].items() if n}
    shown = set(re.findall(r"rejected \d+ \| reason: (\w+)", output))
    assert shown and shown <= reasons  # rejected documents are shown with their real reasons
    assert "# Mixture summary" not in output  # only a run that rebuilt it prints the summary


# --- the library, on small files the tests write --------------------------------------


def make_dataset(
    folder: Path,
    dataset_id: str,
    kept: list[str],
    rejected: list[tuple[str, str]],
    language: str | None = None,
) -> dict[str, Path]:
    """raw, cleaned, rejected, stats.json and sample_stats.json of one dataset, consistent."""

    def record(text: str, index: int, **extra: Any) -> dict[str, Any]:
        metadata = {"dataset_id": dataset_id, "original_index": index, **extra}
        return {"text": text, "metadata": metadata}

    lang = {"language": language, "language_score": 0.9} if language else {}
    kept_records = [record(t, i, **lang) for i, t in enumerate(kept)]
    rejected_records = [
        record(t, len(kept) + i, filter_reason=r) for i, (t, r) in enumerate(rejected)
    ]
    raw = [record(r["text"], r["metadata"]["original_index"]) for r in kept_records]
    raw += [record(t, len(kept) + i) for i, (t, _) in enumerate(rejected)]
    reasons = Counter(r for _, r in rejected)
    base = folder / dataset_id
    paths = {
        "raw": write_gz(base / "raw_data.jsonl.gz", raw),
        "cleaned": write_gz(base / "cleaned_data.jsonl.gz", kept_records),
        "rejected": write_gz(base / "rejected_data.jsonl.gz", rejected_records),
        "stats": base / "stats.json",
        "sample_stats": base / "sample_stats.json",
    }
    stats = {
        "documents_in": len(raw),
        "kept": len(kept),
        "rejected": len(rejected),
        "rejected_by_reason": {"too_short": reasons["too_short"], **reasons},
        "filters": [{"name": "length", "removed": reasons["too_short"], "seconds": 0.0}],
        "settings": {"profile": "web"},
    }
    paths["stats"].write_text(json.dumps(stats))
    paths["sample_stats"].write_text(json.dumps({"dataset_id": dataset_id, "sampled": len(raw)}))
    return paths


def plan_for(ids_weights: dict[str, float], target: int) -> dict[str, Any]:
    total = sum(ids_weights.values())
    rows = [
        {
            "id": i,
            "source": "json",
            "config": None,
            "split": "train",
            "weight": w,
            "share": w / total,
            "count": round(target * w / total),
        }
        for i, w in ids_weights.items()
    ]
    return {"target_samples": target, "seed": 1, "total_weight": total, "datasets": rows}


def summarise(tmp_path: Path, datasets_: dict[str, dict[str, Path]], plan: dict, tokenizer=None):
    from pretrain_mix.measure import run_measure_job
    from pretrain_mix.summary import run_summary_job

    measures = []
    for dataset_id, paths in datasets_.items():
        measures.append(tmp_path / "measure" / f"{dataset_id}.json")
        run_measure_job(
            dataset_id,
            paths["raw"],
            paths["cleaned"],
            paths["rejected"],
            tokenizer,
            measures[-1],
        )
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return run_summary_job(
        tmp_path / "plan.json",
        [p["sample_stats"] for p in datasets_.values()],
        [p["stats"] for p in datasets_.values()],
        measures,
        {dataset_id: None for dataset_id in datasets_},
        tmp_path / "summary.json",
        tmp_path / "summary.md",
    )


def test_summary_reads_reasons_and_languages_generically(tmp_path: Path) -> None:
    files = {
        "web": make_dataset(
            tmp_path,
            "web",
            ["one two three", "héllo wörld"],
            [("x", "too_short"), ("one two three", "near_duplicate")],
            language="en",
        ),
        "code": make_dataset(tmp_path, "code", ["def f():\n    return 1"], []),
    }
    summary = summarise(tmp_path, files, plan_for({"web": 3, "code": 1}, 5))
    web, code = summary["datasets"]
    assert web["rejected_by_reason"] == {"too_short": 1, "near_duplicate": 1}
    assert web["languages"] == {"en": 2} and code["languages"] == {"unidentified": 1}
    assert web["words_kept"] == 5 and web["bytes_kept"] == len("one two threehéllo wörld".encode())
    assert web["tokens_kept"] is None and summary["tokenizer"] is None
    assert web["achieved_share"]["documents"] == pytest.approx(2 / 3)
    assert summary["totals"]["rejected_by_reason"] == {"too_short": 1, "near_duplicate": 1}
    markdown = (tmp_path / "summary.md").read_text()
    assert "no tokenizer set" in markdown and "tokens kept" not in markdown
    assert "| web     |" in markdown and "too_short 1, near_duplicate 1" in markdown


def test_tokens_are_counted_with_a_local_tokenizer_json(tmp_path: Path) -> None:
    files = {"web": make_dataset(tmp_path, "web", ["the cat sat", "a b  c\nd"], [])}
    tokenizer = build_word_tokenizer(tmp_path / "tokenizer.json")
    summary = summarise(tmp_path, files, plan_for({"web": 1}, 2), tokenizer=str(tokenizer))
    assert summary["datasets"][0]["tokens_kept"] == 7
    assert summary["tokenizer"] == str(tokenizer)
    assert summary["datasets"][0]["achieved_share"]["tokens"] == 1.0


def test_missing_tokenizer_file_is_a_one_line_error(tmp_path: Path) -> None:
    from pretrain_mix.measure import TokenizerError, load_tokenizer

    with pytest.raises(TokenizerError, match=r"file .*nope\.json not found"):
        load_tokenizer(str(tmp_path / "nope.json"))


def test_summary_refuses_files_from_different_runs(tmp_path: Path) -> None:
    from pretrain_mix.summary import SummaryInputError

    files = {"web": make_dataset(tmp_path, "web", ["a b c", "d e f"], [("x", "too_short")])}
    stats = json.loads(files["web"]["stats"].read_text())
    stats["kept"], stats["rejected"] = 1, 2
    files["web"]["stats"].write_text(json.dumps(stats))
    with pytest.raises(SummaryInputError, match="kept file has 2 lines, stats.json says 1"):
        summarise(tmp_path, files, plan_for({"web": 1}, 3))
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "summary.md").exists()


def test_plots_render_when_a_dataset_kept_nothing(tmp_path: Path) -> None:
    from pretrain_mix.plots import PLOTS, run_plots_job

    files = {
        "web": make_dataset(tmp_path, "web", ["some text here"], [("x", "too_short")]),
        "empty": make_dataset(tmp_path, "empty", [], [("y", "too_short"), ("z", "too_short")]),
    }
    summarise(tmp_path, files, plan_for({"web": 1, "empty": 1}, 4))
    outputs = {name: tmp_path / "plots" / f"{name}.png" for name in PLOTS}
    run_plots_job(tmp_path / "summary.json", outputs)
    for path in outputs.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100


def test_interleaving_is_seeded_complete_and_mixed() -> None:
    from pretrain_mix.merge import interleaving

    counts = [500, 300, 0, 200]
    labels = [int(x) for block in interleaving(counts, seed=7, block=64) for x in block]
    assert Counter(labels) == {0: 500, 1: 300, 3: 200}
    again = [int(x) for block in interleaving(counts, seed=7, block=64) for x in block]
    other = [int(x) for block in interleaving(counts, seed=8, block=64) for x in block]
    assert labels == again and labels != other
    assert labels[:500].count(0) < 400  # not one dataset first


def test_merge_fails_when_a_cleaned_file_is_shorter_than_its_stats(tmp_path: Path) -> None:
    from pretrain_mix.merge import MergeError, merge_streams

    a = write_gz(tmp_path / "a.jsonl.gz", [{"text": f"a{i}"} for i in range(5)])
    b = write_gz(tmp_path / "b.jsonl.gz", [{"text": f"b{i}"} for i in range(3)])
    output = tmp_path / "merged.jsonl.gz"
    with pytest.raises(MergeError, match="b.jsonl.gz has fewer lines than the 4"):
        merge_streams([a, b], [5, 4], seed=1, output_path=output)
    with pytest.raises(MergeError, match="a.jsonl.gz has more lines than the 4"):
        merge_streams([a, b], [4, 3], seed=1, output_path=output)
    assert not output.exists()
    assert merge_streams([a, b], [5, 3], seed=1, output_path=output) == 8
    first = output.read_bytes()
    merge_streams([a, b], [5, 3], seed=1, output_path=output)
    assert output.read_bytes() == first  # same seed, same bytes
    merge_streams([a, b], [5, 3], seed=2, output_path=output)
    assert output.read_bytes() != first


def test_export_shard_bound_and_empty_dataset(tmp_path: Path) -> None:
    from pretrain_mix.export import export_dataset, parse_size

    assert parse_size("500MB") == 500_000_000 and parse_size("1GiB") == 2**30
    assert parse_size(1234) == 1234
    records = [{"text": "x" * 1000, "metadata": {"i": i, "tag": None}} for i in range(50)]
    records.append({"text": "y" * 20_000, "metadata": {"i": 50, "tag": "big"}})
    path = write_gz(tmp_path / "c.jsonl.gz", records)
    shards = export_dataset(path, tmp_path / "out" / "data" / "c", max_bytes=10_000)
    rows = [pq.read_metadata(s).num_rows for s in shards]
    assert sum(rows) == 51 and len(shards) >= 6 and rows[-1] == 1  # the big one alone
    schema = pq.read_schema(shards[0])
    assert str(schema.field("text").type) == "string"
    assert str(schema.field("metadata").type.field("tag").type) == "string"  # merged over batches
    empty = write_gz(tmp_path / "e.jsonl.gz", [])
    (shard,) = export_dataset(empty, tmp_path / "out" / "data" / "e", max_bytes=10_000)
    assert shard.name == "train-00000-of-00001.parquet" and pq.read_metadata(shard).num_rows == 0


def test_push_dry_run_lists_the_files_and_uploads_nothing(tmp_path: Path, capsys) -> None:
    from pretrain_mix.hub import run_push_job

    shard = tmp_path / "export" / "data" / "web" / "train-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"x" * 1500)
    (tmp_path / "export" / "README.md").write_text("card")
    (tmp_path / "export" / ".snakemake_timestamp").touch()
    done = run_push_job(tmp_path / "export", {"repo_id": "me/mix", "dry_run": True})
    assert done["files"] == [("README.md", 4), ("data/web/train-00000-of-00001.parquet", 1500)]
    printed = capsys.readouterr().out
    assert printed.startswith("hub.dry_run: would upload 2 files (1.5 kB) to the private")
    assert "data/web/train-00000-of-00001.parquet" in printed and ".snakemake" not in printed


def test_push_needs_a_repo_id_and_fails_offline_on_one_line(tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    from pretrain_mix.hub import HubError, run_push_job

    (tmp_path / "export" / "data").mkdir(parents=True)
    (tmp_path / "export" / "README.md").write_text("card")
    with pytest.raises(HubError, match=r"hub.repo_id is not set"):
        run_push_job(tmp_path / "export", {"repo_id": None})
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"^cannot push to me/mix: HF_HUB_OFFLINE is set") as caught:
        run_push_job(tmp_path / "export", {"repo_id": "me/mix", "private": True})
    assert "\n" not in str(caught.value) and "hf_secret" not in str(caught.value)


def test_inspect_command_is_seeded_and_filters_by_reason(tmp_path: Path, capsys) -> None:
    from pretrain_mix.inspect import main

    rejected = [(f"short {i}", "too_short") for i in range(20)]
    rejected += [(f"spam {i}", "excluded_keyword") for i in range(20)]
    make_dataset(tmp_path / "cleaned", "web", [f"kept document {i}" for i in range(50)], rejected)
    args = ["web", "--cleaned-folder", str(tmp_path / "cleaned"), "-n", "4"]
    assert main([*args, "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert "=== web: 4 of 50 kept documents ===" in first
    assert "=== web: 4 of 40 rejected documents ===" in first
    assert main([*args, "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert main([*args, "--seed", "4"]) == 0
    assert capsys.readouterr().out != first
    assert main([*args, "--reason", "excluded_keyword"]) == 0
    only = capsys.readouterr().out
    assert "4 of 20 rejected as excluded_keyword documents" in only
    assert only.count("reason: excluded_keyword") == 4 and "too_short" not in only
    assert "kept documents" not in only
    assert main(["nope", "--cleaned-folder", str(tmp_path / "cleaned")]) == 1
    assert "no cleaned output for dataset 'nope'" in capsys.readouterr().err
