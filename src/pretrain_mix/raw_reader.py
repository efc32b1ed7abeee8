"""Reading a raw sample in batches of documents, with every bad line accounted for."""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.json as pj

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
class RawLines:
    """A batch's lines as read, back to back in `data`; line `first_line + i` ends at
    `ends[i]` (after its newline). A view of the reader's buffer: valid until the next batch
    is read."""

    data: memoryview
    first_line: int
    ends: list[int]
    # Whether every line starts with "{": the one shape the schema path takes (a blank line,
    # `null`, a byte-order mark or leading spaces send the batch the careful way).
    all_objects: bool = True

    def span(self, line_number: int) -> tuple[int, int]:
        index = line_number - self.first_line
        return (self.ends[index - 1] if index else 0), self.ends[index]


@dataclass
class RawBatch:
    first_line: int  # 1-based line number of the batch's first line
    records: pl.DataFrame  # good records, input order; column LINE locates each
    bad: list[BadRecord] = field(default_factory=list)
    raw: RawLines | None = None


def _check_gzip(path: Path) -> None:
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            raise RawInputError(
                f"{path}: not a gzip file; delete it and re-run stage 1 for this dataset"
            )


# Records as stage 1 (and the original script) write them start with a string "text".
# polars would quietly turn {"text": 5} into "5", so other lines take the exact slow path.
_STARTS_WITH_TEXT = re.compile(rb'\s*\{\s*"text"\s*:\s*"')
# Decompressed bytes read at a time: under glibc's mmap threshold, so each read reuses
# freed memory instead of mapping fresh pages and faulting them in.
READ_BLOCK = 1 << 20
OPEN_BRACE = ord("{")


class LineChunks:
    """The lines of a byte stream, `lines_per_chunk` at a time (the last piece may have fewer,
    and no final newline), as RawLines over one reused buffer.

    Line ends are found with bytearray.find (memchr), not with a Python object per line, and
    the buffer is reused from batch to batch: a batch is some 100 MB, and a fresh one each
    time would cost as much in page faults as decompressing it.
    """

    def __init__(self, stream: BinaryIO, lines_per_chunk: int):
        self.stream, self.lines_per_chunk = stream, lines_per_chunk
        self.buffer = bytearray()

    def __iter__(self) -> Iterator[RawLines]:
        filled = 0  # bytes of the buffer in use
        start = end = 0  # the current piece, and how far it has been searched
        ends: list[int] = []  # line ends so far in the current piece, from its start
        all_objects = True  # whether every line of the current piece so far starts with {
        first_line = 1
        while True:
            if filled + READ_BLOCK > len(self.buffer):  # a new buffer: views may hold the old
                grown = bytearray(max(filled + READ_BLOCK, 2 * len(self.buffer)))
                grown[:filled] = self.buffer[:filled]
                self.buffer = grown
            with memoryview(self.buffer) as view:
                read = self.stream.readinto(view[filled : filled + READ_BLOCK])
            if not read:
                break
            filled += read
            while (found := self.buffer.find(b"\n", end, filled)) >= 0:
                all_objects = all_objects and self.buffer[end] == OPEN_BRACE
                end = found + 1
                ends.append(end - start)
                if len(ends) == self.lines_per_chunk:
                    with memoryview(self.buffer) as view:
                        yield RawLines(view[start:end], first_line, ends, all_objects)
                    start, first_line, ends, all_objects = end, first_line + len(ends), [], True
            # Move the unfinished piece to the front, so the buffer stays one batch long.
            if start:
                self.buffer[: filled - start] = self.buffer[start:filled]
                filled, end, start = filled - start, end - start, 0
        if filled:
            if not ends or ends[-1] != filled:  # a last line without a newline
                all_objects = all_objects and self.buffer[end] == OPEN_BRACE
                ends.append(filled)
            with memoryview(self.buffer) as view:
                yield RawLines(view[:filled], first_line, ends, all_objects)


def split_lines(chunk: memoryview) -> list[bytes]:
    lines = bytes(chunk).split(b"\n")
    return lines[:-1] if chunk[-1:] == b"\n" else lines


