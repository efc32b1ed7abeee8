"""Stage 1: a uniform, reproducible, nested sample of exactly k rows from a streamed split.

Every row gets a pseudo-random key computed from (seed, dataset id, shard, row in shard);
the sample is the k usable rows with the smallest keys ("bottom-k" sampling). Hence:
- uniform: keys are independent and identically distributed over rows;
- reproducible and independent of other datasets: keys depend on nothing else;
- nested: the k smallest keys are among the k' smallest for any k' > k;
- memory bounded by the sample: at most 2k candidates plus one batch are held.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
from tqdm import tqdm

from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import SamplingError
from pretrain_mix.io import write_frame_jsonl_gz, write_json
from pretrain_mix.sources import (
    RetryPolicy,
    first_line,
    iter_shard_tables,
    open_stream,
    shard_count,
    split_size,
)
from pretrain_mix.text_column import column_at, extract_texts

log = logging.getLogger(__name__)

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_ROW_BITS = 40  # rows per shard below 2**40; the shard index sits above them


def stream_key(seed: int, dataset_id: str) -> int:
    """64-bit key of a dataset's random stream, derived from (seed, dataset id) only."""
    digest = hashlib.blake2b(f"{seed}\0{dataset_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective avalanche over uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def row_keys(key: int, shard: int, rows: np.ndarray) -> np.ndarray:
    """SplitMix64 output number (shard, row) of the stream seeded with `key`."""
    position = (np.uint64(shard) << np.uint64(_ROW_BITS)) | rows.astype(np.uint64)
    with np.errstate(over="ignore"):
        return _mix64(np.uint64(key) + (position + np.uint64(1)) * _GOLDEN_GAMMA)


def resolve_scan_limit(setting: Any, count: int) -> int | None:
    """None (whole split), an absolute row count, or '10x' times the sample size."""
    if setting is None:
        return None
    if isinstance(setting, str):
        return max(1, math.ceil(float(setting.rstrip("x")) * count))
    return int(setting)


@dataclass
class SamplingOptions:
    max_rows_scanned: int | None = None  # already resolved to a row count
    shuffle_shards: bool = False
    allow_shortfall: bool = False
    batch_size: int = 10_000
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Segment(NamedTuple):
    """Candidates from one batch: their keys and positions, and where their texts are."""

    keys: np.ndarray
    shards: np.ndarray
    rows: np.ndarray
    table: pa.Table  # holds the texts (and metadata fields), maybe of more rows than these
    index: np.ndarray  # row of `table` for each candidate


def compact(table: pa.Table, index: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Copy the indexed rows out when they are under half the table, so memory stays within
    about twice the candidates; otherwise keep referring to the table and skip the copy."""
    if 2 * len(index) >= table.num_rows:
        return table, index
    return table.take(index), np.arange(len(index))


class BottomK:
    """The k candidates with the smallest keys seen so far; their texts stay in Arrow."""

    def __init__(self, k: int):
        self.k = k
        self.threshold = np.iinfo(np.uint64).max  # keys below it can still enter
        self._segments: list[Segment] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(
        self, keys: np.ndarray, shard: int, rows: np.ndarray, table: pa.Table, index: np.ndarray
    ) -> None:
        """Offer candidates whose texts are rows `index` of `table`."""
        shards = np.full(len(keys), shard, dtype=np.int64)
        table, index = compact(table, index)
        self._segments.append(Segment(keys, shards, rows.astype(np.int64), table, index))
        self._size += len(keys)
        # Pruning at 2k keeps the cost amortised O(1) per candidate and memory below 2k;
        # the first prune at k sets the threshold, so few rows enter after the start.
        if self._size >= 2 * self.k or (self._size >= self.k and self._keys_unbounded()):
            self._prune()

    def _keys_unbounded(self) -> bool:
        return self.threshold == np.iinfo(np.uint64).max

    def _columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(
            np.concatenate([getattr(s, name) for s in self._segments])
            for name in ("keys", "shards", "rows")
        )

    def _prune(self) -> None:
        keys, shards, rows = self._columns()
        keep = np.lexsort((rows, shards, keys))[: self.k]  # ties (p < 2**-60) by position
        survives = np.zeros(len(keys), dtype=bool)
        survives[keep] = True
        segments, start = [], 0
        for segment in self._segments:
            local = np.flatnonzero(survives[start : start + len(segment.keys)])
            start += len(segment.keys)
            if len(local):
                table, index = compact(segment.table, segment.index[local])
                segments.append(
                    Segment(
                        segment.keys[local],
                        segment.shards[local],
                        segment.rows[local],
                        table,
                        index,
                    )
                )
        self._segments = segments
        self._size = len(keep)
        if self._size == self.k and self.k > 0:
            self.threshold = keys[keep[-1]]

    def result(self) -> tuple[np.ndarray, np.ndarray, pa.Table | None]:
        """(shards, rows, payload) of the sample, in stream order (shard, then row)."""
        if not self._segments:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), None
        self._prune()
        _, shards, rows = self._columns()
        tables = [s.table.take(s.index) for s in self._segments]
        payload = pa.concat_tables(tables, promote_options="permissive")
        # Segments arrive in reading order, so with shards in natural order the sample is
        # already sorted and needs no second copy; shuffled shards need one.
        order = np.lexsort((rows, shards))
        if np.array_equal(order, np.arange(len(order))):
            return shards, rows, payload
        return shards[order], rows[order], payload.combine_chunks().take(order)


@dataclass
class ScanReport:
    rows_scanned: int = 0
    usable_rows: int = 0
    missing: int = 0
    not_string: int = 0
    empty: int = 0
    stopped_at_limit: bool = False
    shard_rows: dict[int, int] = field(default_factory=dict)  # rows read per shard
    shards_completed: set[int] = field(default_factory=set)


def shard_order(num_shards: int, key: int, shuffle: bool) -> list[int]:
    order = list(range(num_shards))
    if shuffle:
        random.Random(key).shuffle(order)
    return order


def _progress(total: int | None, label: str) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=f"sampling {label}",
        unit=" rows",
        unit_scale=True,
        file=sys.stderr,
        mininterval=0.5 if interactive else 30.0,
        dynamic_ncols=interactive,
    )


def scan_stream(
    stream,
    spec: DatasetSpec,
    count: int,
    seed: int,
    options: SamplingOptions,
    total_rows: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray, pa.Table | None], ScanReport]:
    """Read the stream (up to the scan limit) and return the bottom-k sample and scan counts."""
    key = stream_key(seed, spec.id)
    num_shards = shard_count(stream)
    sampler = BottomK(count)
    report = ScanReport()
    limit = options.max_rows_scanned
    expected = total_rows if limit is None else min(limit, total_rows or limit)
    with _progress(expected, spec.id) as bar:
        for shard in shard_order(num_shards, key, options.shuffle_shards):
            offset = 0
            tables = iter_shard_tables(stream, shard, num_shards, options.batch_size, options.retry)
            for table in _reading(tables, spec, shard, report):
                if limit is not None and report.rows_scanned + table.num_rows > limit:
                    table = table.slice(0, limit - report.rows_scanned)
                    report.stopped_at_limit = True
                _offer_batch(sampler, table, spec, key, shard, offset, report)
                offset += table.num_rows
                report.rows_scanned += table.num_rows
                bar.update(table.num_rows)
                if report.stopped_at_limit:
                    break
            report.shard_rows[shard] = offset
            if report.stopped_at_limit:
                break
            report.shards_completed.add(shard)
    return sampler.result(), report


def _reading(tables: Iterator[pa.Table], spec: DatasetSpec, shard: int, report: ScanReport):
    """Pass tables through; a non-network read error becomes one line naming the dataset."""
    try:
        yield from tables
    except Exception as exc:
        raise SamplingError(
            f"{spec.describe()}: reading shard {shard} failed after"
            f" {report.rows_scanned} rows: {first_line(exc)}; check the source files"
        ) from exc


def _offer_batch(
    sampler: BottomK,
    table: pa.Table,
    spec: DatasetSpec,
    key: int,
    shard: int,
    offset: int,
    report: ScanReport,
) -> None:
    texts = extract_texts(table, spec.text_field, spec.text_template)
    report.missing += texts.missing
    report.not_string += texts.not_string
    report.empty += texts.empty
    usable = np.flatnonzero(texts.usable)
    report.usable_rows += len(usable)
    if sampler.k == 0 or len(usable) == 0:
        return
    rows = offset + usable
    keys = row_keys(key, shard, rows)
    enters = keys < sampler.threshold
    if not enters.any():
        return
    columns = {"text": texts.text}
    for name in spec.metadata_fields:
        column = column_at(table, name)
        columns[name] = pa.nulls(table.num_rows) if column is None else column
    sampler.add(keys[enters], shard, rows[enters], pa.table(columns), usable[enters])


def shard_offsets(report: ScanReport, num_shards: int) -> np.ndarray:
    """Row offset of each shard in the split, where every earlier shard was read whole; else -1."""
    offsets = np.full(num_shards, -1, dtype=np.int64)
    running = 0
    for shard in range(num_shards):
        offsets[shard] = running
        if shard not in report.shards_completed:
            break
        running += report.shard_rows[shard]
    return offsets


def build_records(
    sample: tuple[np.ndarray, np.ndarray, pa.Table | None],
    spec: DatasetSpec,
    offsets: np.ndarray,
) -> pl.DataFrame:
    """The raw records {"text", "metadata"} of the sample, built column-wise."""
    shards, rows, payload = sample
    if payload is None:
        payload = pa.table({"text": pa.array([], pa.string())})
    base = offsets[shards]
    original = pl.select(
        pl.when(pl.lit(base) >= 0).then(pl.lit(base) + pl.lit(rows)).alias("original_index")
    ).to_series()
    frame = pl.from_arrow(payload)
    metadata = pl.struct(
        source=pl.lit(spec.name),
        config=pl.lit(spec.config or "default"),
        split=pl.lit(spec.split),
        dataset_id=pl.lit(spec.id),
        weight=pl.lit(float(spec.weight)),
        original_index=original,
        shard=pl.Series(shards, dtype=pl.Int64),
        row_in_shard=pl.Series(rows, dtype=pl.Int64),
        **{name: pl.col(name) for name in spec.metadata_fields},
    )
    return frame.select(pl.col("text").cast(pl.String), metadata.alias("metadata"))


def sample_dataset(
    stream,
    spec: DatasetSpec,
    count: int,
    seed: int,
    options: SamplingOptions,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Sample `count` rows of an opened stream: (records in stream order, stats document)."""
    total_rows = split_size(stream, spec.split)
    if count == 0:
        sample, report = BottomK(0).result(), ScanReport()
    else:
        sample, report = scan_stream(stream, spec, count, seed, options, total_rows)
    num_shards = shard_count(stream)
    records = build_records(sample, spec, shard_offsets(report, num_shards))
    stats = {
        "dataset_id": spec.id,
        "source": spec.name,
        "config": spec.config,
        "split": spec.split,
        "seed": seed,
        "requested": count,
        "sampled": len(records),
        "shortfall": count - len(records),
        "rows_scanned": report.rows_scanned,
        "usable_rows_scanned": report.usable_rows,
        "rows_without_text": {
            "missing": report.missing,
            "not_string": report.not_string,
            "empty": report.empty,
        },
        "split_rows": total_rows,
        "fraction_scanned": report.rows_scanned / total_rows if total_rows else None,
        "scan_limit": options.max_rows_scanned,
        "stopped_at_scan_limit": report.stopped_at_limit,
        "shards": {
            "total": num_shards,
            "read_completely": len(report.shards_completed),
            "order": "shuffled" if options.shuffle_shards else "natural",
        },
    }
    if len(records) < count and not options.allow_shortfall:
        where = (
            f"the scan limit of {options.max_rows_scanned:,} rows"
            if report.stopped_at_limit
            else "the end of the split"
        )
        raise SamplingError(
            f"{spec.describe()}: planned {count:,} documents but only {len(records):,} usable rows"
            f" were found before {where} ({report.rows_scanned:,} rows scanned); raise"
            " sampling.max_rows_scanned, lower the weight or target_samples, or set"
            " sampling.allow_shortfall: true"
        )
    return records, stats


def run_sample_job(
    dataset: dict[str, Any],
    count: int,
    seed: int,
    sampling: dict[str, Any],
    data_path: str | Path,
    stats_path: str | Path,
    open_dataset: Callable[[DatasetSpec], Any] = open_stream,
) -> dict[str, Any]:
    """What the `sample` rule does: open, sample, write both outputs atomically."""
    spec = DatasetSpec.from_params(dataset)
    limit_setting = sampling.get("max_rows_scanned")
    options = SamplingOptions(
        max_rows_scanned=resolve_scan_limit(limit_setting, count),
        shuffle_shards=bool(sampling.get("shuffle_shards", False)),
        allow_shortfall=bool(sampling.get("allow_shortfall", False)),
        batch_size=int(sampling.get("batch_size", 10_000)),
        retry=RetryPolicy(
            max_retries=int(sampling.get("max_retries", 5)),
            backoff_seconds=float(sampling.get("retry_backoff_seconds", 2.0)),
        ),
    )
    started = time.perf_counter()
    stream = open_dataset(spec) if count > 0 else None
    records, stats = sample_dataset(stream, spec, count, seed, options)
    stats["scan_limit_setting"] = limit_setting
    write_frame_jsonl_gz(data_path, records)
    write_json(stats_path, stats)
    seconds = time.perf_counter() - started
    log.info(
        "%s: sampled %d of %d planned from %d rows scanned in %.1fs (%.0f rows/s)",
        spec.id,
        stats["sampled"],
        count,
        stats["rows_scanned"],
        seconds,
        stats["rows_scanned"] / seconds if seconds else 0.0,
    )
    return stats
