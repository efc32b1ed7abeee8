"""One file of every kept document, the datasets interleaved in a seeded random order.

The order is a uniformly random interleaving of the datasets' streams, each stream keeping its
own order, drawn block by block: the first B positions of such an interleaving hold a
multivariate hypergeometric number of documents of each dataset, in random order. So memory
is one block of dataset labels plus one open reader per dataset, whatever the mixture's size.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.io import atomic_path, gzip_writer
from pretrain_mix.jsonl import iter_lines
from pretrain_mix.sampling import stream_key
from pretrain_mix.summary import read_json

log = logging.getLogger(__name__)

BLOCK = 65_536  # positions drawn at a time


class MergeError(PretrainMixError):
    """A cleaned file does not hold the documents its stats.json counts."""


def interleaving(counts: Sequence[int], seed: int, block: int = BLOCK) -> Iterator[np.ndarray]:
    """Blocks of stream indices: stream i appears counts[i] times, in a seeded uniform order."""
    rng = np.random.default_rng(stream_key(seed, "merge"))
    remaining = np.array(counts, dtype=np.int64)
    while (left := int(remaining.sum())) > 0:
        size = min(block, left)
        taken = rng.multivariate_hypergeometric(remaining, size)
        remaining -= taken
        labels = np.repeat(np.arange(len(counts), dtype=np.int32), taken)
        rng.shuffle(labels)
        yield labels


def merge_streams(
    paths: Sequence[str | Path], counts: Sequence[int], seed: int, output_path: str | Path
) -> int:
    """Interleave the lines of `paths` into one gzip file; each must hold exactly its count."""
    with ExitStack() as stack:
        streams = [iter_lines(path) for path in paths]
        for stream in streams:
            stack.callback(stream.close)
        partial = stack.enter_context(atomic_path(output_path))
        out = stack.enter_context(gzip_writer(partial))
        written = 0
        for labels in interleaving(counts, seed):
            lines = []
            for label in labels.tolist():
                line = next(streams[label], None)
                if line is None:
                    raise MergeError(
                        f"{paths[label]} has fewer lines than the {counts[label]} its stats.json"
                        " counts; re-run stage 2 for that dataset"
                    )
                lines.append(line)
            out.write(b"".join(lines))
            written += len(lines)
        for path, count, stream in zip(paths, counts, streams, strict=True):
            if next(stream, None) is not None:
                raise MergeError(
                    f"{path} has more lines than the {count} its stats.json counts;"
                    " re-run stage 2 for that dataset"
                )
    return written


def run_merge_job(
    cleaned_paths: Sequence[str | Path],
    stats_paths: Sequence[str | Path],
    seed: int,
    output_path: str | Path,
) -> int:
    """What the `merged` rule does."""
    counts = [int(read_json(path)["kept"]) for path in stats_paths]
    written = merge_streams(cleaned_paths, counts, seed, output_path)
    log.info("%s: %d documents from %d datasets", output_path, written, len(counts))
    return written
