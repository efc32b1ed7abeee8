"""Rejected records as JSON lines: the record as it was read, plus the verdict.

A rejected record is its raw line with the verdict fields (filter_reason, duplicate_of, ...)
added at the end of its `metadata` object. When the line is the stage 1 shape, {"text": ...,
"metadata": {...}} with metadata last, the fields are spliced into the line's own bytes:
most of a sample is usually rejected, and copying its lines is several times cheaper than
serialising them again. Any other line is serialised from its parsed record (the same
fields, in the same order); the two ways give the same bytes for lines stage 1 wrote.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from pretrain_mix.raw_reader import LINE, RawLines

WHITESPACE = b" \t\r\n"
CLOSING = b"}}"  # the end of metadata, then of the record


def splicable(records: pl.DataFrame, internal: set[str], verdict_names: list[str]) -> bool:
    """Whether lines of this schema can take the verdict by splicing.

    metadata must be an object without any of the verdict's fields, and the only object in
    the record: then a line that ends with `}}` ends with its metadata object.
    """
    schema = {name: dtype for name, dtype in records.schema.items() if name not in internal}
    metadata = schema.pop("metadata", None)
    if not isinstance(metadata, pl.Struct) or any(
        isinstance(dtype, pl.Struct) for dtype in schema.values()
    ):
        return False
    return not {f.name for f in metadata.fields} & set(verdict_names)


def verdict_members(verdict: pl.DataFrame) -> list[bytes]:
    """Each row's verdict as JSON object members, `"a":1,"b":null`, serialised by polars."""
    if verdict.is_empty():
        return []
    buffer = io.BytesIO()
    verdict.write_ndjson(buffer)
    return [line[1:-1] for line in buffer.getvalue().splitlines()]


def spliced(raw: RawLines, line_number: int, members: bytes) -> list[bytes | memoryview] | None:
    """The pieces of the line with `members` added to its metadata, if it ends with `}}`."""
    start, end = raw.span(line_number)
    data = raw.data
    while end > start and data[end - 1] in WHITESPACE:
        end -= 1
    if end - start < 4 or data[end - 2 : end] != CLOSING:
        return None
    before = end - 3  # the last character inside metadata; {} and { } have no members yet
    while before > start and data[before] in WHITESPACE:
        before -= 1
    comma = b"" if data[before] == ord("{") else b","
    return [data[start : end - 2], comma, members, b"}}\n"]


@dataclass
class Rejected:
    """A batch's rejected rows as judged (internal columns included, LINE among them), the
    verdict fields to add to their metadata, and how to build whole records of them."""

    rows: pl.DataFrame
    verdict: Mapping[str, pl.Expr]
    internal: set[str]
    whole_records: Callable[[pl.DataFrame], pl.DataFrame]  # with the verdict; LINE kept


def rejected_bytes(
    rejected: Rejected, raw: RawLines | None, other_lines: list[tuple[int, bytes]]
) -> bytes:
    """The JSON lines of every rejected row and of `other_lines` (line number, line: bad
    lines), in line order. Lines that cannot be spliced are serialised whole."""
    rows, verdict = rejected.rows, rejected.verdict
    numbers = rows[LINE].to_list()
    pieces: list[list[bytes | memoryview] | None] = [None] * len(numbers)
    if raw is not None and splicable(rows, rejected.internal, list(verdict)):
        members = verdict_members(rows.select(**verdict))
        pieces = [spliced(raw, n, m) for n, m in zip(numbers, members, strict=True)]
    others = [i for i, p in enumerate(pieces) if p is None]
    if not others and not other_lines:  # the usual case: one copy of every line
        return b"".join(piece for line in pieces for piece in line)  # type: ignore[union-attr]
    lines = [(n, b"".join(p)) for n, p in zip(numbers, pieces, strict=True) if p is not None]
    if others:
        buffer = io.BytesIO()
        rejected.whole_records(rows[others]).drop(LINE).write_ndjson(buffer)
        serialised = buffer.getvalue().splitlines(keepends=True)
        lines += [(numbers[i], line) for i, line in zip(others, serialised, strict=True)]
    lines += other_lines
    return b"".join(line for _number, line in sorted(lines, key=lambda pair: pair[0]))
