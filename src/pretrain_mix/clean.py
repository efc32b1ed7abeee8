"""Stage 2 for one dataset: normalise, filter, deduplicate, and account for every document.

Each batch is first *judged* (normalised text, the first failing filter's reason, exact
duplicates), then *split* into kept records and rejected ones. Without near-dedup both happen
batch by batch. With near-dedup in dataset scope, judged batches go to a temporary store next to
the outputs while the MinHash index fills; once it is resolved, a second pass marks the near
duplicates and writes the outputs. In mixture scope the store is kept (`run_clean_stage_job`),
the mixture step decides (`near_dedup.run_mixture_job`) and `run_clean_finish_job` writes.

Memory is bounded by `batch_size` documents, plus 24 bytes a kept document for the exact
dedup index and, with near-dedup, the MinHash index (pretrain_mix.near_dedup).
For every dataset: raw lines = kept + rejected, and rejected records stay in input order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from pretrain_mix.allocator import reuse_freed_memory
from pretrain_mix.dedup import ExactDeduplicator
from pretrain_mix.errors import PretrainMixError
from pretrain_mix.filters import get_filter
from pretrain_mix.io import atomic_path, gzip_writer, json_line, ndjson_bytes, write_json
from pretrain_mix.minhash import MinHashSettings, NearDuplicateIndex, band_keys
from pretrain_mix.near_dedup import (
    CLEAN_TEXT,
    DOC_ID,
    NEAR_DUPLICATE,
    SIGNATURE_KEYS,
    BatchStore,
    Decisions,
    StoredBatch,
    StoredTextSimilarity,
    atomic_folder,
    batch_signatures,
    dataset_decisions,
    minhash_from,
    mixture_decisions,
    near_dedup_stats,
    signature_estimate,
    signature_fingerprint,
    survivors,
    temporary_folder,
)
from pretrain_mix.normalise import normalise_batch, replaced
from pretrain_mix.raw_reader import LINE, BadRecord, iter_raw_batches
from pretrain_mix.rejected_lines import Rejected, rejected_bytes

log = logging.getLogger(__name__)

REASON = "_reason"
DUPLICATE_OF = "_duplicate_of"
EMPTY = "empty_after_cleaning"
EXACT_DUPLICATE = "exact_duplicate"
BAD_RECORD = "bad_record"
ADDED = "_added"  # struct of the metadata fields filters added
SIMILARITY = "_similarity"
DUPLICATE_OF_DATASET = "_duplicate_of_dataset"
INTERNAL = {LINE, REASON, DUPLICATE_OF, ADDED, SIMILARITY, DUPLICATE_OF_DATASET, CLEAN_TEXT, DOC_ID}
# Metadata of rejected records with near-dedup on: field -> column (null for other reasons).
NEAR_FIELDS = {"similarity": SIMILARITY, "duplicate_of_dataset": DUPLICATE_OF_DATASET}


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
    near_dedup: dict[str, Any] | None = None

    def to_state(self) -> dict[str, Any]:
        """JSON-ready, for a job that finishes what another started (mixture scope)."""
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "rejected": dict(self.rejected),
            "normalisers": {k: asdict(v) for k, v in self.normalisers.items()},
            "seconds": dict(self.seconds),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> CleanReport:
        return cls(
            **{
                **state,
                "rejected": Counter(state["rejected"]),
                "normalisers": {k: StepStats(**v) for k, v in state["normalisers"].items()},
                "filter_seconds": dict(state["filter_seconds"]),
                "seconds": Counter(state["seconds"]),
            }
        )

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
            **({"near_dedup": self.near_dedup} if self.near_dedup is not None else {}),
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
    filters: list[str],
    thresholds: Mapping[str, Any],
    dedup_enabled: bool,
    near_dedup_enabled: bool = False,
) -> list[str]:
    reasons = [BAD_RECORD, EMPTY]
    for name in filters:
        reasons += [r for r in get_filter(name).reasons(thresholds) if r not in reasons]
    if dedup_enabled:
        reasons.append(EXACT_DUPLICATE)
    if near_dedup_enabled:
        reasons.append(NEAR_DUPLICATE)
    return reasons


def new_report(settings: Mapping[str, Any]) -> CleanReport:
    return CleanReport(
        pipeline_reasons(
            settings["filters"],
            settings["thresholds"],
            settings["exact_dedup"]["enabled"],
            settings.get("near_dedup") is not None,
        )
    )


class Timer:
    def __init__(self, bucket: Counter | dict, key: str):
        self.bucket, self.key = bucket, key

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bucket[self.key] = self.bucket.get(self.key, 0.0) + time.perf_counter() - self.start


def normalise_text(text: pl.Series, settings: Mapping[str, Any], report: CleanReport) -> pl.Series:
    text, outcomes, scan_seconds = normalise_batch(text, settings)
    report.seconds["normalise_scan"] += scan_seconds
    for outcome in outcomes:
        step = report.normalisers.setdefault(outcome.name, StepStats(outcome.name))
        step.chars_before += outcome.chars_before
        step.chars_after += outcome.chars_after
        step.documents_changed += outcome.documents_changed
        step.seconds += outcome.seconds
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
                text = replaced(text, passed, verdict.text.filter(verdict.reason.is_null()))
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


def judge_batch(
    records: pl.DataFrame,
    settings: Mapping[str, Any],
    deduplicator: ExactDeduplicator | None,
    report: CleanReport,
) -> pl.DataFrame:
    """The raw records with each one's verdict: cleaned text, reason (null: passed so far),
    exact duplicate_of, document id and the metadata filters added (internal columns)."""
    raw_text = records["text"]
    report.chars_raw += int(raw_text.str.len_chars().sum())
    text = normalise_text(raw_text, settings["normalise"], report)
    filtered = run_filters(text, settings["filters"], settings["thresholds"], report)
    reason = filtered.reason
    doc_id = records.select(_document_ids(records).alias(DOC_ID)).to_series()
    duplicate_of = pl.repeat(None, len(records), dtype=pl.Int64, eager=True)
    if deduplicator is not None:
        with Timer(report.seconds, "dedup"):
            passed = reason.is_null()
            candidates = pl.DataFrame([filtered.text.alias("text"), doc_id]).filter(passed)
            found = deduplicator.duplicate_of(candidates, DOC_ID)
            duplicate_of = duplicate_of.scatter(passed.arg_true(), found)
            reason = pl.select(
                pl.when(duplicate_of.is_not_null())
                .then(pl.lit(EXACT_DUPLICATE))
                .otherwise(reason)
                .alias(REASON)
            ).to_series()
    columns = [
        filtered.text.alias(CLEAN_TEXT),
        reason.alias(REASON),
        duplicate_of.alias(DUPLICATE_OF),
        doc_id,
    ]
    if filtered.metadata:
        columns.append(pl.DataFrame(list(filtered.metadata.values())).to_struct(ADDED))
    return records.with_columns(columns)


def split_batch(
    judged: pl.DataFrame, report: CleanReport, near_dedup: bool
) -> tuple[pl.DataFrame, Rejected]:
    """(kept records with cleaned text, the rejected rows with their verdict)."""
    columns = [c for c in judged.columns if c not in INTERNAL]
    if "metadata" not in columns:
        columns.append("metadata")
    added: dict[str, pl.Expr] = {}
    if ADDED in judged.columns:
        added = {f.name: pl.col(ADDED).struct.field(f.name) for f in judged.schema[ADDED].fields}
    passed = pl.col(REASON).is_null()
    kept = _with_metadata(
        judged.filter(passed).with_columns(pl.col(CLEAN_TEXT).alias("text")), added
    )
    kept = kept.select(c for c in columns if c in kept.columns)
    verdict = {**added, "filter_reason": pl.col(REASON), "duplicate_of": pl.col(DUPLICATE_OF)}
    if near_dedup:
        verdict |= {name: pl.col(c) for name, c in NEAR_FIELDS.items() if c in judged.columns}

    def whole_records(rows: pl.DataFrame) -> pl.DataFrame:
        records = _with_metadata(rows, verdict)
        return records.select(*(c for c in columns if c in records.columns), LINE)

    report.kept += len(kept)
    report.chars_kept += int(kept["text"].str.len_chars().sum())
    for row in judged[REASON].drop_nulls().value_counts().iter_rows():
        report.rejected[row[0]] += row[1]
    return kept, Rejected(judged.filter(~passed), verdict, INTERNAL, whole_records)


def mark_near_duplicates(judged: pl.DataFrame, decisions: Decisions) -> pl.DataFrame:
    """The judged batch with its near duplicates rejected: reason, duplicate_of, similarity
    (and the kept copy's dataset, in mixture scope); those columns are null elsewhere."""
    hit, at = decisions.lookup(judged[LINE].to_numpy())
    found = pl.Series("_hit", hit)
    if hit.any():
        duplicate_of = pl.Series(np.where(hit, decisions.duplicate_of[at], 0))
        similarity = pl.Series(np.where(hit, decisions.similarity[at], np.nan))
    else:
        duplicate_of = pl.repeat(None, len(judged), dtype=pl.Int64, eager=True)
        similarity = pl.repeat(None, len(judged), dtype=pl.Float64, eager=True)
    marked = judged.with_columns(found).with_columns(
        pl.when("_hit").then(pl.lit(NEAR_DUPLICATE)).otherwise(pl.col(REASON)).alias(REASON),
        pl.when("_hit").then(duplicate_of).otherwise(pl.col(DUPLICATE_OF)).alias(DUPLICATE_OF),
        pl.when("_hit").then(similarity).alias(SIMILARITY),
    )
    if decisions.duplicate_of_dataset is not None:
        names = decisions.duplicate_of_dataset
        kept_in = (
            names.gather(at)
            if len(names)
            else pl.repeat(None, len(judged), dtype=pl.String, eager=True)
        )
        marked = marked.with_columns(pl.when("_hit").then(kept_in).alias(DUPLICATE_OF_DATASET))
    if judged.filter(found & judged[REASON].is_not_null()).height:
        raise PretrainMixError(
            "near-duplicate decisions name a document that was already rejected: the stored "
            "batches and the decisions come from different runs; delete them and re-run"
        )
    return marked.drop("_hit")


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


# --- jobs ------------------------------------------------------------------------------------


@dataclass
class Outputs:
    kept: BinaryIO
    rejected: BinaryIO


@contextlib.contextmanager
def open_outputs(cleaned_path: str | Path, rejected_path: str | Path) -> Iterator[Outputs]:
    """Both output streams; they appear under their names together, or not at all."""
    with ExitStack() as stack:
        kept_partial = stack.enter_context(atomic_path(cleaned_path))
        rejected_partial = stack.enter_context(atomic_path(rejected_path))
        yield Outputs(
            stack.enter_context(gzip_writer(kept_partial)),
            stack.enter_context(gzip_writer(rejected_partial)),
        )


def judged_batches(
    raw_path: str | Path, settings: Mapping[str, Any], report: CleanReport
) -> Iterator[StoredBatch]:
    """Every batch of the raw file, judged (None when all its lines were bad)."""
    dedup_settings = settings["exact_dedup"]
    deduplicator = ExactDeduplicator(dedup_settings) if dedup_settings["enabled"] else None
    skip_bad = settings.get("on_bad_record", "fail") == "skip"
    batches = iter_raw_batches(raw_path, int(settings["batch_size"]), skip_bad)
    while True:
        with Timer(report.seconds, "read"):
            batch = next(batches, None)
        if batch is None:
            return
        report.documents_in += len(batch.records) + len(batch.bad)
        report.rejected[BAD_RECORD] += len(batch.bad)
        judged = None
        if not batch.records.is_empty():
            judged = judge_batch(batch.records, settings, deduplicator, report)
        yield StoredBatch(judged, batch.bad, batch.raw)


def emit(outputs: Outputs, batch: StoredBatch, report: CleanReport, near_dedup: bool) -> None:
    """Write a judged batch's kept and rejected records."""
    bad_lines = [bad_record_line(b) for b in batch.bad]
    if batch.judged is None:
        kept, rejected = pl.DataFrame(), b"".join(line for _number, line in bad_lines)
    else:
        kept, rows = split_batch(batch.judged, report, near_dedup)
        rejected = rejected_bytes(rows, batch.raw, bad_lines)
    with Timer(report.seconds, "write"):
        outputs.kept.write(ndjson_bytes(kept))
        outputs.rejected.write(rejected)


def stored_batches(store: BatchStore, report: CleanReport) -> Iterator[StoredBatch]:
    batches = iter(store)
    while True:
        with Timer(report.seconds, "store"):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def emit_marked(
    outputs: Outputs, store: BatchStore, decisions: Decisions, report: CleanReport
) -> None:
    """Second pass: every stored batch, near duplicates marked, written in input order."""
    for batch in stored_batches(store, report):
        if batch.judged is not None:
            with Timer(report.seconds, "near_dedup"):
                batch = StoredBatch(mark_near_duplicates(batch.judged, decisions), batch.bad)
        emit(outputs, batch, report, near_dedup=True)
    if report.rejected[NEAR_DUPLICATE] != len(decisions.lines):
        raise PretrainMixError(
            f"{len(decisions.lines)} near duplicates decided, {report.rejected[NEAR_DUPLICATE]} "
            "found in the stored batches: they come from different runs; delete them and re-run"
        )


def find_near_duplicates(
    raw_path: str | Path, settings: Mapping[str, Any], report: CleanReport, store: BatchStore
) -> Decisions:
    """First pass of dataset scope: judge and store every batch, index the survivors' band
    keys, and resolve (verification reads candidate texts back from the store)."""
    engine = minhash_from(settings["near_dedup"])
    index = NearDuplicateIndex(engine)
    lines, ids = [], []
    seconds: dict[str, float] = {}
    for batch in judged_batches(raw_path, settings, report):
        with Timer(report.seconds, "store"):
            number = store.add(batch.judged, batch.bad)
        if batch.judged is None:
            continue
        with Timer(seconds, "signatures"):
            batch_lines, batch_ids, lengths, sigs = batch_signatures(
                survivors(batch.judged, REASON), engine
            )
            index.add(batch_lines, band_keys(sigs, engine), lengths)
        if not engine.verify:  # read back for the candidates' similarity
            with Timer(report.seconds, "store"):
                store.add_signatures(number, batch_lines, batch_ids, lengths, sigs)
        lines.append(batch_lines)
        ids.append(batch_ids)
    all_lines = np.concatenate(lines) if lines else np.zeros(0, np.int64)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    check, estimate = None, None
    with Timer(seconds, "resolve"):
        if engine.verify:
            check = StoredTextSimilarity(engine, store.texts)
        else:
            estimate = signature_estimate(
                ((lines, sigs) for lines, _, _, sigs in store.signature_batches()),
                np.unique(index.candidate_pairs()),
            )
        result = index.resolve(check, estimate)
    if check is not None:
        seconds["verify"] = check.seconds
    report.near_dedup = {
        "scope": "dataset",
        **near_dedup_stats(result, engine, len(all_lines), index.nbytes, seconds),
    }
    report.seconds["near_dedup"] += sum(v for k, v in seconds.items() if k != "verify")
    return dataset_decisions(result, all_lines, all_ids)


def _finish(
    report: CleanReport,
    settings: Mapping[str, Any],
    raw_path: str | Path,
    stats_path: str | Path,
) -> dict[str, Any]:
    stats = {
        "raw_file": str(raw_path),
        **report.document(settings["filters"], settings["thresholds"]),
        "settings": settings,
    }
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


def run_clean_job(
    raw_path: str | Path,
    settings: Mapping[str, Any],
    cleaned_path: str | Path,
    rejected_path: str | Path,
    stats_path: str | Path,
) -> dict[str, Any]:
    """What the `clean` rule does; all three outputs appear together or not at all.

    With near-dedup in dataset scope, judged batches wait in a hidden folder next to the
    outputs (removed at the end, whatever happens) until the near duplicates are known.
    """
    reuse_freed_memory()
    started = time.perf_counter()
    near = settings.get("near_dedup")
    if near is not None and near["scope"] != "dataset":
        raise PretrainMixError(
            "near-dedup scope 'mixture' runs as rules clean_stage, near_dedup_mixture and "
            "clean_finish (run_clean_stage_job, near_dedup.run_mixture_job, run_clean_finish_job)"
        )
    report = new_report(settings)
    with ExitStack() as stack:
        outputs = stack.enter_context(open_outputs(cleaned_path, rejected_path))
        if near is None:
            for batch in judged_batches(raw_path, settings, report):
                emit(outputs, batch, report, near_dedup=False)
        else:
            store = BatchStore(stack.enter_context(temporary_folder(cleaned_path, "near_dedup")))
            decisions = find_near_duplicates(raw_path, settings, report, store)
            emit_marked(outputs, store, decisions, report)
        report.seconds["total"] = time.perf_counter() - started
        return _finish(report, settings, raw_path, stats_path)


def run_clean_stage_job(
    raw_path: str | Path, settings: Mapping[str, Any], store_folder: str | Path
) -> dict[str, Any]:
    """What `clean_stage` does (mixture scope): judge every batch and keep it, with the full
    MinHash signatures of the documents that passed, in `store_folder` for the mixture step."""
    reuse_freed_memory()
    started = time.perf_counter()
    near = settings["near_dedup"]
    if near is None or near["scope"] != "mixture":
        raise PretrainMixError("clean_stage is for near-dedup scope 'mixture'; use rule clean")
    # bands and rows do not change signatures; the mixture step applies its own.
    engine = MinHashSettings(**{key: near[key] for key in SIGNATURE_KEYS}, bands=1, rows=1)
    report = new_report(settings)
    with atomic_folder(store_folder) as folder:
        store = BatchStore(folder)
        for batch in judged_batches(raw_path, settings, report):
            with Timer(report.seconds, "store"):
                number = store.add(batch.judged, batch.bad)
            if batch.judged is not None:
                with Timer(report.seconds, "signatures"):
                    rows = survivors(batch.judged, REASON)
                    store.add_signatures(number, *batch_signatures(rows, engine))
        report.seconds["total"] = time.perf_counter() - started
        store.save_state(
            {
                "raw_file": str(raw_path),
                "settings": settings,
                "fingerprint": signature_fingerprint(near),
                "report": report.to_state(),
            }
        )
    return report.to_state()


def run_clean_finish_job(
    store_folder: str | Path,
    decisions_path: str | Path,
    mixture_stats_path: str | Path,
    dataset_id: str,
    cleaned_path: str | Path,
    rejected_path: str | Path,
    stats_path: str | Path,
) -> dict[str, Any]:
    """What `clean_finish` does (mixture scope): one dataset's outputs from its stored batches
    and the mixture step's decisions; stats.json covers both jobs."""
    reuse_freed_memory()
    started = time.perf_counter()
    store, state = BatchStore.open(store_folder)
    settings = state["settings"]
    report = CleanReport.from_state(state["report"])
    decisions = mixture_decisions(decisions_path, dataset_id)
    mixture = json.loads(Path(mixture_stats_path).read_text(encoding="utf-8"))
    if dataset_id not in mixture["datasets"]:
        raise PretrainMixError(f"{mixture_stats_path}: dataset {dataset_id!r} took no part")
    with open_outputs(cleaned_path, rejected_path) as outputs:
        emit_marked(outputs, store, decisions, report)
        report.near_dedup = {
            "scope": "mixture",
            "documents": mixture["documents_by_dataset"][dataset_id],
            "removed": len(decisions.lines),
            "duplicate_of_datasets": mixture["removed_for"][dataset_id],
            "mixture": mixture,
        }
        report.seconds["total"] += time.perf_counter() - started
        return _finish(report, settings, state["raw_file"], stats_path)
