"""Stage 2 for one dataset: invariants, audit trail, reruns, batches and bad input."""

from __future__ import annotations

import copy
import gzip
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, clean, raw_file
from snakemake.utils import validate

from pretrain_mix.config import DatasetSpec
from pretrain_mix.profiles import clean_settings
from pretrain_mix.raw_reader import RawInputError

PROSE = "The garden is quiet in the early morning and the roses need water. "


# The engine's tests use the original script's rules, whose outcome is easy to see by eye;
# the quality filters have tests of their own (test_quality.py).
ORIGINAL_RULES = ["length", "word_count", "exclude_keywords", "junk_patterns", "relevance"]


def settings_for(profile: str = "original", **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "datasets": [{"name": "json", "data_files": "x", "weight": 1}],
        "filtering": {"min_length": 30, "exclude_keywords": ["casino"]},
        "profiles": {"original": {"filters": ORIGINAL_RULES}},
    }
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    validate(config, str(REPO / "config" / "schema.yaml"))
    return clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile=profile))


MIXED = [
    PROSE,  # 0 kept
    "too short",  # 1 too_short
    PROSE + "Visit our casino!",  # 2 excluded_keyword
    PROSE,  # 3 exact_duplicate of 0
    "<p>" + PROSE + "</p>",  # 4 duplicate of 0 once the tags are gone
    "   ",  # 5 empty_after_cleaning
    PROSE + "Another day.",  # 6 kept
]


def test_every_raw_document_is_kept_or_rejected_with_a_reason(tmp_path: Path) -> None:
    kept, rejected, stats = clean(
        tmp_path, raw_file(tmp_path / "raw.jsonl.gz", MIXED), settings_for()
    )
    assert len(kept) + len(rejected) == len(MIXED) == stats["documents_in"]
    assert [r["metadata"]["original_index"] for r in kept] == [0, 60]
    assert [
        (r["metadata"]["original_index"], r["metadata"]["filter_reason"]) for r in rejected
    ] == [
        (10, "too_short"),
        (20, "excluded_keyword"),
        (30, "exact_duplicate"),
        (40, "exact_duplicate"),
        (50, "empty_after_cleaning"),
    ]
    assert [r["metadata"]["duplicate_of"] for r in rejected] == [None, None, 0, 0, None]
    assert stats["rejected_by_reason"] == {
        "bad_record": 0,
        "empty_after_cleaning": 1,
        "too_short": 1,
        "too_long": 0,
        "too_few_words": 0,
        "too_many_words": 0,
        "excluded_keyword": 1,
        "junk_pattern": 0,
        "low_relevance": 0,
        "exact_duplicate": 2,
    }
    assert [f["removed"] for f in stats["filters"]] == [1, 0, 1, 0, 0]


def test_rejected_records_keep_the_original_text_and_metadata(tmp_path: Path) -> None:
    _, rejected, _ = clean(tmp_path, raw_file(tmp_path / "raw.jsonl.gz", MIXED), settings_for())
    html_copy = next(r for r in rejected if r["metadata"]["original_index"] == 40)
    assert html_copy == {
        "text": "<p>" + PROSE + "</p>",
        "metadata": {
            "source": "test",
            "original_index": 40,
            "filter_reason": "exact_duplicate",
            "duplicate_of": 0,
        },
    }


def test_kept_records_have_the_raw_shape_with_cleaned_text(tmp_path: Path) -> None:
    kept, _, _ = clean(tmp_path, raw_file(tmp_path / "raw.jsonl.gz", MIXED), settings_for())
    assert kept[0] == {"text": PROSE.strip(), "metadata": {"source": "test", "original_index": 0}}


