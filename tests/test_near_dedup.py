"""Near-duplicate removal in stage 2: within a dataset (clean job) and across the mixture."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import REPO, Workflow, clean, raw_file, read_jsonl_gz, write_jsonl
from snakemake.utils import validate

from pretrain_mix.clean import run_clean_finish_job, run_clean_job, run_clean_stage_job
from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import ConfigError, PretrainMixError
from pretrain_mix.minhash import MinHashSettings, band_keys, exact_jaccard, signatures
from pretrain_mix.near_dedup import mixture_settings, run_mixture_job
from pretrain_mix.profiles import clean_settings
from pretrain_mix.raw_reader import RawInputError

SCHEMA = str(REPO / "config" / "schema.yaml")
# Only rules whose outcome is plain to see; the quality filters have tests of their own.
PLAIN = {"filters": ["length", "exclude_keywords"]}
BOILERPLATE = (
    "Subscribe to our newsletter for the latest news and exclusive offers every week\n"
    "Copyright all rights reserved privacy policy terms of use contact us about us\n"
    "Share this article on social media and leave a comment below to join the talk"
)


def words(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choices(letters, k=rng.randint(3, 8))) for _ in range(n))


def change_words(text: str, positions: list[int]) -> str:
    split = text.split(" ")
    for p in positions:
        split[p] = "changed"
    return " ".join(split)


def config_for(dedup: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "datasets": [{"name": "json", "data_files": "x", "weight": 1}],
        "filtering": {
            "min_length": 30,
            "exclude_keywords": ["casino"],
            "deduplication": {"near_duplicates": True, "similarity_threshold": 0.8} | (dedup or {}),
        },
        "profiles": {"plain": PLAIN},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    validate(config, SCHEMA)
    return config


def settings_for(dedup: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    config = config_for(dedup, **sections)
    return clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile="plain"))


def verdicts(rejected: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["metadata"]["original_index"],
            r["metadata"]["filter_reason"],
            r["metadata"]["duplicate_of"],
            r["metadata"]["similarity"],
        )
        for r in rejected
    ]


BASE = [words(seed) for seed in range(5)]
MIXED = [
    *BASE,  # 0..40 kept
    BASE[0],  # 50: exact copy
    change_words(BASE[1], [20, 150, 280]),  # 60: three words changed
    BASE[2] + "\n" + BOILERPLATE,  # 70: boilerplate appended
    BASE[3].upper(),  # 80: same words, shouting: exact dedup keeps case, near-dedup folds it
    "too short",  # 90
]


def test_exact_and_near_duplicates_are_rejected_naming_the_kept_copy(tmp_path: Path) -> None:
    kept, rejected, stats = clean(
        tmp_path, raw_file(tmp_path / "raw.jsonl.gz", MIXED), settings_for()
    )
    engine = MinHashSettings.from_config({"similarity_threshold": 0.8})
    edited, boilerplate = exact_jaccard([MIXED[6], MIXED[7]], [BASE[1], BASE[2]], engine)
    assert [r["metadata"]["original_index"] for r in kept] == [0, 10, 20, 30, 40]
    assert verdicts(rejected) == [
        (50, "exact_duplicate", 0, None),
        (60, "near_duplicate", 10, round(float(edited), 4)),
        (70, "near_duplicate", 20, round(float(boilerplate), 4)),
        (80, "near_duplicate", 30, 1.0),
        (90, "too_short", None, None),
    ]
    assert 0.8 <= edited < 1 and 0.8 <= boilerplate < 1
    assert rejected[3]["text"] == BASE[3].upper()  # the original record, not the folded text
    assert list(stats["rejected_by_reason"])[-2:] == ["exact_duplicate", "near_duplicate"]
    assert stats["rejected_by_reason"]["near_duplicate"] == 3
    near = stats["near_dedup"]
    assert (near["documents"], near["removed"], near["clusters"]) == (8, 3, 3)
    assert near["cluster_sizes"] == {"2": 3} and near["verified"] is True
    assert set(near["seconds"]) == {"signatures", "resolve", "verify"}


def test_documents_sharing_only_boilerplate_lines_are_kept(tmp_path: Path) -> None:
    texts = [words(seed, 60) + "\n" + BOILERPLATE for seed in range(30)]
    kept, rejected, stats = clean(
        tmp_path, raw_file(tmp_path / "raw.jsonl.gz", texts), settings_for()
    )
    assert len(kept) == 30 and rejected == []
    assert stats["near_dedup"]["removed"] == 0
    assert stats["near_dedup"]["pairs_checked"] == stats["near_dedup"]["pairs_rejected"]


def test_near_dedup_is_off_unless_asked_and_the_original_key_alone_changes_nothing(
    tmp_path: Path,
) -> None:
    original = settings_for({"near_duplicates": False, "similarity_threshold": 0.85})
    assert original["near_dedup"] is None
    assert settings_for({"enabled": False})["near_dedup"] is None  # no dedup at all
    kept, rejected, stats = clean(tmp_path, raw_file(tmp_path / "raw.jsonl.gz", MIXED), original)
    assert len(kept) == 8 and "near_duplicate" not in stats["rejected_by_reason"]
    assert "near_dedup" not in stats and "similarity" not in rejected[0]["metadata"]


def many_duplicates() -> list[str]:
    """40 documents, each with an exact copy, an edited copy and a boilerplate copy, shuffled."""
    base = [words(100 + seed) for seed in range(40)]
    texts = base + base[:10] + [change_words(t, [5, 60]) for t in base[10:30]]
    texts += [t + "\n" + BOILERPLATE for t in base[25:40]]
    random.Random(3).shuffle(texts)
    return texts


def test_outputs_do_not_depend_on_batch_size_and_account_for_every_line(tmp_path: Path) -> None:
    texts = many_duplicates()
    bad = {7: "{not json", 41: '{"text": 5}'}
    raw = raw_file(tmp_path / "raw.jsonl.gz", texts, bad)
    results = {}
    for batch_size in (7, 10_000):
        settings = settings_for(cleaning={"batch_size": batch_size, "on_bad_record": "skip"})
        kept, rejected, stats = clean(tmp_path, raw, settings, f"batch_{batch_size}")
        assert len(kept) + len(rejected) == len(texts) == stats["documents_in"]
        assert stats["kept"] + stats["rejected"] == len(texts)
        # Rejected records stay in input order, bad lines and near duplicates included.
        lines = [
            r["metadata"].get("line_number") or r["metadata"]["original_index"] // 10 + 1
            for r in rejected
        ]
        assert lines == sorted(lines)
        near = {k: v for k, v in stats["near_dedup"].items() if k not in ("seconds", "index_bytes")}
        results[batch_size] = (kept, rejected, near)
    assert results[7] == results[10_000]
    kept, rejected, near = results[7]
    reasons = [r["metadata"]["filter_reason"] for r in rejected]
    assert reasons.count("bad_record") == 2 and reasons.count("near_duplicate") >= 30
    assert near["removed"] == reasons.count("near_duplicate")
    for name in ("cleaned.jsonl.gz", "rejected.jsonl.gz"):
        small, large = (tmp_path / f"batch_{n}" / name for n in (7, 10_000))
        assert small.read_bytes() == large.read_bytes()


def counting_text_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the stored batches read for their texts (verification reads two columns)."""
    reads: list[str] = []
    read_ipc = pl.read_ipc

    def counting(source: Any, *args: Any, **kwargs: Any) -> pl.DataFrame:
        if kwargs.get("columns") is not None:
            reads.append(str(source))
        return read_ipc(source, *args, **kwargs)

    monkeypatch.setattr(pl, "read_ipc", counting)
    return reads


