"""A folder ready for the Hugging Face Hub: size-bounded parquet shards and a dataset card.

Layout: data/<id>/train-00000-of-0000N.parquet per dataset, and a README.md whose YAML
`configs:` makes `datasets.load_dataset(folder_or_repo, "<id>")` load one source.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.jsonl import iter_frames
from pretrain_mix.summary import dataset_table, mixture_table, read_json, reasons_table

log = logging.getLogger(__name__)

SPLIT = "train"
COMPRESSION = "zstd"
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


class ExportError(PretrainMixError):
    """The export cannot be written as configured."""


def parse_size(value: int | str) -> int:
    """Bytes from 500000, "500MB" or "1GiB" (decimal units, as datasets' max_shard_size)."""
    if isinstance(value, int) and value > 0:
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMG]i?B|B)\s*", str(value))
    if not match:
        raise ExportError(
            f"export.max_shard_size: {value!r} is not a size; use bytes or e.g. '500MB', '1GiB'"
        )
    return max(1, int(float(match[1]) * _UNITS[match[2].upper()]))


def unified_schema(path: str | Path) -> pl.Schema:
    """One schema for every record of a file: fields missing or null in some batches merged."""
    schemas: dict[str, pl.Schema] = {}
    for frame in iter_frames(path):
        schemas.setdefault(repr(frame.schema), frame.schema)
    if not schemas:
        return pl.Schema({"text": pl.String})
    empties = [pl.DataFrame(schema=schema) for schema in schemas.values()]
    return pl.concat(empties, how="diagonal_relaxed").schema


def _plain(kind: pa.DataType) -> pa.DataType:
    """large_string -> string (what datasets calls Value('string')), inside structs too."""
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct([field.with_type(_plain(field.type)) for field in kind])
    if pa.types.is_large_list(kind) or pa.types.is_list(kind):
        return pa.list_(_plain(kind.value_type))
    return kind


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    arrow = pl.DataFrame(schema=schema).to_arrow().schema
    return pa.schema([field.with_type(_plain(field.type)) for field in arrow])


def arrow_batches(path: str | Path, schema: pl.Schema) -> Iterator[pa.Table]:
    template, target = pl.DataFrame(schema=schema), arrow_schema(schema)
    for frame in iter_frames(path):
        yield pl.concat([template, frame], how="diagonal_relaxed").to_arrow().cast(target)


def _row_sizes(table: pa.Table) -> list[int]:
    """In-memory bytes per row: its text, plus an even share of the other columns."""
    text = pc.binary_length(table["text"].cast(pa.large_binary())).fill_null(0)
    text_bytes = [int(n) for n in text.to_pylist()]
    rest = max(table.nbytes - sum(text_bytes), 0) / max(len(text_bytes), 1)
    return [int(n + rest) + 1 for n in text_bytes]


class ShardWriter:
    """Parquet shards of at most `max_bytes` in-memory bytes (a larger single row gets its own)."""

    def __init__(self, folder: Path, schema: pa.Schema, max_bytes: int):
        self.folder, self.schema, self.max_bytes = folder, schema, max_bytes
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.size = 0

    def _open(self) -> None:
        self.close_shard()
        path = self.folder / f"{SPLIT}-{len(self.paths):05d}.parquet"
        self.paths.append(path)
        self.writer = pq.ParquetWriter(path, self.schema, compression=COMPRESSION)
        self.size = 0

    def close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def write(self, table: pa.Table) -> None:
        sizes = _row_sizes(table)
        start = 0
        while start < len(sizes):
            if self.writer is None or (self.size and self.size + sizes[start] > self.max_bytes):
                self._open()
            end, size = start, self.size
            while end < len(sizes) and (size + sizes[end] <= self.max_bytes or size == 0):
                size += sizes[end]
                end += 1
            self.writer.write_table(table.slice(start, end - start))
            self.size, start = size, end

    def finish(self) -> list[Path]:
        """Close, write an empty shard for an empty dataset, and name shards `-of-N`."""
        if not self.paths:
            self._open()
            self.writer.write_table(self.schema.empty_table())
        self.close_shard()
        total = len(self.paths)
        named = []
        for index, path in enumerate(self.paths):
            final = path.with_name(f"{SPLIT}-{index:05d}-of-{total:05d}.parquet")
            path.rename(final)
            named.append(final)
        return named


