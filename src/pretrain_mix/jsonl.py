"""Reading finished JSON-lines outputs (cleaned, rejected, raw) back in batches of records."""

from __future__ import annotations

import io
import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.io import gzip_reader

BATCH_SIZE = 10_000


class OutputReadError(PretrainMixError):
    """A file written by an earlier step cannot be read back."""


def iter_frames(path: str | Path, batch_size: int = BATCH_SIZE) -> Iterator[pl.DataFrame]:
    """The records of a .jsonl.gz file, `batch_size` lines at a time (memory bounded by it)."""
    first = 1
    try:
        with gzip_reader(path) as handle:
            while lines := list(itertools.islice(handle, batch_size)):
                yield pl.read_ndjson(io.BytesIO(b"".join(lines)), infer_schema_length=None)
                first += len(lines)
    except (OSError, EOFError, zlib.error, pl.exceptions.PolarsError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OutputReadError(
            f"{path}: cannot read lines {first}-{first + batch_size - 1} ({reason});"
            " delete the file and re-run the step that writes it"
        ) from exc


def iter_lines(path: str | Path) -> Iterator[bytes]:
    """The raw lines of a .jsonl.gz file, each ending with a newline."""
    number = 0
    try:
        with gzip_reader(path) as handle:
            for number, line in enumerate(handle, start=1):  # noqa: B007 (used in the error)
                yield line if line.endswith(b"\n") else line + b"\n"
    except (OSError, EOFError, zlib.error) as exc:
        raise OutputReadError(
            f"{path}: cannot read after line {number} ({exc}); delete the file and re-run"
            " the step that writes it"
        ) from exc


def metadata_field(frame: pl.DataFrame, name: str) -> pl.Expr | None:
    """metadata.<name> as an expression, or None when no record of the frame has it."""
    schema = frame.schema.get("metadata")
    if isinstance(schema, pl.Struct) and name in [f.name for f in schema.fields]:
        return pl.col("metadata").struct.field(name)
    return None
