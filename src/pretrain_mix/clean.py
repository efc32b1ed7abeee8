"""Stage 2 for one dataset: normalise, filter, deduplicate, and account for every document.

Memory is bounded by `batch_size` documents (plus 24 bytes a kept document for the exact
dedup index). For every dataset: raw lines = kept + rejected.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from pretrain_mix.dedup import ExactDeduplicator
from pretrain_mix.filters import get_filter
from pretrain_mix.io import atomic_path, gzip_writer, json_line, ndjson_bytes, write_json
from pretrain_mix.normalise import enabled_normalisers
from pretrain_mix.raw_reader import LINE, BadRecord, iter_raw_batches

log = logging.getLogger(__name__)

REASON = "_reason"
DUPLICATE_OF = "_duplicate_of"
EMPTY = "empty_after_cleaning"
EXACT_DUPLICATE = "exact_duplicate"
BAD_RECORD = "bad_record"


@dataclass
class StepStats:
    name: str
    chars_before: int = 0
    chars_after: int = 0
    documents_changed: int = 0
    seconds: float = 0.0


@dataclass
class CleanReport:
    reasons: list[str]  # pipeline order
    documents_in: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    normalisers: dict[str, StepStats] = field(default_factory=dict)
    filter_seconds: dict[str, float] = field(default_factory=dict)
    seconds: Counter = field(default_factory=Counter)
    chars_raw: int = 0
    chars_kept: int = 0

    def document(self, filters: list[str], thresholds: Mapping[str, Any]) -> dict[str, Any]:
        removed_by_filter = {
            name: sum(self.rejected[r] for r in get_filter(name).reasons(thresholds))
            for name in filters
        }
        return {
            "documents_in": self.documents_in,
            "kept": self.kept,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": {reason: self.rejected[reason] for reason in self.reasons},
            "filters": [
                {
                    "name": name,
                    "removed": removed_by_filter[name],
                    "seconds": round(self.filter_seconds.get(name, 0.0), 4),
                }
                for name in filters
            ],
            "normalisers": [
                {
                    "name": s.name,
                    "chars_before": s.chars_before,
                    "chars_after": s.chars_after,
                    "documents_changed": s.documents_changed,
                    "seconds": round(s.seconds, 4),
                }
                for s in self.normalisers.values()
            ],
            "characters": {"raw": self.chars_raw, "kept": self.chars_kept},
            "seconds": {step: round(t, 4) for step, t in self.seconds.items()},
        }


def pipeline_reasons(
    filters: list[str], thresholds: Mapping[str, Any], dedup_enabled: bool
) -> list[str]:
    reasons = [BAD_RECORD, EMPTY]
    for name in filters:
        reasons += [r for r in get_filter(name).reasons(thresholds) if r not in reasons]
    if dedup_enabled:
        reasons.append(EXACT_DUPLICATE)
    return reasons


class Timer:
    def __init__(self, bucket: Counter | dict, key: str):
        self.bucket, self.key = bucket, key

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bucket[self.key] = self.bucket.get(self.key, 0.0) + time.perf_counter() - self.start


def normalise_text(text: pl.Series, settings: Mapping[str, Any], report: CleanReport) -> pl.Series:
    for normaliser in enabled_normalisers(settings):
        step = report.normalisers.setdefault(normaliser.name, StepStats(normaliser.name))
        started = time.perf_counter()
        cleaned = normaliser.apply(text, settings)
        step.seconds += time.perf_counter() - started
        step.chars_before += int(text.str.len_chars().sum())
        step.chars_after += int(cleaned.str.len_chars().sum())
        step.documents_changed += int((cleaned != text).sum())
        text = cleaned
    return text


@dataclass
class FilterPass:
    """Every filter's verdict merged: reason per row, final text, metadata filters added."""

    reason: pl.Series
    text: pl.Series
    metadata: dict[str, pl.Series]


def run_filters(
    text: pl.Series, filters: list[str], thresholds: Mapping[str, Any], report: CleanReport
) -> FilterPass:
    """The reason of the first failing check per row (null where every check passes).

    Each filter sees only the rows every earlier check passed: the first failure is all
    that is reported, so later filters need not spend time on rejected documents. A filter
    may rewrite the text of the rows it passes (C4 drops lines); later filters see that.
    """
    reason = pl.select(
        pl.when(text.str.len_chars() == 0).then(pl.lit(EMPTY)).alias(REASON)
    ).to_series()
    metadata: dict[str, pl.Series] = {}
    for name in filters:
        alive = reason.is_null().arg_true()
        if len(alive) == 0:
            break
        with Timer(report.filter_seconds, name):
            verdict = get_filter(name).judge(text.gather(alive), thresholds)
            reason = reason.scatter(alive, verdict.reason)
            if verdict.text is not None:
                passed = alive.filter(verdict.reason.is_null())
                text = text.scatter(passed, verdict.text.filter(verdict.reason.is_null()))
            for key, values in verdict.metadata.items():
                column = metadata.get(key)
                if column is None:
                    column = pl.repeat(None, len(text), dtype=values.dtype, eager=True)
                metadata[key] = column.scatter(alive, values).alias(key)
    return FilterPass(reason.alias(REASON), text, metadata)


def _document_ids(frame: pl.DataFrame) -> pl.Expr:
    """What duplicate_of names: the kept document's original_index (else its raw line)."""
    metadata = frame.schema.get("metadata")
    if isinstance(metadata, pl.Struct) and "original_index" in [f.name for f in metadata.fields]:
        return pl.coalesce(pl.col("metadata").struct.field("original_index"), pl.col(LINE))
    return pl.col(LINE)


