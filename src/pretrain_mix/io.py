"""Files that are complete or absent: atomic writes, deterministic gzip JSON lines."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    An interrupted or failed run leaves no file under the final name (the hidden
    temporary is removed on error; a hard kill can leave only the '.partial' name).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(f".{final.name}.partial")
    try:
        yield partial
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def json_line(record: Any) -> bytes:
    """One compact JSON line; non-JSON values (dates, decimals) are written as strings."""
    return (
        json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    ).encode("utf-8")


@contextlib.contextmanager
def gzip_writer(path: Path, compresslevel: int = 6) -> Iterator[BinaryIO]:
    """A gzip stream with no timestamp or file name in its header, so bytes are reproducible."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
        ) as stream,
    ):
        yield stream


def write_jsonl_gz(path: str | Path, records: Iterable[Any]) -> int:
    """Write records atomically as gzip JSON lines; returns how many were written."""
    count = 0
    with atomic_path(path) as partial, gzip_writer(partial) as stream:
        for record in records:
            stream.write(json_line(record))
            count += 1
    return count


def write_json(path: str | Path, document: Any) -> None:
    """Write a pretty JSON document atomically (`python -m json.tool` friendly)."""
    with atomic_path(path) as partial:
        partial.write_text(
            json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n",
            encoding="utf-8",
        )