def test_verification_reads_each_stored_batch_at_most_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 documents and an edited copy of each, shuffled: candidate pairs join every batch with
    # many others, and there are more pairs than fit in one batch.
    base = [words(300 + seed) for seed in range(40)]
    texts = base + [change_words(text, [5, 150]) for text in base]
    random.Random(4).shuffle(texts)
    raw = raw_file(tmp_path / "raw.jsonl.gz", texts)
    reads = counting_text_reads(monkeypatch)
    kept, rejected, stats = clean(tmp_path, raw, settings_for(cleaning={"batch_size": 8}))
    assert (len(kept), stats["near_dedup"]["removed"], stats["near_dedup"]["pairs_checked"]) == (
        40,
        40,
        40,
    )
    assert len(reads) <= 10 and len(set(reads)) == len(reads)  # 10 batches of 8

    # Mixture scope: each dataset's batches at most once too.
    config = config_for({"scope": "mixture"}, cleaning={"batch_size": 8})
    settings = clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile="plain"))
    stores = []
    for dataset_id, rows in (("a", texts[:40]), ("b", texts[40:])):
        stores.append(tmp_path / dataset_id / "pre")
        run_clean_stage_job(
            raw_file(tmp_path / f"{dataset_id}.jsonl.gz", rows), settings, stores[-1]
        )
    mixture = mixture_settings(config, {"a": settings, "b": settings})
    reads.clear()
    stats = run_mixture_job(stores, mixture, tmp_path / "d.parquet", tmp_path / "m.json")
    assert stats["removed"] == 40 and stats["verified"] is True
    assert 0 < len(reads) <= 10 and len(set(reads)) == len(reads)  # 2 x 5 batches of 8