def _with_line_numbers(frame: pl.DataFrame, first_line: int) -> pl.DataFrame:
    return frame.with_columns(
        pl.int_range(first_line, first_line + len(frame), dtype=pl.Int64).alias(LINE)
    )


def _strings_valid(column: pl.Series) -> bool:
    """Whether every string in the column (nested ones too) is valid UTF-8, which pyarrow's
    JSON reader does not check. polars checks it, at memory speed, casting bytes to String."""
    dtype = column.dtype
    if dtype == pl.String:
        try:
            column.cast(pl.Binary).cast(pl.String)
        except pl.exceptions.ComputeError:
            return False
    elif isinstance(dtype, pl.Struct):
        return all(_strings_valid(field) for field in column.struct.unnest().iter_columns())
    elif isinstance(dtype, pl.List):
        return _strings_valid(column.explode())
    return True


def json_schema(frame: pl.DataFrame) -> pa.Schema | None:
    """The frame's schema in the types pyarrow's JSON reader converts to (it cannot make
    large lists); None if it has no Arrow form (polars' Int128 for integers beyond 64 bits)."""

    def readable(dtype: pa.DataType) -> pa.DataType:
        if pa.types.is_large_list(dtype) or pa.types.is_list(dtype):
            return pa.list_(readable(dtype.value_type))
        if pa.types.is_struct(dtype):
            return pa.struct([f.with_type(readable(f.type)) for f in dtype])
        return dtype

    try:
        schema = frame.to_arrow().schema
    except (pa.ArrowException, pl.exceptions.PolarsError):
        return None
    return pa.schema([f.with_type(readable(f.type)) for f in schema])


def _read_json(data: bytes | memoryview, options: pj.ParseOptions | None = None) -> pa.Table:
    """pyarrow's JSON reader over a whole batch, on this thread, in one block (a batch over
    2 GiB fails, and is then read the careful way)."""
    one_block = pj.ReadOptions(use_threads=False, block_size=min(len(data) + 1, 2**31 - 1))
    source = pa.BufferReader(pa.py_buffer(data))
    return pj.read_json(source, read_options=one_block, parse_options=options)


def _parse_with_schema(raw: RawLines, schema: pa.Schema) -> pl.DataFrame | None:
    """Every line parsed with a known schema, or None if any line does not fit it exactly.

    Parsing with a schema is a single pass, twice as fast as polars inferring one. pyarrow
    (unlike polars given a schema) fails on a field the schema lacks or a changed type, so
    nothing is dropped or coerced: such a batch goes the inferring way instead. pyarrow
    skips blank lines and takes two objects on one line, so every line must start with an
    object (then no line can give no row, and one row a line means one object a line);
    and its strings must be valid UTF-8. Only such strict input may be spliced into rejected
    lines (RawBatch.raw), so the careful paths do not pass the raw lines on.
    """
    if not raw.all_objects:
        return None
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    try:
        table = _read_json(raw.data, options)
    except pa.ArrowInvalid:
        return None
    if table.num_rows != len(raw.ends) or table.column("text").null_count:
        return None
    frame: pl.DataFrame = pl.from_arrow(table)  # type: ignore[assignment]
    return frame if all(_strings_valid(column) for column in frame.iter_columns()) else None


def _parse_inferring(lines: list[bytes]) -> pl.DataFrame | None:
    """polars infers the schema and parses; None on any doubt (then check line by line).

    polars makes one type of a field whose values differ in type (true next to 3 becomes 1,
    an object next to 3 null). pyarrow's inference refuses such a batch, so it checks first:
    one more pass, for the first batch and for those that do not fit the schema before.
    """
    if not all(_STARTS_WITH_TEXT.match(line) for line in lines):
        return None
    joined = b"\n".join(lines)
    try:
        _read_json(joined)
        frame = pl.read_ndjson(io.BytesIO(joined), infer_schema_length=None)
    except (pa.ArrowException, pl.exceptions.PolarsError):
        return None
    if len(frame) != len(lines) or frame.schema.get("text") != pl.String:
        return None
    return frame if frame["text"].null_count() == 0 else None