def test_first_failing_filter_in_profile_order_names_the_reason(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", ["casino"])
    first_length = settings_for(profiles={"p": {"filters": ["length", "exclude_keywords"]}})
    first_keywords = settings_for(profiles={"p": {"filters": ["exclude_keywords", "length"]}})
    first_length["filters"], first_keywords["filters"] = (
        ["length", "exclude_keywords"],
        ["exclude_keywords", "length"],
    )
    assert clean(tmp_path, raw, first_length, "a")[1][0]["metadata"]["filter_reason"] == "too_short"
    assert (
        clean(tmp_path, raw, first_keywords, "b")[1][0]["metadata"]["filter_reason"]
        == "excluded_keyword"
    )


def test_same_input_and_settings_give_byte_identical_outputs(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", MIXED * 3)
    for name in ("one", "two"):
        clean(tmp_path, raw, settings_for(), name)
    for output in ("cleaned.jsonl.gz", "rejected.jsonl.gz"):
        assert (tmp_path / "one" / output).read_bytes() == (tmp_path / "two" / output).read_bytes()


def test_batches_smaller_than_the_input_give_the_same_result(tmp_path: Path) -> None:
    """More documents than one batch holds: dedup and order still span the whole file."""
    texts = [f"{PROSE} Document {i % 37}." for i in range(200)] + ["short"] * 5
    raw = raw_file(tmp_path / "raw.jsonl.gz", texts)
    small = settings_for(cleaning={"batch_size": 7})
    large = settings_for(cleaning={"batch_size": 10_000})
    kept_small, rejected_small, stats = clean(tmp_path, raw, small, "small")
    assert (kept_small, rejected_small) == clean(tmp_path, raw, large, "large")[:2]
    assert len(kept_small) == 37 and stats["rejected_by_reason"]["exact_duplicate"] == 163
    for record in rejected_small:
        if record["metadata"]["filter_reason"] == "exact_duplicate":
            assert record["metadata"]["duplicate_of"] == (
                record["metadata"]["original_index"] % 370
            )


def test_vietnamese_in_both_normal_forms_is_one_document(tmp_path: Path) -> None:
    composed = "Hà Nội là thủ đô của Việt Nam và có lịch sử hơn một nghìn năm."
    raw = raw_file(tmp_path / "raw.jsonl.gz", [unicodedata.normalize("NFD", composed), composed])
    kept, rejected, _ = clean(tmp_path, raw, settings_for())
    assert [r["text"] for r in kept] == [composed]
    assert rejected[0]["metadata"]["filter_reason"] == "exact_duplicate"


def test_code_profile_keeps_indentation_and_skips_prose_filters(tmp_path: Path) -> None:
    code = "def payout(bets):  # casino\n    total = 0\n    for bet in bets:\n        total += 1\n"
    raw = raw_file(tmp_path / "raw.jsonl.gz", [code])
    kept, _, _ = clean(tmp_path, raw, settings_for("code"), "code")
    assert [r["text"] for r in kept] == [code.rstrip("\n")]
    _, rejected, _ = clean(tmp_path, raw, settings_for(), "prose")
    assert rejected[0]["metadata"]["filter_reason"] == "excluded_keyword"


def test_stats_count_characters_per_normaliser(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", ["<b>" + PROSE + "</b>"])
    _, _, stats = clean(tmp_path, raw, settings_for())
    html = next(n for n in stats["normalisers"] if n["name"] == "html")
    assert (html["chars_before"], html["chars_after"], html["documents_changed"]) == (
        len(PROSE) + 7,
        len(PROSE),
        1,
    )
    assert [n["name"] for n in stats["normalisers"]] == [
        "html",
        "unicode",
        "control_chars",
        "whitespace",
    ]
    assert stats["characters"] == {"raw": len(PROSE) + 7, "kept": len(PROSE) - 1}


# --- bad input --------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"text": PROSE, "metadata": {"original_index": 0}})


def test_raw_file_that_is_not_gzip_fails_naming_the_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw_data.jsonl.gz"
    raw.write_text(GOOD + "\n")
    with pytest.raises(RawInputError, match=r"raw_data.jsonl.gz: not a gzip file; delete it"):
        clean(tmp_path, raw, settings_for())
    assert not (tmp_path / "out" / "cleaned.jsonl.gz").exists()


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [("{not json", "not JSON"), ('{"metadata": {}}', "no string 'text' field")],
)
def test_bad_line_fails_naming_file_and_line(tmp_path: Path, bad_line: str, error: str) -> None:
    raw = write_lines(tmp_path / "raw.jsonl.gz", [GOOD, GOOD, bad_line, GOOD])
    with pytest.raises(RawInputError) as caught:
        clean(tmp_path, raw, settings_for())
    message = str(caught.value)
    assert f"raw.jsonl.gz, line 3: {error}" in message and "on_bad_record: skip" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_skipped_bad_lines_are_rejected_in_place_and_counted(tmp_path: Path) -> None:
    other = json.dumps({"text": PROSE + "More.", "metadata": {"original_index": 9}})
    raw = write_lines(tmp_path / "raw.jsonl.gz", [GOOD, "{oops", other, '{"text": 5}'])
    kept, rejected, stats = clean(
        tmp_path, raw, settings_for(cleaning={"on_bad_record": "skip", "batch_size": 2})
    )
    assert len(kept) == 2 and len(rejected) == 2 and stats["documents_in"] == 4
    assert [r["metadata"]["line_number"] for r in rejected] == [2, 4]
    assert (
        rejected[0]["text"] == "{oops" and rejected[0]["metadata"]["filter_reason"] == "bad_record"
    )
    assert stats["rejected_by_reason"]["bad_record"] == 2


def test_truncated_gzip_fails_with_one_line(tmp_path: Path) -> None:
    raw = raw_file(tmp_path / "raw.jsonl.gz", [PROSE + str(i) for i in range(2000)])
    raw.write_bytes(raw.read_bytes()[:-200])
    with pytest.raises(RawInputError, match="the file is damaged: delete it and re-run stage 1"):
        clean(tmp_path, raw, settings_for())


def test_demo_profiles_resolve_only_the_settings_their_filters_use() -> None:
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    validate(config, str(REPO / "config" / "schema.yaml"))
    code = clean_settings(config, DatasetSpec(id="c", name="json", weight=1, profile="code"))
    web = clean_settings(config, DatasetSpec(id="w", name="json", weight=1, profile="web"))
    assert set(code["thresholds"]) == {"min_length", "max_length", "code_quality"}
    assert code["thresholds"]["min_length"] == 50
    assert code["thresholds"]["code_quality"]["max_line_length"] == 1000
    assert code["normalise"]["html"] is False and web["normalise"]["html"] is True
    assert "exclude_keywords" in web["thresholds"] and "gopher_quality" in web["thresholds"]


def test_dedup_can_fold_case_and_whitespace(tmp_path: Path) -> None:
    texts = [PROSE + "End.", PROSE.upper() + "END.", PROSE.replace(" ", "  ") + "End."]
    raw = raw_file(tmp_path / "raw.jsonl.gz", texts)
    plain = settings_for()
    folded = settings_for(filtering={"deduplication": {"lowercase": True, "fold_whitespace": True}})
    assert len(clean(tmp_path, raw, plain, "plain")[0]) == 3
    kept, rejected, _ = clean(tmp_path, raw, folded, "folded")
    assert len(kept) == 1 and [r["metadata"]["duplicate_of"] for r in rejected] == [0, 0]