def test_reruns_give_byte_identical_outputs_and_leave_no_temporary_files(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", many_duplicates())
    for name in ("one", "two"):
        clean(tmp_path, raw, settings_for(cleaning={"batch_size": 16}), name)
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [
            "cleaned.jsonl.gz",
            "rejected.jsonl.gz",
            "stats.json",
        ]
    for output in ("cleaned.jsonl.gz", "rejected.jsonl.gz"):
        assert (tmp_path / "one" / output).read_bytes() == (tmp_path / "two" / output).read_bytes()


def test_a_failure_after_the_first_pass_began_leaves_nothing_behind(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", many_duplicates(), {60: "{broken"})
    with pytest.raises(RawInputError, match="line 61: not JSON"):
        clean(tmp_path, raw, settings_for(cleaning={"batch_size": 16}))
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_mixture_settings_give_clean_jobs_only_what_signatures_depend_on() -> None:
    mixture = {"scope": "mixture", "priority": ["b"]}
    low = config_for(mixture)
    high = config_for(mixture | {"similarity_threshold": 0.9, "survivor": "longest"})
    spec = DatasetSpec(id="d", name="json", weight=1, profile="plain")
    assert clean_settings(low, spec)["near_dedup"] == {
        "scope": "mixture",
        "ngram": 5,
        "num_perm": 112,
        "fold_diacritics": True,
        "seed": 1,
    }
    assert clean_settings(low, spec) == clean_settings(high, spec)
    both = {"a": clean_settings(low, spec), "b": clean_settings(low, spec)}
    settings = mixture_settings(low, both)
    assert settings["datasets"] == ["a", "b"] and settings["priority"] == ["b", "a"]
    assert (settings["bands"], settings["rows"]) == (12, 9)
    dataset_scope = config_for()
    assert mixture_settings(dataset_scope, {"a": clean_settings(dataset_scope, spec)}) is None


def test_mixture_jobs_without_verification_remove_the_copy_of_the_lower_priority_dataset(
    tmp_path: Path,
) -> None:
    config = config_for({"scope": "mixture", "verify": False, "priority": ["b"]})
    settings = clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile="plain"))
    shared = words(900)
    texts = {"a": [words(901), shared, "too short"], "b": [shared, words(902)]}
    for dataset_id, rows in texts.items():
        raw = raw_file(tmp_path / f"{dataset_id}.jsonl.gz", rows)
        run_clean_stage_job(raw, settings, tmp_path / dataset_id / "pre")
    with pytest.raises(PretrainMixError, match="scope 'mixture' runs as rules clean_stage"):
        run_clean_job(raw, settings, tmp_path / "c", tmp_path / "r", tmp_path / "s")
    mixture = mixture_settings(config, {"a": settings, "b": settings})
    decisions, summary = tmp_path / "decisions.parquet", tmp_path / "mixture.json"
    stores = [tmp_path / "a" / "pre", tmp_path / "b" / "pre"]
    stats = run_mixture_job(stores, mixture, decisions, summary)
    assert stats["removed_for"] == {"a": {"b": 1}, "b": {}} and stats["verified"] is False
    outputs = {}
    for dataset_id in texts:
        out = tmp_path / dataset_id
        files = [out / "cleaned.jsonl.gz", out / "rejected.jsonl.gz", out / "stats.json"]
        run_clean_finish_job(out / "pre", decisions, summary, dataset_id, *files)
        outputs[dataset_id] = [read_jsonl_gz(files[0]), read_jsonl_gz(files[1])]
        outputs[dataset_id].append(json.loads(files[2].read_text()))
    kept, rejected, stats = outputs["a"]
    assert [r["metadata"]["original_index"] for r in kept] == [0]
    assert [
        (r["metadata"]["original_index"], r["metadata"]["filter_reason"]) for r in rejected
    ] == [(10, "near_duplicate"), (20, "too_short")]
    assert rejected[0]["metadata"] | {"source": None} == {
        "source": None,
        "original_index": 10,
        "filter_reason": "near_duplicate",
        "duplicate_of": 0,
        "similarity": 1.0,  # estimated from the signatures: all equal
        "duplicate_of_dataset": "b",
    }
    assert stats["documents_in"] == 3 and stats["kept"] + stats["rejected"] == 3
    assert stats["near_dedup"]["duplicate_of_datasets"] == {"b": 1}
    assert [len(outputs["b"][0]), len(outputs["b"][1])] == [2, 0]


def test_without_verification_similarity_is_estimated_from_full_signatures(tmp_path: Path) -> None:
    base = words(950)
    edited = change_words(base, [40, 120, 200, 260])
    engine = MinHashSettings.from_config({"similarity_threshold": 0.8, "verify": False})
    sigs = signatures(pl.Series([base, edited]), engine)
    expected = round(float((sigs[0] == sigs[1]).mean()), 4)
    keys = band_keys(sigs, engine)
    from_bands = float((keys[0] == keys[1]).mean() ** (1 / engine.rows))
    assert expected != round(from_bands, 4)  # the coarse estimate this replaces

    raw = raw_file(tmp_path / "raw.jsonl.gz", [base, words(951), edited])
    _, rejected, stats = clean(tmp_path, raw, settings_for({"verify": False}))
    assert verdicts(rejected) == [(20, "near_duplicate", 0, expected)]
    assert stats["near_dedup"]["verified"] is False

    config = config_for({"scope": "mixture", "verify": False, "priority": ["b"]})
    settings = clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile="plain"))
    stores = []
    for dataset_id, rows in (("a", [edited]), ("b", [words(952), base])):
        stores.append(tmp_path / dataset_id / "pre")
        run_clean_stage_job(
            raw_file(tmp_path / f"{dataset_id}.jsonl.gz", rows), settings, stores[-1]
        )
    mixture = mixture_settings(config, {"a": settings, "b": settings})
    decisions = tmp_path / "decisions.parquet"
    run_mixture_job(stores, mixture, decisions, tmp_path / "mixture.json")
    assert pl.read_parquet(decisions).rows() == [("a", 1, 10, "b", expected)]  # raw line 1


