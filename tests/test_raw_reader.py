"""The raw reader: lines cut into pieces exactly, and batches parsed without losing data."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pretrain_mix import raw_reader
from pretrain_mix.raw_reader import LINE, BadRecord, LineChunks, RawInputError, iter_raw_batches


def pieces(data: bytes, per_chunk: int, block: int) -> list[tuple[bytes, int, list[int], list]]:
    """(bytes, first line, ends, every line by span) of each piece, copied while valid."""
    found = []
    with mock.patch.object(raw_reader, "READ_BLOCK", block):
        for raw in LineChunks(io.BytesIO(data), per_chunk):
            first = raw.first_line
            lines = [bytes(raw.data[slice(*raw.span(first + i))]) for i in range(len(raw.ends))]
            found.append((bytes(raw.data), first, list(raw.ends), lines))
    return found


def lines_of(data: bytes) -> list[bytes]:
    """Each line with its newline; the last one may have none."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    return lines[:-1] + ([lines[-1][:-1]] if lines[-1] != b"\n" else [])


def check_pieces(data: bytes, per_chunk: int, block: int) -> None:
    lines = lines_of(data)
    groups = [lines[i : i + per_chunk] for i in range(0, len(lines), per_chunk)]
    found = pieces(data, per_chunk, block)
    assert b"".join(piece for piece, *_ in found) == data
    assert [piece for piece, *_ in found] == [b"".join(group) for group in groups]
    assert [first for _, first, *_ in found] == list(range(1, len(lines) + 1, per_chunk))
    for (_, _, ends, spans), group in zip(found, groups, strict=True):
        assert ends == [sum(map(len, group[: i + 1])) for i in range(len(group))]
        assert spans == group


