"""Stage 1 sampling on local data through the same datasets.load_dataset(streaming=True) call."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import numbered_docs, read_jsonl_gz, write_jsonl

from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import DatasetOpenError, SamplingError
from pretrain_mix.io import atomic_path, gzip_writer
from pretrain_mix.sampling import (
    BottomK,
    SamplingOptions,
    resolve_scan_limit,
    row_keys,
    run_sample_job,
    sample_dataset,
    shard_order,
    stream_key,
)
from pretrain_mix.sources import RetryPolicy, open_stream


def chi_square_critical(df: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (z=3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def local_dataset(tmp_path: Path, shards: list[list[dict[str, Any]]], **fields: Any) -> DatasetSpec:
    files = [
        str(write_jsonl(tmp_path / "data" / f"part-{i}.jsonl", rows))
        for i, rows in enumerate(shards)
    ]
    return DatasetSpec(
        id=fields.pop("id", "local"), name="json", weight=1.0, data_files=files, **fields
    )


def sample(spec: DatasetSpec, count: int, seed: int = 42, **options: Any):
    """(records as dicts, stats) of sampling a local dataset."""
    records, stats = sample_dataset(
        open_stream(spec), spec, count, seed, SamplingOptions(**options)
    )
    return records.to_dicts(), stats


# --- the random keys -------------------------------------------------------------------------


def test_keys_depend_only_on_seed_dataset_and_position() -> None:
    rows = np.arange(1000)
    same = row_keys(stream_key(42, "a"), 0, rows)
    assert np.array_equal(same, row_keys(stream_key(42, "a"), 0, rows))
    assert not np.array_equal(same, row_keys(stream_key(43, "a"), 0, rows))
    assert not np.array_equal(same, row_keys(stream_key(42, "b"), 0, rows))
    assert not np.array_equal(same, row_keys(stream_key(42, "a"), 1, rows))
    assert len(np.unique(same)) == len(rows)


def test_every_position_is_drawn_equally_often_across_seeds() -> None:
    """Chi-square on how often each of 100 positions lands in a bottom-10 sample (2000 seeds)."""
    n, k, seeds = 100, 10, 2000
    hits = np.zeros(n)
    for seed in range(seeds):
        keys = row_keys(stream_key(seed, "uniformity"), 0, np.arange(n))
        hits[np.argsort(keys)[:k]] += 1
    expected = seeds * k / n
    statistic = float(((hits - expected) ** 2 / expected).sum())
    assert statistic < chi_square_critical(n - 1), statistic


def test_sampled_positions_spread_evenly_over_a_long_stream() -> None:
    """One seed, 2,000 of 1,000,000 rows: deciles of the positions are even (chi-square)."""
    keys = row_keys(stream_key(7, "long"), 0, np.arange(1_000_000))
    positions = np.argsort(keys)[:2000]
    per_decile = np.bincount(positions // 100_000, minlength=10)
    statistic = float(((per_decile - 200) ** 2 / 200).sum())
    assert statistic < chi_square_critical(9), per_decile


# --- BottomK ---------------------------------------------------------------------------------


def test_bottom_k_keeps_the_smallest_keys_and_stays_below_twice_k() -> None:
    rng = np.random.default_rng(0)
    sampler = BottomK(50)
    all_keys = []
    for batch in range(40):
        keys = rng.integers(0, 2**63, size=100, dtype=np.uint64)
        enters = keys < sampler.threshold
        all_keys.append(keys)
        rows = np.arange(batch * 100, batch * 100 + 100)
        table = pa.table({"row": rows})
        sampler.add(keys[enters], 0, rows[enters], table, np.flatnonzero(enters))
        assert len(sampler) < 2 * 50 + 100
    expected = np.sort(np.argsort(np.concatenate(all_keys))[:50])
    shards, rows, payload = sampler.result()
    assert rows.tolist() == payload["row"].to_pylist() == expected.tolist()


# --- sampling a real (local) stream ----------------------------------------------------------


def test_sample_is_exactly_the_rows_with_the_smallest_keys(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("a", 300), numbered_docs("b", 200)])
    records, stats = sample(spec, 40, batch_size=64)
    key = stream_key(42, spec.id)
    keys = np.concatenate([row_keys(key, 0, np.arange(300)), row_keys(key, 1, np.arange(200))])
    expected = sorted(np.argsort(keys)[:40].tolist())
    assert [r["metadata"]["original_index"] for r in records] == expected
    assert stats["sampled"] == stats["requested"] == 40 and stats["rows_scanned"] == 500


def test_original_index_points_at_the_sampled_row(tmp_path: Path) -> None:
    shards = [numbered_docs("first", 120), numbered_docs("second", 80), numbered_docs("third", 50)]
    spec = local_dataset(tmp_path, shards)
    records, _ = sample(spec, 60, batch_size=32)
    source = [row["text"] for rows in shards for row in rows]
    for record in records:
        meta = record["metadata"]
        assert source[meta["original_index"]] == record["text"]
        assert shards[meta["shard"]][meta["row_in_shard"]]["text"] == record["text"]


def test_smaller_sample_is_nested_in_larger_one(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("n", 1000)])
    small, _ = sample(spec, 30)
    large, _ = sample(spec, 300)
    small_rows = {r["metadata"]["original_index"] for r in small}
    large_rows = {r["metadata"]["original_index"] for r in large}
    assert small_rows < large_rows


def test_result_does_not_depend_on_batch_size(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("x", 500), numbered_docs("y", 500)])
    assert sample(spec, 77, batch_size=7)[0] == sample(spec, 77, batch_size=10_000)[0]


def test_shuffled_shards_draw_the_same_rows_when_the_whole_split_is_read(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs(f"s{i}", 40) for i in range(6)])
    natural, _ = sample(spec, 25)
    shuffled, stats = sample(spec, 25, shuffle_shards=True)
    assert shuffled == natural  # keys belong to rows, not to the reading order
    assert stats["shards"] == {"total": 6, "read_completely": 6, "order": "shuffled"}


def test_scan_limit_stops_reading_and_is_reported(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("p", 100), numbered_docs("q", 100)])
    records, stats = sample(spec, 10, max_rows_scanned=150, batch_size=40)
    assert stats["rows_scanned"] == 150 and stats["stopped_at_scan_limit"] is True
    assert all(r["metadata"]["original_index"] < 150 for r in records)
    assert stats["shards"]["read_completely"] == 1


@pytest.mark.parametrize("shards_read", [1, 2, 3])
def test_rows_of_shards_read_out_of_order_keep_shard_and_row_but_no_global_index(
    tmp_path: Path, shards_read: int
) -> None:
    shards = [numbered_docs(f"s{i}", 30) for i in range(4)]
    spec = local_dataset(tmp_path, shards)
    order = shard_order(4, stream_key(42, spec.id), shuffle=True)
    records, stats = sample(
        spec, 20, shuffle_shards=True, max_rows_scanned=30 * shards_read, allow_shortfall=True
    )
    assert stats["shards"]["read_completely"] == shards_read
    read = set(order[:shards_read])
    assert {r["metadata"]["shard"] for r in records} <= read
    for record in records:
        meta = record["metadata"]
        assert shards[meta["shard"]][meta["row_in_shard"]]["text"] == record["text"]
        known = all(earlier in read for earlier in range(meta["shard"]))
        expected = 30 * meta["shard"] + meta["row_in_shard"] if known else None
        assert meta["original_index"] == expected


def test_scan_limit_can_be_a_multiple_of_the_sample_size() -> None:
    assert resolve_scan_limit("10x", 25) == 250
    assert resolve_scan_limit("1.5x", 3) == 5
    assert resolve_scan_limit(1000, 25) == 1000
    assert resolve_scan_limit(None, 25) is None


def test_rows_without_usable_text_are_counted_and_never_written(tmp_path: Path) -> None:
    rows = numbered_docs("ok", 10) + [
        {"n": 100},  # field missing
        {"text": None, "n": 101},
        {"text": "", "n": 102},
        {"text": " \n\t", "n": 103},
    ]
    spec = local_dataset(tmp_path, [rows])
    records, stats = sample(spec, 10)
    assert len(records) == 10 and all(r["text"].startswith("ok") for r in records)
    assert stats["rows_without_text"] == {"missing": 2, "not_string": 0, "empty": 2}
    assert stats["usable_rows_scanned"] == 10


def test_a_number_in_the_text_column_is_not_text(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [[{"body": i} for i in range(5)]], text_field="body")
    with pytest.raises(SamplingError, match="only 0 usable rows"):
        sample(spec, 1)
    _, stats = sample(spec, 1, allow_shortfall=True)
    assert stats["rows_without_text"]["not_string"] == 5 and stats["shortfall"] == 1


def test_text_template_joins_columns_and_skips_incomplete_rows(tmp_path: Path) -> None:
    rows = [
        {"problem": "1+1?", "solution": "2", "meta": {"level": 1}},
        {"problem": "2+2?", "solution": None, "meta": {"level": 2}},
        {"problem": "3+3?", "solution": "6", "meta": {"level": 3}},
    ]
    spec = local_dataset(
        tmp_path,
        [rows],
        text_field=None,
        text_template="Q: {problem}\n\nA: {solution} ({meta.level})",
    )
    records, stats = sample(spec, 2)
    assert [r["text"] for r in records] == ["Q: 1+1?\n\nA: 2 (1)", "Q: 3+3?\n\nA: 6 (3)"]
    assert stats["rows_without_text"]["missing"] == 1


def test_nested_text_field_and_metadata_fields(tmp_path: Path) -> None:
    rows = [{"page": {"html": f"<p>{i}</p>", "url": f"u{i}"}, "lang": "en"} for i in range(5)]
    spec = local_dataset(
        tmp_path, [rows], text_field="page.html", metadata_fields=("page.url", "lang")
    )
    records, _ = sample(spec, 5)
    assert [r["text"] for r in records] == [f"<p>{i}</p>" for i in range(5)]
    assert records[2]["metadata"]["page.url"] == "u2" and records[2]["metadata"]["lang"] == "en"


def test_record_shape_matches_the_design(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("r", 3)], id="shape")
    records, _ = sample(spec, 1)
    assert set(records[0]) == {"text", "metadata"}
    assert records[0]["metadata"] | {"original_index": 0, "shard": 0, "row_in_shard": 0} == {
        "source": "json",
        "config": "default",
        "split": "train",
        "dataset_id": "shape",
        "weight": 1.0,
        "original_index": 0,
        "shard": 0,
        "row_in_shard": 0,
    }


def test_shortfall_fails_with_one_line_naming_the_dataset(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("few", 5)], id="tiny")
    with pytest.raises(SamplingError) as caught:
        sample(spec, 6)
    message = str(caught.value)
    assert "dataset 'tiny'" in message and "planned 6" in message and "\n" not in message


# --- the job: files, reruns, failures --------------------------------------------------------


def run_job(spec: DatasetSpec, folder: Path, count: int, seed: int = 42, **kwargs: Any):
    return run_sample_job(
        dataset=spec.source_params(),
        count=count,
        seed=seed,
        sampling=kwargs.pop("sampling", {}),
        data_path=folder / "raw_data.jsonl.gz",
        stats_path=folder / "sample_stats.json",
        **kwargs,
    )


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("v", 400), numbered_docs("w", 400)])
    for folder in ("one", "two"):
        run_job(spec, tmp_path / folder, 50)
    run_job(spec, tmp_path / "other_seed", 50, seed=43)
    for name in ("raw_data.jsonl.gz", "sample_stats.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one" / "raw_data.jsonl.gz").read_bytes() != (
        tmp_path / "other_seed" / "raw_data.jsonl.gz"
    ).read_bytes()


def test_output_is_readable_gzip_json_lines(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("g", 20)])
    run_job(spec, tmp_path / "out", 5)
    with gzip.open(tmp_path / "out" / "raw_data.jsonl.gz", "rt") as handle:
        assert len([json.loads(line) for line in handle]) == 5
    stats = json.loads((tmp_path / "out" / "sample_stats.json").read_text())
    assert stats["sampled"] == 5


def test_zero_count_writes_empty_outputs_without_opening_the_dataset(tmp_path: Path) -> None:
    def never_open(spec: DatasetSpec):
        raise AssertionError("opened")

    spec = DatasetSpec(id="none", name="some/dataset", weight=1e-9)
    stats = run_job(spec, tmp_path / "out", 0, open_dataset=never_open)
    assert stats["sampled"] == 0 and read_jsonl_gz(tmp_path / "out" / "raw_data.jsonl.gz") == []


class FlakyStream:
    """Wraps a stream; the first read fails with `error` once `fail_after` rows were served."""

    def __init__(
        self, stream, fail_after: int, error: Exception, tripped: list[bool] | None = None
    ):
        self.stream, self.fail_after, self.error = stream, fail_after, error
        self.tripped = tripped if tripped is not None else [False]  # shared by re-opened copies

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def with_format(self, kind: str):
        return FlakyStream(self.stream.with_format(kind), self.fail_after, self.error, self.tripped)

    def iter(self, batch_size: int):
        served = 0
        for table in self.stream.iter(batch_size=batch_size):
            if not self.tripped[0] and served + table.num_rows > self.fail_after:
                self.tripped[0] = True
                raise self.error
            served += table.num_rows
            yield table


def test_transient_network_error_is_retried_and_resumes_at_the_same_row(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("net", 300)])
    expected, _ = sample(spec, 30)
    flaky = FlakyStream(open_stream(spec), 100, ConnectionError("connection reset by peer"))
    waits: list[float] = []
    options = SamplingOptions(batch_size=50, retry=RetryPolicy(3, 0.5, sleep=waits.append))
    records, stats = sample_dataset(flaky, spec, 30, 42, options)
    assert records.to_dicts() == expected and stats["rows_scanned"] == 300
    assert waits == [0.5]


def test_interrupted_run_leaves_no_finished_looking_file(tmp_path: Path) -> None:
    spec = local_dataset(tmp_path, [numbered_docs("cut", 300)], id="cut")

    def open_broken(spec: DatasetSpec):
        return FlakyStream(open_stream(spec), 100, ValueError("corrupt block"))

    with pytest.raises(
        SamplingError, match=r"dataset 'cut'.*reading shard 0 failed.*corrupt block"
    ):
        run_job(spec, tmp_path / "out", 30, open_dataset=open_broken, sampling={"batch_size": 50})
    out = tmp_path / "out"
    assert not (out / "raw_data.jsonl.gz").exists() and not (out / "sample_stats.json").exists()
    assert not list(out.glob(".*.partial")) if out.exists() else True


def test_failure_while_writing_removes_the_partial_file(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "raw_data.jsonl.gz") as partial, gzip_writer(partial) as out:
            out.write(b'{"text": "first"}\n')
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write
    assert list(tmp_path.iterdir()) == []


def test_unopenable_local_dataset_names_it_and_says_what_to_check(tmp_path: Path) -> None:
    spec = DatasetSpec(id="gone", name="json", weight=1, data_files=[str(tmp_path / "no.jsonl")])
    with pytest.raises(DatasetOpenError) as caught:
        open_stream(spec)
    message = str(caught.value)
    assert "dataset 'gone'" in message and "data_files" in message and "\n" not in message


def test_unreachable_hub_dataset_says_offline_gated_or_wrong_name(monkeypatch) -> None:
    import datasets

    def unreachable(**kwargs):
        raise ConnectionError("Couldn't reach 'org/name' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    spec = DatasetSpec(id="org_name_cfg", name="org/name", weight=1, config="cfg")
    with pytest.raises(DatasetOpenError) as caught:
        open_stream(spec)
    message = str(caught.value)
    assert message.startswith("dataset 'org_name_cfg' [org/name (config cfg)")
    assert "Couldn't reach" in message and "HF_HUB_OFFLINE" in message and "gated" in message