@pytest.mark.parametrize(
    ("dedup", "profiles", "message"),
    [
        ({"scope": "mixture", "priority": ["nope"]}, {}, "priority[0]: unknown dataset id 'nope'"),
        ({"scope": "mixture", "priority": ["a", "a"]}, {}, "priority[1]: 'a' is listed twice"),
        (
            {},
            {"p": {"filters": ["length"], "filtering": {"deduplication": {"scope": "mixture"}}}},
            "profiles.p.filtering.deduplication: scope can only be set in filtering.deduplication",
        ),
        (
            {"scope": "mixture"},
            {"p": {"filters": ["length"], "filtering": {"deduplication": {"ngram": 3}}}},
            "profiles.p.filtering.deduplication: ngram can only be set",
        ),
    ],
)
def test_mixture_setting_errors_name_the_key(dedup, profiles, message) -> None:
    config = config_for(dedup, profiles=profiles)
    settings = {"a": {"near_dedup": {"scope": "mixture"}}}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        mixture_settings(config, settings)


def test_bad_near_dedup_setting_is_a_one_line_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"filtering.deduplication.rows is missing"):
        settings_for({"bands": 4})


# --- the workflow ----------------------------------------------------------------------------


def dataset_entry(folder: Path, dataset_id: str, texts: list[str]) -> dict[str, Any]:
    path = write_jsonl(folder / "data" / f"{dataset_id}.jsonl", [{"text": t} for t in texts])
    return {
        "name": "json",
        "id": dataset_id,
        "data_files": str(path),
        "weight": len(texts),
        "profile": "plain",
    }


def workflow_config(workflow: Workflow, dedup: dict[str, Any]) -> dict[str, Any]:
    shared = words(500)
    web = [words(600 + i, 80) for i in range(6)] + [change_words(shared, [10, 90])]
    news = [shared] + [words(700 + i, 80) for i in range(5)] + [change_words(words(700, 80), [40])]
    return {
        "target_samples": len(web) + len(news),  # every row of both
        "seed": 1,
        "datasets": [
            dataset_entry(workflow.folder, "web", web),
            dataset_entry(workflow.folder, "news", news),
        ],
        "profiles": {"plain": PLAIN},
        "filtering": {
            "deduplication": {"near_duplicates": True, "similarity_threshold": 0.8} | dedup
        },
    }