def _with_metadata(frame: pl.DataFrame, extra: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """The record's metadata struct with `extra` fields set (added, or replaced)."""
    if not extra:
        return frame
    schema = frame.schema.get("metadata")
    # Rebuilt field by field, so a record whose metadata was null still gets the new fields.
    fields = [f.name for f in schema.fields] if isinstance(schema, pl.Struct) else []
    kept_fields = [pl.col("metadata").struct.field(name) for name in fields if name not in extra]
    return frame.with_columns(pl.struct(*kept_fields, **extra).alias("metadata"))


def clean_batch(
    records: pl.DataFrame,
    settings: Mapping[str, Any],
    deduplicator: ExactDeduplicator | None,
    report: CleanReport,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept records with cleaned text, rejected original records with their reason)."""
    raw_text = records["text"]
    report.chars_raw += int(raw_text.str.len_chars().sum())
    text = normalise_text(raw_text, settings["normalise"], report)
    filtered = run_filters(text, settings["filters"], settings["thresholds"], report)
    reason = filtered.reason
    work = records.with_columns(filtered.text.alias("text"))
    duplicate_of = pl.repeat(None, len(work), dtype=pl.Int64, eager=True).alias(DUPLICATE_OF)
    if deduplicator is not None:
        with Timer(report.seconds, "dedup"):
            passed = reason.is_null()
            found = deduplicator.duplicate_of(
                work.filter(passed).with_columns(_document_ids(work).alias("_doc_id")), "_doc_id"
            )
            duplicate_of = duplicate_of.scatter(passed.arg_true(), found)
            reason = pl.select(
                pl.when(duplicate_of.is_not_null())
                .then(pl.lit(EXACT_DUPLICATE))
                .otherwise(reason)
                .alias(REASON)
            ).to_series()
    output_columns = [c for c in records.columns if c != LINE]
    added = {key: pl.lit(values) for key, values in filtered.metadata.items()}
    kept = _with_metadata(work, added).filter(reason.is_null()).select(output_columns)
    rejected = _with_metadata(
        records.with_columns(reason.alias(REASON), duplicate_of),
        {**added, "filter_reason": pl.col(REASON), "duplicate_of": pl.col(DUPLICATE_OF)},
    ).filter(pl.col(REASON).is_not_null())
    report.kept += len(kept)
    report.chars_kept += int(kept["text"].str.len_chars().sum())
    for row in reason.drop_nulls().value_counts().iter_rows():
        report.rejected[row[0]] += row[1]
    return kept, rejected.select([*output_columns, LINE])


def bad_record_line(bad: BadRecord) -> tuple[int, bytes]:
    record = {
        "text": bad.line,
        "metadata": {
            "filter_reason": BAD_RECORD,
            "duplicate_of": None,
            "line_number": bad.line_number,
            "error": bad.error,
        },
    }
    return bad.line_number, json_line(record)


def rejected_bytes(rejected: pl.DataFrame, bad: list[BadRecord]) -> bytes:
    """Rejected records of a batch in input order, bad lines included where they were."""
    body = ndjson_bytes(rejected.drop(LINE))
    if not bad:
        return body
    lines = list(zip(rejected[LINE].to_list(), body.splitlines(keepends=True), strict=True))
    lines += [bad_record_line(b) for b in bad]
    return b"".join(line for _number, line in sorted(lines, key=lambda pair: pair[0]))


def run_clean_job(
    raw_path: str | Path,
    settings: Mapping[str, Any],
    cleaned_path: str | Path,
    rejected_path: str | Path,
    stats_path: str | Path,
) -> dict[str, Any]:
    """What the `clean` rule does; all three outputs appear together or not at all."""
    started = time.perf_counter()
    dedup_settings = settings["exact_dedup"]
    deduplicator = ExactDeduplicator(dedup_settings) if dedup_settings["enabled"] else None
    report = CleanReport(
        pipeline_reasons(settings["filters"], settings["thresholds"], deduplicator is not None)
    )
    skip_bad = settings.get("on_bad_record", "fail") == "skip"
    with ExitStack() as stack:
        kept_partial = stack.enter_context(atomic_path(cleaned_path))
        rejected_partial = stack.enter_context(atomic_path(rejected_path))
        kept_out = stack.enter_context(gzip_writer(kept_partial))
        rejected_out = stack.enter_context(gzip_writer(rejected_partial))
        batches = iter_raw_batches(raw_path, int(settings["batch_size"]), skip_bad)
        while True:
            with Timer(report.seconds, "read"):
                batch = next(batches, None)
            if batch is None:
                break
            report.documents_in += len(batch.records) + len(batch.bad)
            report.rejected[BAD_RECORD] += len(batch.bad)
            if batch.records.is_empty():
                kept, rejected = pl.DataFrame(), pl.DataFrame(schema={LINE: pl.Int64})
            else:
                kept, rejected = clean_batch(batch.records, settings, deduplicator, report)
            with Timer(report.seconds, "write"):
                kept_out.write(ndjson_bytes(kept))
                rejected_out.write(rejected_bytes(rejected, batch.bad))
        report.seconds["total"] = time.perf_counter() - started
        stats = {
            "raw_file": str(raw_path),
            **report.document(settings["filters"], settings["thresholds"]),
        }
        stats["settings"] = settings
        write_json(stats_path, stats)
    log.info(
        "%s: %d in, %d kept, %d rejected %s in %.1fs",
        raw_path,
        stats["documents_in"],
        stats["kept"],
        stats["rejected"],
        json.dumps({k: v for k, v in stats["rejected_by_reason"].items() if v}),
        report.seconds["total"],
    )
    return stats
