"""Reading a raw sample in batches of documents, with every bad line accounted for."""

from __future__ import annotations

import io
import itertools
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.io import gzip_reader

# Column added to each batch: the record's 1-based line in the raw file (never written out).
LINE = "_pretrain_mix_line"


class RawInputError(PretrainMixError):
    """A raw file or one of its lines cannot be used."""


@dataclass
class BadRecord:
    line_number: int  # 1-based, as editors and `sed -n Np` count
    line: str
    error: str


@dataclass
class RawBatch:
    first_line: int  # 1-based line number of the batch's first line
    records: pl.DataFrame  # good records, input order; column LINE locates each
    bad: list[BadRecord] = field(default_factory=list)


def _check_gzip(path: Path) -> None:
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            raise RawInputError(
                f"{path}: not a gzip file; delete it and re-run stage 1 for this dataset"
            )


# Records as stage 1 (and the original script) write them start with a string "text".
# polars would quietly turn {"text": 5} into "5", so other lines take the exact slow path.
_STARTS_WITH_TEXT = re.compile(rb'\s*\{\s*"text"\s*:\s*"')


def _parse_lines(lines: list[bytes], first_line: int) -> RawBatch:
    """Fast path: polars parses the whole batch; on any doubt, check the lines one by one."""
    numbers = pl.Series(LINE, range(first_line, first_line + len(lines)), pl.Int64)
    if all(_STARTS_WITH_TEXT.match(line) for line in lines):
        try:
            frame = pl.read_ndjson(io.BytesIO(b"".join(lines)), infer_schema_length=None)
            if len(frame) == len(lines) and frame.schema.get("text") == pl.String:
                if frame["text"].null_count() == 0:
                    return RawBatch(first_line, frame.with_columns(numbers))
        except pl.exceptions.PolarsError:
            pass
    good, good_numbers, bad = [], [], []
    for number, raw in zip(numbers, lines, strict=True):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRecord(number, line, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            bad.append(BadRecord(number, line, "no string 'text' field"))
            continue
        good.append(record)
        good_numbers.append(number)
    frame = pl.DataFrame(good, infer_schema_length=None) if good else pl.DataFrame()
    if good:
        frame = frame.with_columns(pl.Series(LINE, good_numbers, pl.Int64))
    return RawBatch(first_line, frame, bad)


def iter_raw_batches(path: str | Path, batch_size: int, skip_bad: bool) -> Iterator[RawBatch]:
    """Batches of `batch_size` lines; a bad line fails the job unless `skip_bad`."""
    path = Path(path)
    _check_gzip(path)
    first_line = 1
    try:
        with gzip_reader(path) as handle:
            while lines := list(itertools.islice(handle, batch_size)):
                batch = _parse_lines(lines, first_line)
                if batch.bad and not skip_bad:
                    bad = batch.bad[0]
                    raise RawInputError(
                        f"{path}, line {bad.line_number}: {bad.error}; fix or delete the file and"
                        " re-run stage 1, or set cleaning.on_bad_record: skip to reject such lines"
                    )
                yield batch
                first_line += len(lines)
    except (OSError, EOFError, zlib.error) as exc:
        raise RawInputError(
            f"{path}: cannot read after line {first_line - 1} ({exc}); the file is damaged:"
            " delete it and re-run stage 1"
        ) from exc