def dry_run_jobs(workflow: Workflow, target: str = "cleaned") -> dict[str, set[str]]:
    result = workflow.run("--dry-run", target)
    output = result.stdout + result.stderr
    rules = ("sample", "clean", "clean_stage", "near_dedup_mixture", "clean_finish")
    found = {rule: workflow.jobs(output, rule) for rule in rules}
    mixture_job = any(
        line.strip() in ("rule near_dedup_mixture:", "localrule near_dedup_mixture:")
        for line in output.splitlines()
    )
    found["near_dedup_mixture"] = {"x"} if mixture_job else set()
    return found


def test_mixture_scope_removes_a_shared_page_from_the_lower_priority_dataset(
    workflow: Workflow,
) -> None:
    config = workflow_config(workflow, {"scope": "mixture", "priority": ["news"]})
    workflow.write_config(config)
    workflow.run("--cores", "2", "cleaned")
    folder = workflow.folder / "cleaned"
    web_rejected = read_jsonl_gz(folder / "web" / "rejected_data.jsonl.gz")
    news_rejected = read_jsonl_gz(folder / "news" / "rejected_data.jsonl.gz")
    # web's edited copy of the page news has goes; news keeps that page, and loses only the
    # edited copy of its own second document.
    assert [
        (r["metadata"]["original_index"], r["metadata"]["filter_reason"]) for r in web_rejected
    ] == [(6, "near_duplicate")]
    assert web_rejected[0]["metadata"]["duplicate_of"] == 0
    assert web_rejected[0]["metadata"]["duplicate_of_dataset"] == "news"
    assert web_rejected[0]["metadata"]["similarity"] < 1
    assert [
        (
            r["metadata"]["original_index"],
            r["metadata"]["filter_reason"],
            r["metadata"]["duplicate_of_dataset"],
        )
        for r in news_rejected
    ] == [(6, "near_duplicate", "news")]
    assert news_rejected[0]["metadata"]["duplicate_of"] == 1
    for dataset_id, rows in (("web", 7), ("news", 7)):
        kept = read_jsonl_gz(folder / dataset_id / "cleaned_data.jsonl.gz")
        stats = json.loads((folder / dataset_id / "stats.json").read_text())
        assert len(kept) + stats["rejected"] == rows == stats["documents_in"]
        assert stats["near_dedup"]["scope"] == "mixture"
    mixture = json.loads((folder / "_near_dedup" / "stats.json").read_text())
    assert mixture["removed_for"] == {"web": {"news": 1}, "news": {"news": 1}}

    # Which copy survives is a mixture decision: no filter or signature is recomputed.
    config["filtering"]["deduplication"]["priority"] = ["web"]
    workflow.write_config(config)
    assert dry_run_jobs(workflow) == {
        "sample": set(),
        "clean": set(),
        "clean_stage": set(),
        "near_dedup_mixture": {"x"},
        "clean_finish": {"web", "news"},
    }
    # A filter: stage 2 of the datasets using it, then the mixture step and every final.
    config["filtering"]["min_length"] = 50
    workflow.write_config(config)
    jobs = dry_run_jobs(workflow)
    assert jobs["sample"] == jobs["clean"] == set() and jobs["near_dedup_mixture"] == {"x"}
    assert jobs["clean_stage"] == jobs["clean_finish"] == {"web", "news"}
    # Shingles change the signatures: every dataset's stage 2 again, never stage 1.
    config["filtering"]["deduplication"]["ngram"] = 4
    workflow.write_config(config)
    jobs = dry_run_jobs(workflow)
    assert jobs["sample"] == set() and jobs["clean_stage"] == {"web", "news"}
    assert jobs["clean_finish"] == {"web", "news"}


def test_changing_a_near_dedup_setting_reruns_only_the_clean_jobs(workflow: Workflow) -> None:
    config = workflow_config(workflow, {})
    workflow.write_config(config)
    workflow.run("--cores", "2", "cleaned")
    web_rejected = read_jsonl_gz(workflow.folder / "cleaned" / "web" / "rejected_data.jsonl.gz")
    assert web_rejected == []  # dataset scope: the page shared with news is not compared
    assert dry_run_jobs(workflow)["clean"] == set()
    config["filtering"]["deduplication"]["similarity_threshold"] = 0.9
    workflow.write_config(config)
    jobs = dry_run_jobs(workflow)
    assert jobs["sample"] == set() and jobs["clean"] == {"web", "news"}
    assert jobs["clean_stage"] == jobs["clean_finish"] == jobs["near_dedup_mixture"] == set()
