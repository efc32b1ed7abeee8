"""Rejected records, end to end through a clean job: each is its raw record plus the verdict,
whether the verdict was spliced into the raw line or the record serialised again."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from snakemake.utils import validate

from pretrain_mix.clean import run_clean_job
from pretrain_mix.config import DatasetSpec
from pretrain_mix.profiles import clean_settings

LONG = "The garden is quiet in the early morning and the roses need water."
Record = dict[str, Any]


def settings(**cleaning: Any) -> dict[str, Any]:
    """Only the length filter (min 30 characters) and exact dedup; bad lines rejected."""
    config: dict[str, Any] = {
        "datasets": [{"name": "json", "data_files": "x", "weight": 1}],
        "filtering": {"min_length": 30},
        "profiles": {"p": {"filters": ["length"]}},
        "cleaning": {"on_bad_record": "skip", **cleaning},
    }
    validate(config, str(REPO / "config" / "schema.yaml"))
    return clean_settings(config, DatasetSpec(id="d", name="json", weight=1, profile="p"))


def rejected_file(tmp_path: Path, lines: list[bytes], name: str = "out", **cleaning: Any) -> bytes:
    """The decompressed rejected file of a clean job over `lines`."""
    raw = tmp_path / f"{name}.jsonl.gz"
    with gzip.open(raw, "wb") as handle:
        handle.write(b"".join(line + b"\n" for line in lines))
    out = tmp_path / name
    run_clean_job(
        raw, settings(**cleaning), out / "kept.jsonl.gz", out / "rej.jsonl.gz", out / "stats.json"
    )
    return gzip.decompress((out / "rej.jsonl.gz").read_bytes())


def parsed(data: bytes) -> list[Record]:
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def verdict(record: Record, reason: str, duplicate_of: int | None = None) -> Record:
    metadata = {k: v for k, v in record.get("metadata", {}).items() if k != "filter_reason"}
    metadata |= {"filter_reason": reason, "duplicate_of": duplicate_of}
    return {**record, "metadata": metadata}


def compact(record: Record) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def spaced(record: Record) -> bytes:
    return json.dumps(record).encode()


SHAPES: dict[str, Callable[[Record], bytes]] = {
    "compact": compact,
    "json.dumps": spaced,
    "trailing spaces": lambda r: compact(r) + b"  ",
    "trailing \\r": lambda r: spaced(r) + b"\r",
    "trailing \\t \\r": lambda r: compact(r) + b"\t \r",
    "leading spaces": lambda r: b"  " + compact(r),
    "metadata first": lambda r: compact({"metadata": r["metadata"], **r}),
}


def documents(metadata: Callable[[int], Record]) -> list[Record]:
    """too short, kept, exact duplicate of the kept one, too short (non-ASCII)."""
    texts = ["short", LONG, LONG, 'Hà Nội ngắn — “é” \\ "q"']
    return [{"text": text, "metadata": metadata(i)} for i, text in enumerate(texts)]


def verdicts(docs: list[Record], duplicate_of: int) -> list[Record]:
    return [
        verdict(docs[0], "too_short"),
        verdict(docs[2], "exact_duplicate", duplicate_of),
        verdict(docs[3], "too_short"),
    ]


@pytest.mark.parametrize("batch_size", [2, 1000])
@pytest.mark.parametrize("shape", SHAPES)
def test_rejected_lines_are_the_records_plus_the_verdict(
    tmp_path: Path, shape: str, batch_size: int
) -> None:
    docs = documents(lambda i: {"source": "s", "original_index": 10 * i, "tags": "a,b"})
    data = rejected_file(tmp_path, [SHAPES[shape](d) for d in docs], batch_size=batch_size)
    assert parsed(data) == verdicts(docs, duplicate_of=10)


@pytest.mark.parametrize("shape", ["compact", "json.dumps", "trailing \\r"])
def test_empty_metadata_takes_the_verdict_without_a_comma(tmp_path: Path, shape: str) -> None:
    docs = documents(lambda i: {})
    data = rejected_file(tmp_path, [SHAPES[shape](d) for d in docs])
    assert parsed(data) == verdicts(docs, duplicate_of=2)  # no original_index: the line


def test_records_without_metadata_get_one(tmp_path: Path) -> None:
    docs = [{"text": d["text"]} for d in documents(lambda i: {})]
    data = rejected_file(tmp_path, [compact(d) for d in docs])
    assert parsed(data) == verdicts(docs, duplicate_of=2)


@pytest.mark.parametrize(
    "shape",
    [
        lambda r: {**r, "extra": {"n": len(r["text"])}},  # ends with }}: not metadata's
        lambda r: {"text": r["text"], "extra": {"n": 1}, "metadata": r["metadata"]},
        lambda r: {**r, "metadata": {**r["metadata"], "nested": {"deep": {}}}},
    ],
    ids=["object after metadata", "object before metadata", "objects inside metadata"],
)
def test_other_objects_do_not_take_the_verdict(tmp_path: Path, shape: Callable) -> None:
    docs = [shape(d) for d in documents(lambda i: {"original_index": 10 * i})]
    data = rejected_file(tmp_path, [compact(d) for d in docs])
    assert parsed(data) == verdicts(docs, duplicate_of=10)


@pytest.mark.parametrize("shape", ["compact", "json.dumps"])
def test_the_verdict_replaces_an_earlier_filter_reason(tmp_path: Path, shape: str) -> None:
    old = {"a": 1, "filter_reason": "old", "duplicate_of": 99}
    docs = documents(lambda i: old if i % 2 == 0 else {"a": 2})
    data = rejected_file(tmp_path, [SHAPES[shape](d) for d in docs])
    assert parsed(data) == verdicts(docs, duplicate_of=2)
    assert [line.count(b'"filter_reason"') for line in data.splitlines()] == [1, 1, 1]
    assert [line.count(b'"duplicate_of"') for line in data.splitlines()] == [1, 1, 1]
    assert b'"old"' not in data and b"99" not in data


BAD = {3: b"{oops", 5: b'{"text": 5}', 6: b"", 9: b"   "}
ERRORS = {
    3: "not JSON: Expecting property name enclosed in double quotes at column 2",
    5: "no string 'text' field",
    6: "not JSON: Expecting value at column 1",
    9: "not JSON: Expecting value at column 4",
}


def bad_record(number: int) -> Record:
    metadata = {"filter_reason": "bad_record", "duplicate_of": None, "line_number": number}
    return {"text": BAD[number].decode(), "metadata": {**metadata, "error": ERRORS[number]}}


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 1000])
def test_rejected_lines_keep_input_order_with_bad_lines_in_place(
    tmp_path: Path, batch_size: int
) -> None:
    """Lines 1-12: spliced, serialised (metadata first) and bad lines mixed in every batch."""
    expected = []
    lines = []
    for number in range(1, 13):
        if number in BAD:
            lines.append(BAD[number])
            expected.append(bad_record(number))
            continue
        text = LONG if number in (2, 7, 12) else f"short {number}"
        doc = {"text": text, "metadata": {"original_index": 100 * number}}
        lines.append(SHAPES["metadata first" if number % 4 == 0 else "compact"](doc))
        if number in (7, 12):
            expected.append(verdict(doc, "exact_duplicate", 200))
        elif number != 2:
            expected.append(verdict(doc, "too_short"))
    assert parsed(rejected_file(tmp_path, lines, batch_size=batch_size)) == expected


def test_stage_one_lines_are_spliced_byte_for_byte(tmp_path: Path) -> None:
    """The stage 1 shape comes out as the compact JSON of the record plus the verdict."""
    docs = documents(lambda i: {"source": "s", "original_index": 10 * i})
    data = rejected_file(tmp_path, [compact(d) for d in docs])
    assert data == b"".join(compact(r) + b"\n" for r in verdicts(docs, duplicate_of=10))


def test_cleaning_twice_gives_byte_identical_rejected_files(tmp_path: Path) -> None:
    docs = documents(lambda i: {"source": "s", "original_index": 10 * i}) * 3
    lines = [SHAPES[shape](d) for shape in SHAPES for d in docs] + list(BAD.values())
    first = rejected_file(tmp_path, lines, "one", batch_size=5)
    assert first == rejected_file(tmp_path, lines, "two", batch_size=5)
    assert len(parsed(first)) == len(lines) - 1  # every line but the first long one


def test_empty_metadata_with_a_space_inside(tmp_path: Path) -> None:
    docs = documents(lambda i: {})
    data = rejected_file(tmp_path, [compact(d).replace(b"{}", b"{ }") for d in docs])
    assert parsed(data) == verdicts(docs, duplicate_of=2)


def test_lines_the_reader_repaired_are_written_as_repaired(tmp_path: Path) -> None:
    """Found in review: splicing copied the raw bytes of a line the reader had repaired
    (invalid UTF-8) or read loosely (NaN), giving a file that is not UTF-8 or not JSON."""
    lines = [
        b'{"text":"short\xff","metadata":{"a":1}}',
        b'{"text":"tiny","metadata":{"a":NaN}}',
    ]
    data = rejected_file(tmp_path, lines)
    data.decode("utf-8")  # valid UTF-8
    records = [
        json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in data.split(b"\n")[:-1]
    ]
    assert [r["text"] for r in records] == ["short\ufffd", "tiny"]
    assert [r["metadata"]["filter_reason"] for r in records] == ["too_short", "too_short"]