def export_dataset(cleaned_path: str | Path, folder: Path, max_bytes: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    schema = unified_schema(cleaned_path)
    writer = ShardWriter(folder, arrow_schema(schema), max_bytes)
    for table in arrow_batches(cleaned_path, schema):
        writer.write(table)
    return writer.finish()


# --- Dataset card -----------------------------------------------------------------------


def card_metadata(summary: Mapping, settings: Mapping) -> dict[str, Any]:
    languages = sorted({d["language"] for d in summary["datasets"] if d["language"]})
    metadata: dict[str, Any] = {}
    if settings.get("pretty_name"):
        metadata["pretty_name"] = settings["pretty_name"]
    metadata["license"] = settings.get("license") or "other"
    if languages:
        metadata["language"] = languages
    metadata["task_categories"] = ["text-generation"]
    metadata["tags"] = ["pretraining", "pretrain-mix"]
    metadata["configs"] = [
        {
            "config_name": d["id"],
            "data_files": [{"split": SPLIT, "path": f"data/{d['id']}/{SPLIT}-*.parquet"}],
        }
        for d in summary["datasets"]
    ]
    return metadata


def dataset_card(summary: Mapping, settings: Mapping, repo_id: str | None) -> str:
    title = settings.get("pretty_name") or (repo_id or "Pretraining mixture").split("/")[-1]
    first = summary["datasets"][0]["id"]
    where = repo_id or "path/to/this/folder"
    sources = [
        {
            "id": d["id"],
            "source": d["source"],
            "config": d["config"],
            "split": d["split"],
            "weight": d["weight"],
            "language": d["language"],
            "stage2": d["settings"],
        }
        for d in summary["datasets"]
    ]
    front = yaml.safe_dump(card_metadata(summary, settings), sort_keys=False, allow_unicode=True)
    settings_yaml = yaml.safe_dump(sources, sort_keys=False, allow_unicode=True)
    return "\n".join(
        [
            f"---\n{front}---",
            "",
            f"# {title}",
            "",
            f"A pretraining mixture of {len(summary['datasets'])} sources built with"
            f" pretrain-mix: {summary['target_samples']:,} documents sampled uniformly by"
            f" weight (seed {summary['seed']}), then normalised, filtered and deduplicated;"
            f" {summary['totals']['kept']:,} documents kept. Each source is one config.",
            "",
            "```python",
            "from datasets import load_dataset",
            "",
            f'ds = load_dataset("{where}", "{first}", split="{SPLIT}")',
            "```",
            "",
            "## Mixture: target share vs achieved share",
            "",
            mixture_table(summary),
            "",
            "## Documents per source",
            "",
            dataset_table(summary),
            "",
            "## Rejected documents",
            "",
            reasons_table(summary),
            "",
            "## Pipeline settings",
            "",
            "Per source: where it was read from, its weight, and the stage 2 settings"
            " (profile, normalisers, filters in order with their thresholds, deduplication).",
            "",
            "```yaml",
            settings_yaml.rstrip(),
            "```",
            "",
            "Record fields: `text` and `metadata` (source, config, split, dataset_id, weight,"
            " original_index = row in the source split, shard, row_in_shard, and the source"
            " columns listed in the config).",
            "",
        ]
    )


@contextmanager
def _folder_when_complete(folder: str | Path) -> Iterator[Path]:
    """A temporary folder renamed to `folder` only if the block succeeds."""
    final = Path(folder)
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def run_export_job(
    summary_path: str | Path,
    cleaned_paths: Sequence[str | Path],
    settings: Mapping[str, Any],
    repo_id: str | None,
    folder: str | Path,
) -> dict[str, list[str]]:
    """What the `export` rule does: the folder appears complete or not at all."""
    summary = read_json(summary_path)
    max_bytes = parse_size(settings.get("max_shard_size", "500MB"))
    shards: dict[str, list[str]] = {}
    with _folder_when_complete(folder) as partial:
        for dataset, path in zip(summary["datasets"], cleaned_paths, strict=True):
            written = export_dataset(path, partial / "data" / dataset["id"], max_bytes)
            shards[dataset["id"]] = [str(p.relative_to(partial)) for p in written]
            log.info("%s: %d rows in %d shard(s)", dataset["id"], dataset["kept"], len(written))
        card = dataset_card(summary, settings, repo_id)
        (partial / "README.md").write_text(card, encoding="utf-8")
    return shards