VARIED = b"a\n\nbb\nccccccccccccccccccccc\n\n\nd e f\n" + b"g" * 50 + b"\nlast"


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("per_chunk", [1, 2, 3, 5, 100])
@pytest.mark.parametrize("data", [VARIED, VARIED + b"\n"], ids=["no final newline", "newline"])
def test_pieces_rebuild_the_stream_line_by_line(data: bytes, per_chunk: int, block: int) -> None:
    check_pieces(data, per_chunk, block)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=20).filter(lambda b: b"\n" not in b), max_size=30),
    final_newline=st.booleans(),
    per_chunk=st.integers(1, 6),
    block=st.integers(1, 24),
)
def test_any_lines_any_read_size(
    lines: list[bytes], final_newline: bool, per_chunk: int, block: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    check_pieces(data, per_chunk, block)


@pytest.mark.parametrize("block", [1, 4, 1 << 20])
def test_small_streams_exactly(block: int) -> None:
    assert pieces(b"", 3, block) == []
    assert pieces(b"\n", 3, block) == [(b"\n", 1, [1], [b"\n"])]
    assert pieces(b"a\nbc", 5, block) == [(b"a\nbc", 1, [2, 4], [b"a\n", b"bc"])]
    assert pieces(b"a\nbc", 1, block) == [(b"a\n", 1, [2], [b"a\n"]), (b"bc", 2, [2], [b"bc"])]
    assert pieces(b"a\nb\n", 2, block) == [(b"a\nb\n", 1, [2, 4], [b"a\n", b"b\n"])]
    assert pieces(b"\n\n\n", 2, block) == [
        (b"\n\n", 1, [1, 2], [b"\n"] * 2),
        (b"\n", 3, [1], [b"\n"]),
    ]


def test_buffer_stays_about_one_piece_long() -> None:
    data = b"".join(b"line %05d\n" % i for i in range(5000))  # 11 bytes a line, 55 kB
    chunks = LineChunks(io.BytesIO(data), 10)
    with mock.patch.object(raw_reader, "READ_BLOCK", 7):
        assert sum(len(raw.ends) for raw in chunks) == 5000
    assert len(chunks.buffer) <= 256


# --- batches of a gzip file -------------------------------------------------------------------


def gz(path: Path, lines: list[Any]) -> Path:
    """A gzip file of `lines`: dicts as json.dumps lines, bytes as they are."""
    with gzip.open(path, "wb") as handle:
        for line in lines:
            handle.write((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n")
    return path


def doc(i: int, **metadata: Any) -> dict[str, Any]:
    return {"text": f"document {i}", "metadata": {"x": i, "source": "s", **metadata}}


def read(path: Path, batch_size: int, skip_bad: bool = True) -> list[raw_reader.RawBatch]:
    return list(iter_raw_batches(path, batch_size, skip_bad))


def exact(value: Any) -> str:
    """Tells apart what == does not: True and 1, 2 and 2.0."""
    return json.dumps(value, sort_keys=True)


def rows(batch: raw_reader.RawBatch) -> list[dict[str, Any]]:
    return batch.records.to_dicts()


@pytest.mark.parametrize("block", [3, 1 << 20])
@pytest.mark.parametrize("batch_size", [1, 3, 4, 100])
def test_records_and_line_numbers_across_batches(
    tmp_path: Path, batch_size: int, block: int
) -> None:
    docs = [doc(i) for i in range(10)]
    path = gz(tmp_path / "raw.jsonl.gz", docs)
    with mock.patch.object(raw_reader, "READ_BLOCK", block):
        batches = read(path, batch_size)
    # Converted only now: earlier batches' records must not share the reused read buffer.
    assert [r for batch in batches for r in rows(batch)] == [
        {**d, LINE: i + 1} for i, d in enumerate(docs)
    ]
    assert [b.first_line for b in batches] == list(range(1, 11, batch_size))
    assert all(b.bad == [] for b in batches)


def changed(change: str, i: int) -> dict[str, Any]:
    """Record i with a field the first batch's schema lacks, or of another type."""
    values = {"float": i + 0.5, "string": f"#{i}", "bool": i % 2 == 0, "list": [i, i]}
    values |= {"object": {"deep": i}, "null": None}
    if change == "top field":
        return {**doc(i), "url": f"https://example.org/{i}"}
    if change == "metadata field":
        return doc(i, added=f"new {i}")
    if change == "string metadata":
        return {"text": f"document {i}", "metadata": f"m{i}"}
    return {"text": f"document {i}", "metadata": {"x": values[change], "source": "s"}}


@pytest.mark.parametrize(
    "change",
    ["top field", "metadata field", "string metadata", "float", "string", "bool", "list"]
    + ["object", "null"],
)
def test_a_later_batch_that_does_not_fit_the_schema_keeps_every_value(
    tmp_path: Path, change: str
) -> None:
    path = gz(tmp_path / "raw.jsonl.gz", [doc(0), doc(1), changed(change, 2), changed(change, 3)])
    first, second = read(path, 2, skip_bad=False)
    assert rows(first) == [{**doc(0), LINE: 1}, {**doc(1), LINE: 2}]
    expected = [{**changed(change, 2), LINE: 3}, {**changed(change, 3), LINE: 4}]
    assert rows(second) == expected and exact(rows(second)) == exact(expected)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"text": 5}', "no string 'text' field"),
        (b'{"text": null, "metadata": {"x": 2, "source": "s"}}', "no string 'text' field"),
        (b'{"metadata": {"x": 2, "source": "s"}}', "no string 'text' field"),
        (b'{"text": ["a"]}', "no string 'text' field"),
        (b"[1]", "no string 'text' field"),
        (b"", "not JSON: Expecting value at column 1"),
        (b"   ", "not JSON: Expecting value at column 4"),
        (b"{oops", "not JSON: Expecting property name enclosed in double quotes at column 2"),
    ],
)
def test_a_bad_line_in_a_later_batch(tmp_path: Path, line: bytes, error: str) -> None:
    path = gz(tmp_path / "raw.jsonl.gz", [doc(0), doc(1), doc(2), line, doc(4)])
    first, second = read(path, 3)
    assert second.first_line == 4 and second.bad == [BadRecord(4, line.decode(), error)]
    assert rows(second) == [{**doc(4), LINE: 5}] and len(first.records) == 3
    taken = []
    with pytest.raises(RawInputError) as caught:
        taken.extend(iter_raw_batches(path, 3, skip_bad=False))
    assert len(taken) == 1 and f"{path}, line 4: {error}" in str(caught.value)


def test_line_numbers_stay_right_after_batches_that_fell_back(tmp_path: Path) -> None:
    lines = [doc(0), doc(1), doc(2), {**doc(3), "url": "u"}, b'{"text": 5}', doc(5)]
    eight = {"text": "document 8", "metadata": {"x": "eight", "source": "s"}}
    # x turns string for the batch of lines 9-10 only: each batch may have its own types.
    lines += [b"", doc(7), eight, {"text": "document 9", "metadata": {"x": "nine"}}, doc(10)]
    batches = read(gz(tmp_path / "raw.jsonl.gz", lines), 2)
    assert [(r[LINE], r["text"]) for b in batches for r in rows(b)] == [
        (n, f"document {n - 1}") for n in (1, 2, 3, 4, 6, 8, 9, 10, 11)
    ]
    bad = [(bad.line_number, bad.line) for b in batches for bad in b.bad]
    assert bad == [(5, '{"text": 5}'), (7, "")]
    assert rows(batches[4])[1]["metadata"] == {"x": "nine", "source": None}


# --- what pyarrow's reader alone would get wrong ------------------------------------------------

BROKEN = b'{"text": "caf\xff", "metadata": {"x": 9, "source": "s"}}'


