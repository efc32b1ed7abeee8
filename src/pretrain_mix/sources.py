"""Opening a dataset stream with `datasets`; reading it shard by shard, resuming after errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import DatasetOpenError

log = logging.getLogger(__name__)

RETRYABLE_HTTP_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _transient_exception_types() -> tuple[type[BaseException], ...]:
    """Network failures worth a retry, from whichever HTTP stacks are installed."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        import httpx

        kinds.append(httpx.TransportError)
    except ImportError:
        pass
    try:
        import aiohttp

        kinds.append(aiohttp.ClientError)
    except ImportError:
        pass
    try:
        import requests

        kinds += [
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ]
    except ImportError:
        pass
    return tuple(kinds)


TRANSIENT_EXCEPTIONS = _transient_exception_types()


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return True
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) in RETRYABLE_HTTP_STATUS


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else '(no message)'}"


def open_stream(spec: DatasetSpec):
    """datasets.load_dataset(path=name, name=config, data_files=..., split=..., streaming=True)."""
    import datasets  # heavy import, only in jobs that stream

    try:
        return datasets.load_dataset(**spec.load_kwargs(), streaming=True)
    except Exception as exc:
        if spec.is_local:
            hint = "check that data_files exist and are readable, and that the split name is right"
        else:
            hint = (
                "check: are you online (is HF_HUB_OFFLINE set)? is the dataset gated (accept its"
                " terms on the Hub and set HF_TOKEN)? are the name, config and split right?"
            )
        raise DatasetOpenError(
            f"{spec.describe()}: cannot open split '{spec.split}': {first_line(exc)}; {hint}"
        ) from exc


def split_size(stream, split: str) -> int | None:
    """Row count of the split when the dataset's metadata knows it (Hub cards often do)."""
    splits = getattr(getattr(stream, "info", None), "splits", None)
    if not splits or split not in splits:
        return None
    return splits[split].num_examples or None


def shard_count(stream) -> int:
    return max(1, getattr(stream, "num_shards", 1))


@dataclass
class RetryPolicy:
    max_retries: int = 5
    backoff_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep


def iter_shard_tables(
    stream, shard: int, num_shards: int, batch_size: int, retry: RetryPolicy
) -> Iterator[pa.Table]:
    """Arrow tables of one shard in order; after a transient error, re-open and resume."""
    rows_done = 0
    failures = 0
    while True:
        part = stream if num_shards == 1 else stream.shard(num_shards=num_shards, index=shard)
        if rows_done:
            part = part.skip(rows_done)
        try:
            for table in part.with_format("arrow").iter(batch_size=batch_size):
                yield table
                rows_done += table.num_rows
            return
        except Exception as exc:
            if not is_transient(exc) or failures >= retry.max_retries:
                raise
            wait = retry.backoff_seconds * 2**failures
            failures += 1
            log.warning(
                "shard %d: %s after %d rows; retry %d/%d in %.1fs, resuming at that row",
                shard,
                first_line(exc),
                rows_done,
                failures,
                retry.max_retries,
                wait,
            )
            retry.sleep(wait)