class MixedTypesError(RawInputError):
    """A field has values of different JSON types within one batch."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def check_one_type_per_field(records: list[dict[str, Any]], numbers: list[int]) -> None:
    """Fail, naming the line and the field, where a value's JSON type differs from the type
    the field had on an earlier line (null goes with anything, integers with decimals): a
    frame column has one type, and polars would quietly change one of the values."""
    seen: dict[str, tuple[str, int]] = {}

    def visit(value: Any, field: str, number: int) -> None:
        if value is None:
            return
        kind = _kind(value)
        earlier = seen.setdefault(field, (kind, number))
        if earlier[0] != kind:
            raise MixedTypesError(
                f"line {number}: {field} is {kind} here but {earlier[0]} on line {earlier[1]};"
                " a field needs one JSON type (or null) within a batch of cleaning.batch_size"
                " lines: make it one type in the raw file, or re-run stage 1"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{field}.{key}" if field else key, number)
        elif isinstance(value, list):
            for item in value:
                visit(item, f"{field}[]", number)

    for record, number in zip(records, numbers, strict=True):
        visit(record, "", number)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """json.loads makes an escaped lone surrogate ("\\ud800") into a str that no UTF-8 can
    hold; it becomes U+FFFD, as invalid UTF-8 bytes do."""
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    return value


def _parse_line_by_line(lines: list[bytes], first_line: int) -> RawBatch:
    good, good_numbers, bad = [], [], []
    for number, raw in enumerate(lines, first_line):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRecord(number, line, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if "\\ud" in line.lower():  # only an escape can make a lone surrogate
            record = without_lone_surrogates(record)
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            bad.append(BadRecord(number, line, "no string 'text' field"))
            continue
        good.append(record)
        good_numbers.append(number)
    check_one_type_per_field(good, good_numbers)
    frame = pl.DataFrame(good, infer_schema_length=None) if good else pl.DataFrame()
    if good:
        frame = frame.with_columns(pl.Series(LINE, good_numbers, pl.Int64))
    return RawBatch(first_line, frame, bad)


class BatchParser:
    """Parses batches, fastest way first: with the schema an earlier batch had, then with
    polars inferring one, then line by line to find exactly which lines are bad."""

    def __init__(self) -> None:
        self.schema: pa.Schema | None = None
        self.schema_readable = True  # False once pyarrow cannot read into such a schema

    def parse(self, raw: RawLines) -> RawBatch:
        first_line = raw.first_line
        if self.schema is not None:
            try:
                frame = _parse_with_schema(raw, self.schema)
            except pa.ArrowNotImplementedError:  # a type pyarrow's JSON reader cannot make
                frame, self.schema, self.schema_readable = None, None, False
            if frame is not None:
                return RawBatch(first_line, _with_line_numbers(frame, first_line), raw=raw)
        split = split_lines(raw.data)
        frame = _parse_inferring(split)
        if frame is not None:
            if self.schema_readable:
                self.schema = json_schema(frame)
            return RawBatch(first_line, _with_line_numbers(frame, first_line), raw=raw)
        # Lines read one by one may have been repaired (invalid UTF-8, lone surrogates) or
        # taken loosely (NaN): their raw bytes are not passed on to be copied.
        return _parse_line_by_line(split, first_line)


def iter_raw_batches(path: str | Path, batch_size: int, skip_bad: bool) -> Iterator[RawBatch]:
    """Batches of `batch_size` lines; a bad line fails the job unless `skip_bad`."""
    path = Path(path)
    _check_gzip(path)
    first_line = 1
    parser = BatchParser()
    try:
        with gzip_reader(path) as handle:
            for raw in LineChunks(handle, batch_size):
                batch = parser.parse(raw)
                if batch.bad and not skip_bad:
                    bad = batch.bad[0]
                    raise RawInputError(
                        f"{path}, line {bad.line_number}: {bad.error}; fix or delete the file and"
                        " re-run stage 1, or set cleaning.on_bad_record: skip to reject such lines"
                    )
                yield batch
                first_line += len(raw.ends)
    except MixedTypesError as exc:
        raise RawInputError(f"{path}, {exc}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise RawInputError(
            f"{path}: cannot read after line {first_line - 1} ({exc}); the file is damaged:"
            " delete it and re-run stage 1"
        ) from exc
