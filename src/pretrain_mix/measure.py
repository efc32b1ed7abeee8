"""Per-dataset measurements for the summary, counted from the output files themselves.

Documents, characters, words (whitespace-separated), UTF-8 bytes and optionally tokens of the
kept documents; reasons counted from the rejected file; log-scale length histograms of the raw
and the kept texts; languages of the kept documents (metadata.language, where stage 2 sets it).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.io import write_json
from pretrain_mix.jsonl import iter_frames, metadata_field

log = logging.getLogger(__name__)

UNIDENTIFIED = "unidentified"
UNKNOWN_REASON = "unknown"
# Length histograms: bins of 0.1 in log10(characters), from 1 to 10^7 characters.
BINS_PER_DECADE = 10
DECADES = 7
N_BINS = BINS_PER_DECADE * DECADES
TOKENIZE_CHUNK = 1_000  # texts per encode_batch call: bounds the encodings held at once


class TokenizerError(PretrainMixError):
    """The configured tokenizer cannot be loaded."""


def length_bin_edges() -> list[float]:
    """Bin edges in characters: 10^(i/10), i = 0..70 (the first bin also holds empty texts)."""
    return [round(10 ** (i / BINS_PER_DECADE), 3) for i in range(N_BINS + 1)]


def length_histogram(lengths: pl.Series) -> np.ndarray:
    index = (
        (lengths.clip(1).cast(pl.Float64).log(10) * BINS_PER_DECADE)
        .floor()
        .clip(0, N_BINS - 1)
        .cast(pl.Int64)
    )
    return np.bincount(index.to_numpy(), minlength=N_BINS)


def local_tokenizer_files(name: str | None) -> list[str]:
    """The local tokenizer.json a `tokenizer:` setting names, if any (a Hub id names none)."""
    if not name:
        return []
    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    return [str(path)] if path.is_file() else []


def load_tokenizer(name: str) -> Any:
    """A `tokenizers.Tokenizer` from a local tokenizer.json (or its folder), else a Hub id."""
    from tokenizers import Tokenizer

    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception as exc:
            raise TokenizerError(
                f"tokenizer: {path} is not a tokenizers JSON file ({exc}); point `tokenizer:` at"
                " a tokenizer.json saved by the `tokenizers` library"
            ) from None
    if name.endswith(".json") or name.startswith((".", "/", "~")):
        raise TokenizerError(f"tokenizer: file {name} not found; fix the `tokenizer:` path")
    try:
        return Tokenizer.from_pretrained(name)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TokenizerError(
            f"tokenizer: cannot load '{name}' from the Hugging Face Hub ({reason}); check the id,"
            " the network (HF_HUB_OFFLINE), HF_TOKEN for gated models, or use a local"
            " tokenizer.json path"
        ) from None


def count_tokens(tokenizer: Any, texts: list[str]) -> int:
    encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
    total = 0
    for start in range(0, len(texts), TOKENIZE_CHUNK):
        encodings = encode(texts[start : start + TOKENIZE_CHUNK], add_special_tokens=False)
        total += sum(len(encoding.ids) for encoding in encodings)
    return total


def _text_stats(frame: pl.DataFrame) -> pl.DataFrame:
    text = pl.col("text")
    return frame.select(
        text.str.len_chars().alias("n_chars"),
        text.str.len_bytes().alias("n_bytes"),
        text.str.count_matches(r"\S+").alias("n_words"),
    )


def measure_raw(path: str | Path) -> dict[str, Any]:
    documents, characters, histogram = 0, 0, np.zeros(N_BINS, dtype=np.int64)
    for frame in iter_frames(path):
        lengths = frame["text"].str.len_chars()
        documents += len(frame)
        characters += int(lengths.sum())
        histogram += length_histogram(lengths)
    return {
        "documents": documents,
        "characters": characters,
        "length_histogram": histogram.tolist(),
    }


def measure_kept(path: str | Path, tokenizer: Any | None) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    histogram = np.zeros(N_BINS, dtype=np.int64)
    for frame in iter_frames(path):
        stats = _text_stats(frame)
        totals["documents"] += len(frame)
        for column, key in (("n_chars", "characters"), ("n_bytes", "bytes"), ("n_words", "words")):
            totals[key] += int(stats[column].sum())
        histogram += length_histogram(stats["n_chars"])
        language = metadata_field(frame, "language")
        if language is None:
            languages[UNIDENTIFIED] += len(frame)
        else:
            values = frame.select(language.cast(pl.String).fill_null(UNIDENTIFIED)).to_series()
            languages.update(dict(values.value_counts().iter_rows()))
        if tokenizer is not None:
            totals["tokens"] += count_tokens(tokenizer, frame["text"].to_list())
    return {
        "documents": totals["documents"],
        "characters": totals["characters"],
        "words": totals["words"],
        "bytes": totals["bytes"],
        "tokens": totals["tokens"] if tokenizer is not None else None,
        "length_histogram": histogram.tolist(),
        "languages": dict(languages.most_common()),
    }


def measure_rejected(path: str | Path) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    documents = 0
    for frame in iter_frames(path):
        documents += len(frame)
        reason = metadata_field(frame, "filter_reason")
        if reason is None:
            reasons[UNKNOWN_REASON] += len(frame)
            continue
        values = frame.select(reason.cast(pl.String).fill_null(UNKNOWN_REASON)).to_series()
        for value, count in values.value_counts().sort(values.name).iter_rows():
            reasons[value] += count
    return {"documents": documents, "by_reason": dict(reasons)}


def run_measure_job(
    dataset_id: str,
    raw_path: str | Path,
    cleaned_path: str | Path,
    rejected_path: str | Path,
    tokenizer: str | None,
    output_path: str | Path,
) -> dict[str, Any]:
    """What the `measure` rule does: one JSON document per dataset."""
    loaded = load_tokenizer(tokenizer) if tokenizer else None
    document = {
        "dataset_id": dataset_id,
        "tokenizer": tokenizer,
        "raw": measure_raw(raw_path),
        "kept": measure_kept(cleaned_path, loaded),
        "rejected": measure_rejected(rejected_path),
    }
    write_json(output_path, document)
    log.info(
        "%s: %d raw, %d kept (%d characters, %d words), %d rejected",
        dataset_id,
        document["raw"]["documents"],
        document["kept"]["documents"],
        document["kept"]["characters"],
        document["kept"]["words"],
        document["rejected"]["documents"],
    )
    return document
