"""Exact deduplication within a dataset: first occurrence kept, later copies point at it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

# Two 64-bit hashes with different seeds make a 128-bit key: a false match is ~1e-20 per
# pair. (polars' hash is stable within a polars version, which is all one job needs.)
_SEEDS = (0x5EED5EED, 0xD0C5D0C5)


def dedup_keys(frame: pl.DataFrame, settings: Mapping[str, Any]) -> pl.DataFrame:
    """Hashes of the normalised text, optionally case- and whitespace-folded."""
    text = pl.col("text")
    if settings.get("lowercase"):
        text = text.str.to_lowercase()
    if settings.get("fold_whitespace"):
        text = text.str.replace_all(r"\s+", " ").str.strip_chars()
    folded = frame.select(text.alias("_key"))  # computed once, hashed twice
    return folded.select(
        pl.col("_key").hash(seed=seed).alias(f"_h{i}") for i, seed in enumerate(_SEEDS)
    )


class ExactDeduplicator:
    """Remembers the key of every kept document (24 bytes each) across batches."""

    def __init__(self, settings: Mapping[str, Any]):
        self.settings = settings
        self.seen = pl.DataFrame(schema={"_h0": pl.UInt64, "_h1": pl.UInt64, "_first": pl.Int64})

    def duplicate_of(self, candidates: pl.DataFrame, ids: str) -> pl.Series:
        """For each candidate row, the `ids` value of its first occurrence, or null if first."""
        keyed = dedup_keys(candidates, self.settings).with_columns(candidates[ids].alias("_id"))
        first_in_batch = keyed.with_columns(
            _first=pl.col("_id").first().over("_h0", "_h1"),
            _is_first=pl.struct("_h0", "_h1").is_first_distinct(),
        )
        earlier = first_in_batch.join(
            self.seen, on=["_h0", "_h1"], how="left", suffix="_seen", maintain_order="left"
        )
        result = earlier.select(
            pl.when(pl.col("_first_seen").is_not_null())
            .then(pl.col("_first_seen"))
            .when(~pl.col("_is_first"))
            .then(pl.col("_first"))
            .otherwise(None)
            .alias("duplicate_of"),
            "_h0",
            "_h1",
            "_first",
            "_is_first",
            "_first_seen",
        )
        new = result.filter(pl.col("_is_first") & pl.col("_first_seen").is_null())
        self.seen = pl.concat([self.seen, new.select("_h0", "_h1", "_first")], rechunk=False)
        return result["duplicate_of"]
