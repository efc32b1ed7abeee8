"""Near-duplicate removal in stage 2: settings, the on-disk batch store, and the mixture step.

The engine is `pretrain_mix.minhash`; this module feeds it from the clean jobs:

- **dataset scope** (inside each `clean` job): pass 1 writes every judged batch to a
  temporary `BatchStore` and adds the band keys of the documents that passed the filters and
  exact dedup to a `NearDuplicateIndex`; the index resolves (verification reads back only the
  texts of candidate pairs); pass 2 reads the store and writes the outputs.
- **mixture scope**: `clean_stage` keeps the store and the full signatures of every dataset;
  `near_dedup_mixture` (`run_mixture_job`) adds them all to one index, with ids
  (dataset position, raw line) and the dataset priority list deciding which copy survives, and
  writes the decisions; `clean_finish` writes each dataset's outputs from its store.

Memory stays bounded by a batch plus the index (8 bytes a band + 16 a document) and 16 bytes
a document for ids; verification adds the shingle sets of the candidate documents (8 bytes a
distinct shingle), read back in one pass over the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pretrain_mix.errors import ConfigError, PretrainMixError
from pretrain_mix.io import atomic_path, write_json
from pretrain_mix.minhash import (
    WORD_HASH,
    MinHashSettings,
    NearDuplicateIndex,
    NearDuplicateResult,
    ShingleSets,
    band_keys,
    signature_similarity,
    signatures,
)
from pretrain_mix.raw_reader import LINE, BadRecord, RawLines

NEAR_DUPLICATE = "near_duplicate"
SCOPES = ("dataset", "mixture")
ENGINE_KEYS = tuple(f.name for f in fields(MinHashSettings))
# What a signature depends on: in mixture scope the clean jobs receive only these, so that a
# change of threshold, bands, rows, verification, survivor or priority re-runs the mixture step
# and the per-dataset finals, not stage 2's filters.
SIGNATURE_KEYS = ("ngram", "num_perm", "fold_diacritics", "seed")
# Keys of `filtering.deduplication` that only the top level may set (not a profile).
MIXTURE_ONLY_KEYS = ("scope", "priority")
# Internal columns of a judged batch (never written to the outputs).
CLEAN_TEXT = "_clean_text"
DOC_ID = "_doc_id"
# Global id in mixture scope: dataset position in the high bits, raw line number in the low.
LINE_BITS = 40
STORE_FORMAT = 1


# --- settings --------------------------------------------------------------------------------


def engine_settings(section: Mapping[str, Any], where: str) -> MinHashSettings:
    """MinHash settings from a `deduplication` section (other keys are the workflow's)."""
    return MinHashSettings.from_config(
        {key: value for key, value in section.items() if key in ENGINE_KEYS}, where
    )


def near_dedup_settings(
    section: Mapping[str, Any], where: str = "filtering.deduplication"
) -> dict[str, Any] | None:
    """The `near_dedup` entry of a dataset's clean settings: None when off.

    Dataset scope: every engine setting (bands and rows derived when not given). Mixture
    scope: only what signatures depend on; the mixture rule receives the rest.
    """
    if not section.get("enabled", True) or not section.get("near_duplicates", False):
        return None
    scope = section.get("scope", "dataset")
    if scope not in SCOPES:
        raise ConfigError(f"{where}.scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    engine = engine_settings(section, where)
    if scope == "mixture":
        return {"scope": scope, **{key: getattr(engine, key) for key in SIGNATURE_KEYS}}
    return {"scope": scope, **asdict(engine)}


def mixture_settings(
    config: Mapping[str, Any], clean_settings: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """Params of the `near_dedup_mixture` rule, or None when no dataset uses mixture scope.

    `clean_settings`: every dataset's resolved clean settings, in mixture order. The result
    lists the datasets taking part (mixture order: their position makes the ids) and their
    ranking (the `priority` list first, then the others in mixture order).
    """
    top = (config.get("filtering") or {}).get("deduplication") or {}
    where = "filtering.deduplication"
    for name, profile in (config.get("profiles") or {}).items():
        section = (profile.get("filtering") or {}).get("deduplication") or {}
        set_here = sorted(k for k in section if k in MIXTURE_ONLY_KEYS)
        if top.get("scope") == "mixture":
            set_here += sorted(k for k in section if k in ENGINE_KEYS)
        if set_here:
            raise ConfigError(
                f"profiles.{name}.filtering.deduplication: {', '.join(set_here)} can only be set "
                f"in {where} (with scope: mixture every dataset is compared with the same "
                "settings); a profile may switch near_duplicates or enabled"
            )
    taking_part = [
        dataset_id
        for dataset_id, settings in clean_settings.items()
        if (settings.get("near_dedup") or {}).get("scope") == "mixture"
    ]
    priority = top.get("priority") or []
    for i, dataset_id in enumerate(priority):
        if dataset_id not in clean_settings:
            raise ConfigError(
                f"{where}.priority[{i}]: unknown dataset id {dataset_id!r}; known ids: "
                f"{', '.join(clean_settings)}"
            )
        if dataset_id in priority[:i]:
            raise ConfigError(f"{where}.priority[{i}]: {dataset_id!r} is listed twice")
    if not taking_part:
        return None
    ranking = [d for d in priority if d in taking_part]
    ranking += [d for d in taking_part if d not in ranking]
    engine = engine_settings(top, where)
    return {
        "datasets": taking_part,
        "priority": ranking,
        **asdict(engine),
    }


def minhash_from(settings: Mapping[str, Any]) -> MinHashSettings:
    """MinHashSettings from a resolved settings dict (extra keys ignored)."""
    return MinHashSettings(**{key: settings[key] for key in ENGINE_KEYS if key in settings})


def signature_fingerprint(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What stored signatures depend on; a store made with other values is refused."""
    return {
        "format": STORE_FORMAT,
        "word_hash": WORD_HASH,
        **{key: settings[key] for key in SIGNATURE_KEYS},
    }


# --- folders ---------------------------------------------------------------------------------


@contextlib.contextmanager
def temporary_folder(beside: str | Path, purpose: str) -> Iterator[Path]:
    """A hidden folder next to `beside`, removed when the block ends, whatever happens."""
    beside = Path(beside)
    folder = beside.with_name(f".{beside.name}.{purpose}.partial")
    shutil.rmtree(folder, ignore_errors=True)  # left by a killed run
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A hidden folder renamed to `path` only if the block succeeds (removed otherwise)."""
    final = Path(path)
    with temporary_folder(final, "tmp") as partial:
        yield partial
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)


# --- batch store ----------------------------------------------------------------------------


@dataclass
class StoredBatch:
    """A judged batch as written: its frame (None if every line was bad) and its bad lines."""

    judged: pl.DataFrame | None
    bad: list[BadRecord]
    raw: RawLines | None = None  # the lines as read: valid until the reader moves on; not stored


class BatchStore:
    """Judged batches on disk, one Arrow IPC file each (each batch keeps its own schema).

    Files: batch-NNNNNN.arrow (the records, their cleaned text and verdicts), bad-NNNNNN.arrow
    (unusable raw lines) and, for the mixture step, signatures-NNNNNN.npz (raw lines, ids,
    lengths and full MinHash signatures of the documents that reached near-dedup) and
    state.json (the batches, the clean job's report and settings, the signature fingerprint).
    """

    def __init__(self, folder: str | Path, manifest: list[dict[str, Any]] | None = None):
        self.folder = Path(folder)
        self.manifest: list[dict[str, Any]] = manifest or []

    def _path(self, kind: str, number: int, suffix: str = "arrow") -> Path:
        return self.folder / f"{kind}-{number:06d}.{suffix}"

    def add(self, judged: pl.DataFrame | None, bad: Sequence[BadRecord]) -> int:
        """Write a batch; returns its number."""
        number = len(self.manifest)
        entry: dict[str, Any] = {"rows": 0, "first_line": None, "last_line": None, "bad": len(bad)}
        if judged is not None and not judged.is_empty():
            judged.write_ipc(self._path("batch", number), compression="lz4")
            lines = judged[LINE]
            entry.update(rows=len(judged), first_line=lines.min(), last_line=lines.max())
        if bad:
            pl.DataFrame(
                {
                    "line_number": [b.line_number for b in bad],
                    "line": [b.line for b in bad],
                    "error": [b.error for b in bad],
                },
                schema={"line_number": pl.Int64, "line": pl.String, "error": pl.String},
            ).write_ipc(self._path("bad", number), compression="lz4")
        self.manifest.append(entry)
        return number

    def add_signatures(
        self, number: int, lines: np.ndarray, ids: np.ndarray, lengths: np.ndarray, sigs: np.ndarray
    ) -> None:
        with open(self._path("signatures", number, "npz"), "wb") as handle:
            np.savez(handle, lines=lines, ids=ids, lengths=lengths, signatures=sigs)

    def signature_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(lines, ids, lengths, signatures) of each batch, in input order."""
        for number in range(len(self.manifest)):
            path = self._path("signatures", number, "npz")
            if path.exists():
                with np.load(path, allow_pickle=False) as stored:
                    yield stored["lines"], stored["ids"], stored["lengths"], stored["signatures"]

    def __iter__(self) -> Iterator[StoredBatch]:
        for number, entry in enumerate(self.manifest):
            judged = pl.read_ipc(self._path("batch", number)) if entry["rows"] else None
            bad = []
            if entry["bad"]:
                frame = pl.read_ipc(self._path("bad", number))
                bad = [BadRecord(*row) for row in frame.iter_rows()]
            yield StoredBatch(judged, bad)

    def texts(self, lines: np.ndarray) -> Iterator[tuple[np.ndarray, pl.Series]]:
        """(raw lines, cleaned texts) of the documents on these raw lines (sorted, unique), one
        batch at a time: each batch that holds some is read once, and only two of its columns.
        """
        found = 0
        for number, entry in enumerate(self.manifest):
            if not entry["rows"]:
                continue
            low = np.searchsorted(lines, entry["first_line"], side="left")
            high = np.searchsorted(lines, entry["last_line"], side="right")
            if low == high:
                continue
            frame = pl.read_ipc(self._path("batch", number), columns=[LINE, CLEAN_TEXT])
            stored = frame[LINE].to_numpy()
            wanted = lines[low:high]
            at = np.minimum(np.searchsorted(stored, wanted), len(stored) - 1)
            if not np.array_equal(stored[at], wanted):
                raise PretrainMixError(f"{self.folder}: batch {number} lacks a document asked for")
            found += len(wanted)
            yield wanted, frame[CLEAN_TEXT].gather(at)
        if found != len(lines):
            raise PretrainMixError(f"{self.folder}: {len(lines) - found} documents not found")

    def save_state(self, state: Mapping[str, Any]) -> None:
        write_json(self.folder / "state.json", {**state, "batches": self.manifest})

    @classmethod
    def open(cls, folder: str | Path) -> tuple[BatchStore, dict[str, Any]]:
        """A store written by `clean_stage`, and the state saved with it."""
        path = Path(folder) / "state.json"
        if not path.exists():
            raise PretrainMixError(f"{folder}: no state.json; delete the folder and re-run")
        state = json.loads(path.read_text(encoding="utf-8"))
        return cls(folder, state["batches"]), state


# --- verification ----------------------------------------------------------------------------


class StoredTextSimilarity:
    """Exact Jaccard of candidate pairs, from texts read back from the stores.

    `texts_of(ids)` yields (ids, texts) for sorted unique ids, one stored batch at a time. The
    first call loads the shingle sets of every document in its pairs in one pass, so each
    stored batch is read at most once (later calls of `resolve` ask about the same documents).
    Memory: those sets, 8 bytes a distinct shingle of every candidate document (about 1.3x
    their folded text), plus one stored batch while loading.
    """

    def __init__(
        self,
        settings: MinHashSettings,
        texts_of: Callable[[np.ndarray], Iterable[tuple[np.ndarray, pl.Series]]],
    ):
        self.texts_of = texts_of
        self.sets = ShingleSets(settings)
        self.pairs = 0
        self.seconds = 0.0

    def __call__(self, pairs: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        missing = self.sets.missing(pairs)
        if len(missing):
            for ids, texts in self.texts_of(missing):
                self.sets.add(ids, texts)
        result = self.sets.jaccard(pairs)
        self.pairs += len(pairs)
        self.seconds += time.perf_counter() - started
        return result


def signature_estimate(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], wanted: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Estimated Jaccard (share of equal min-hashes) of pairs of the documents `wanted` (sorted
    unique ids), from (ids, full signatures) batches. Without verification it reports the
    similarity of each removal; memory: 4 x num_perm bytes a wanted document."""
    kept_ids, kept_sigs = [np.zeros(0, np.int64)], [np.zeros((0, 1), np.uint32)]
    for ids, sigs in batches:
        hit = np.isin(ids, wanted, assume_unique=True)
        kept_ids.append(ids[hit])
        kept_sigs.append(sigs[hit])
    all_ids = np.concatenate(kept_ids)
    if len(all_ids) != len(wanted):
        raise PretrainMixError(f"{len(wanted) - len(all_ids)} signatures not found in the store")
    return signature_similarity(all_ids, np.concatenate(kept_sigs[1:] or kept_sigs))


# --- signatures of a judged batch ------------------------------------------------------------


def survivors(judged: pl.DataFrame, reason: str) -> pl.DataFrame:
    """Rows every filter and exact dedup passed: the ones near-dedup compares."""
    return judged.filter(pl.col(reason).is_null()).select(LINE, DOC_ID, CLEAN_TEXT)


def batch_signatures(
    rows: pl.DataFrame, settings: MinHashSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(raw lines, document ids, lengths in characters, signatures) of `survivors` rows."""
    texts = rows[CLEAN_TEXT]
    return (
        rows[LINE].to_numpy().astype(np.int64),
        rows[DOC_ID].to_numpy().astype(np.int64),
        texts.str.len_chars().to_numpy().astype(np.int32),
        signatures(texts, settings),
    )


# --- decisions -------------------------------------------------------------------------------


@dataclass
class Decisions:
    """Near-duplicates of one dataset: raw line -> kept document's id, similarity (sorted)."""

    lines: np.ndarray
    duplicate_of: np.ndarray
    similarity: np.ndarray
    duplicate_of_dataset: pl.Series | None = None  # mixture scope: the kept copy's dataset

    def lookup(self, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hit, position in the decisions) for each raw line."""
        if len(self.lines) == 0:
            return np.zeros(len(lines), bool), np.zeros(len(lines), np.int64)
        at = np.minimum(np.searchsorted(self.lines, lines), len(self.lines) - 1)
        return self.lines[at] == lines, at


def dataset_decisions(result: NearDuplicateResult, lines: np.ndarray, ids: np.ndarray) -> Decisions:
    """Decisions of a dataset-scope resolve whose index ids were raw lines (sorted `lines`,
    with each line's document id in `ids`)."""
    survivor_at = np.searchsorted(lines, result.survivor_ids)
    return Decisions(
        lines=result.removed_ids,
        duplicate_of=ids[survivor_at] if len(survivor_at) else np.zeros(0, np.int64),
        similarity=np.round(result.similarity, 4),
    )


def near_dedup_stats(
    result: NearDuplicateResult,
    settings: MinHashSettings,
    documents: int,
    index_bytes: int,
    seconds: Mapping[str, float],
) -> dict[str, Any]:
    return {
        "documents": documents,
        **result.stats(),
        "threshold": settings.similarity_threshold,
        "bands": settings.bands,
        "rows": settings.rows,
        "index_bytes": index_bytes,
        "seconds": {step: round(t, 4) for step, t in seconds.items()},
    }


# --- the mixture step ------------------------------------------------------------------------


def _global_ids(position: int, lines: np.ndarray) -> np.ndarray:
    if len(lines) and int(lines.max()) >= 1 << LINE_BITS:
        raise PretrainMixError(f"raw files of more than 2^{LINE_BITS} lines are not supported")
    return (np.int64(position) << np.int64(LINE_BITS)) | lines.astype(np.int64)


def run_mixture_job(
    stores: Sequence[str | Path],
    settings: Mapping[str, Any],
    decisions_path: str | Path,
    stats_path: str | Path,
) -> dict[str, Any]:
    """What the `near_dedup_mixture` rule does: one index over every dataset's signatures.

    `stores` are the `clean_stage` folders of `settings["datasets"]`, in that order. Writes a
    parquet file with one row per removed document (dataset, line, duplicate_of,
    duplicate_of_dataset, similarity) and the mixture-wide figures as JSON.
    """
    started = time.perf_counter()
    dataset_ids = list(settings["datasets"])
    if len(stores) != len(dataset_ids):
        raise PretrainMixError(f"{len(stores)} stores given for {len(dataset_ids)} datasets")
    engine = minhash_from(settings)
    rank = {dataset_id: i for i, dataset_id in enumerate(settings["priority"])}
    expected = signature_fingerprint(asdict(engine))
    index = NearDuplicateIndex(engine)
    opened, ids, doc_ids, documents = [], [], [], {}
    seconds = {"band_keys": 0.0}
    for position, (dataset_id, folder) in enumerate(zip(dataset_ids, stores, strict=True)):
        store, state = BatchStore.open(folder)
        if state.get("fingerprint") != expected:
            raise PretrainMixError(
                f"{folder}: signatures were computed with other settings or another word "
                "hash; delete the folder and re-run"
            )
        opened.append(store)
        documents[dataset_id] = 0
        for lines, batch_ids, lengths, sigs in store.signature_batches():
            keyed = time.perf_counter()
            global_ids = _global_ids(position, lines)
            index.add(
                global_ids,
                band_keys(sigs, engine),
                lengths,
                np.full(len(lines), rank[dataset_id], np.int32),
            )
            seconds["band_keys"] += time.perf_counter() - keyed
            ids.append(global_ids)
            doc_ids.append(batch_ids)
            documents[dataset_id] += len(lines)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    all_doc_ids = np.concatenate(doc_ids) if doc_ids else np.zeros(0, np.int64)

    def texts_of(wanted: np.ndarray) -> Iterator[tuple[np.ndarray, pl.Series]]:
        positions = wanted >> np.int64(LINE_BITS)
        lines = wanted & np.int64((1 << LINE_BITS) - 1)
        for p in np.unique(positions):
            for found, texts in opened[p].texts(lines[positions == p]):
                yield _global_ids(int(p), found), texts

    check, estimate = None, None
    resolving = time.perf_counter()
    if engine.verify:
        check = StoredTextSimilarity(engine, texts_of)
    else:
        estimate = signature_estimate(
            (
                (_global_ids(position, lines), sigs)
                for position, store in enumerate(opened)
                for lines, _, _, sigs in store.signature_batches()
            ),
            np.unique(index.candidate_pairs()),
        )
    result = index.resolve(check, estimate)
    seconds["resolve"] = time.perf_counter() - resolving
    if check is not None:
        seconds["verify"] = check.seconds

    removed_position = result.removed_ids >> np.int64(LINE_BITS)
    survivor_position = result.survivor_ids >> np.int64(LINE_BITS)
    mask = np.int64((1 << LINE_BITS) - 1)
    names = np.array(dataset_ids, dtype=object)
    survivor_doc = all_doc_ids[np.searchsorted(all_ids, result.survivor_ids)]
    decisions = pl.DataFrame(
        {
            "dataset": pl.Series(names[removed_position].tolist(), dtype=pl.String),
            "line": result.removed_ids & mask,
            "duplicate_of": survivor_doc,
            "duplicate_of_dataset": pl.Series(names[survivor_position].tolist(), dtype=pl.String),
            "similarity": np.round(result.similarity, 4),
        },
        schema={
            "dataset": pl.String,
            "line": pl.Int64,
            "duplicate_of": pl.Int64,
            "duplicate_of_dataset": pl.String,
            "similarity": pl.Float64,
        },
    )
    removed_from: dict[str, dict[str, int]] = {dataset_id: {} for dataset_id in dataset_ids}
    counts = decisions.group_by("dataset", "duplicate_of_dataset").len()
    order = counts.sort(["dataset", "len", "duplicate_of_dataset"], descending=[False, True, False])
    for removed, survivor, count in order.rows():
        removed_from[removed][survivor] = count
    seconds["total"] = time.perf_counter() - started
    stats = {
        "datasets": dataset_ids,
        "priority": list(settings["priority"]),
        "documents_by_dataset": documents,
        "removed_by_dataset": {d: sum(removed_from[d].values()) for d in dataset_ids},
        "removed_for": removed_from,  # dataset removed from -> dataset of the kept copy -> count
        **near_dedup_stats(result, engine, int(sum(documents.values())), index.nbytes, seconds),
    }
    with atomic_path(decisions_path) as partial:
        decisions.write_parquet(partial)
    write_json(stats_path, stats)
    return stats


def mixture_decisions(decisions_path: str | Path, dataset_id: str) -> Decisions:
    """The decisions of `run_mixture_job` for one dataset, sorted by raw line."""
    frame = (
        pl.scan_parquet(decisions_path)
        .filter(pl.col("dataset") == dataset_id)
        .sort("line")
        .collect()
    )
    return Decisions(
        lines=frame["line"].to_numpy(),
        duplicate_of=frame["duplicate_of"].to_numpy(),
        similarity=frame["similarity"].to_numpy(),
        duplicate_of_dataset=frame["duplicate_of_dataset"],
    )