@pytest.mark.parametrize(
    "before", [pytest.param([], id="first"), pytest.param([doc(0)], id="later")]
)
def test_invalid_utf8_is_replaced(tmp_path: Path, before: list[Any]) -> None:
    batches = read(gz(tmp_path / "raw.jsonl.gz", [*before, BROKEN]), 1)
    # As bytes: converting a str column holding invalid UTF-8 to Python panics.
    texts = [t for b in batches for t in b.records["text"].cast(pl.Binary).to_list()]
    assert texts == [b"document 0"] * len(before) + ["caf\ufffd".encode()]


def test_two_records_on_one_line_and_a_blank_line_are_bad(tmp_path: Path) -> None:
    two = json.dumps(doc(2)).encode() + b" " + json.dumps(doc(3)).encode()
    second = read(gz(tmp_path / "raw.jsonl.gz", [doc(0), doc(1), two, b""]), 2)[1]
    assert [bad.line_number for bad in second.bad] == [3, 4] and second.records.is_empty()


def test_list_fields_survive_a_second_batch(tmp_path: Path) -> None:
    docs = [doc(i, tags=["a", "b"]) for i in range(3)]
    batches = read(gz(tmp_path / "raw.jsonl.gz", docs), 1)
    assert [r for b in batches for r in rows(b)] == [{**d, LINE: i + 1} for i, d in enumerate(docs)]


def test_integers_beyond_int64_are_kept(tmp_path: Path) -> None:
    big = doc(1, id=2**64 - 1)
    batches = read(gz(tmp_path / "raw.jsonl.gz", [doc(0), big]), 2)
    assert rows(batches[0]) == [{**doc(0, id=None), LINE: 1}, {**big, LINE: 2}]
    # In a later batch too: the earlier schema says int64, so that batch is inferred again.
    batches = read(gz(tmp_path / "later.jsonl.gz", [doc(0, id=1), big, doc(2, id=3)]), 1)
    assert [r for b in batches for r in rows(b)] == [
        {**doc(0, id=1), LINE: 1},
        {**big, LINE: 2},
        {**doc(2, id=3), LINE: 3},
    ]


# --- values of different types in one field ---------------------------------------------------


KINDS = {True: "a boolean", "seven": "a string", "{": "an object", "[": "a list"}


@pytest.mark.parametrize("other", [True, "seven", {"deep": 1}, [1]])
@pytest.mark.parametrize("where", ["first", "later"])
def test_types_mixed_within_one_batch_fail_naming_line_and_field(
    tmp_path: Path, other: Any, where: str
) -> None:
    """polars would make one type of them (true next to 3 becomes 1, an object null)."""
    mixed = {"text": "document 2", "metadata": {"x": other, "source": "s"}}
    lines = [doc(0), doc(1), mixed, doc(3)] if where == "later" else [doc(1), mixed]
    path = gz(tmp_path / "raw.jsonl.gz", lines)
    with pytest.raises(RawInputError) as failure:
        read(path, 2)
    kind = KINDS[other if isinstance(other, (bool, str)) else json.dumps(other)[0]]
    first = 3 if where == "later" else 2
    message = str(failure.value)
    assert message.startswith(f"{path}, line {first + 1 if where == 'later' else first}: ")
    assert "metadata.x is" in message and kind in message and "\n" not in message


def test_integers_and_decimals_and_nulls_share_a_field(tmp_path: Path) -> None:
    lines = [doc(0, y=1), doc(1, y=2.5), doc(2, y=None), doc(3, y=4)]
    batches = read(gz(tmp_path / "raw.jsonl.gz", lines), 4)
    assert [r["metadata"]["y"] for r in rows(batches[0])] == [1.0, 2.5, None, 4.0]


@pytest.mark.parametrize(
    "odd",
    [b"null", b" " * 100, b"\xef\xbb\xbf" + json.dumps(doc(2)).encode(), b"[1]"],
    ids=["null", "long blank", "bom", "array"],
)
def test_a_later_line_that_is_not_an_object_is_bad_and_nothing_shifts(
    tmp_path: Path, odd: bytes
) -> None:
    """Found in review: pyarrow with a schema crashed the process on `null`, and a long blank
    line next to two objects on one line kept the row count right."""
    two = json.dumps(doc(3)).encode() + b" " + json.dumps(doc(4)).encode()
    path = gz(tmp_path / "raw.jsonl.gz", [doc(0), doc(1), odd, two, doc(5)])
    batches = read(path, 3)
    assert [(r[LINE], r["text"]) for b in batches for r in rows(b)] == [
        (1, "document 0"),
        (2, "document 1"),
        (5, "document 5"),
    ]
    assert [bad.line_number for b in batches for bad in b.bad] == [3, 4]


def test_an_escaped_lone_surrogate_becomes_a_replacement_character(tmp_path: Path) -> None:
    lone = b'{"text": "b\\ud800x \\ud83d\\ude00", "metadata": {"x": 1, "source": "s"}}'
    for before in ([], [doc(0)]):
        batches = read(gz(tmp_path / "raw.jsonl.gz", [*before, lone]), 1)
        assert rows(batches[-1])[0]["text"] == "b\ufffdx \U0001f600"
