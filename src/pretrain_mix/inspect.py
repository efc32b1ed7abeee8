"""Look at a dataset's cleaning: N random kept and N random rejected documents, with reasons.

    python -m pretrain_mix.inspect demo_web_en -n 5 --reason too_short

The sample is seeded (same seed, same documents) and memory bounded by N: every document
gets a random key and the N smallest keys are kept, batch by batch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.jsonl import iter_frames, metadata_field
from pretrain_mix.sampling import stream_key

log = logging.getLogger(__name__)

KEY = "_pretrain_mix_key"


class InspectError(PretrainMixError):
    """The dataset to inspect has no cleaned output."""


def random_documents(
    path: str | Path, n: int, seed: int, stream: str, reason: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """(n documents drawn uniformly without replacement, how many there were to draw from).

    The draw depends on (seed, stream) and the file only, not on where the file lies.
    """
    rng = np.random.default_rng(stream_key(seed, stream))
    best: pl.DataFrame | None = None
    total = 0
    for frame in iter_frames(path):
        if reason is not None:
            field = metadata_field(frame, "filter_reason")
            frame = frame.filter(field == reason) if field is not None else frame.clear()
        total += len(frame)
        keyed = frame.with_columns(pl.Series(KEY, rng.random(len(frame))))
        merged = keyed if best is None else pl.concat([best, keyed], how="diagonal_relaxed")
        best = merged.sort(KEY).head(n)
    if best is None:
        return [], 0
    return best.sort(KEY).drop(KEY).to_dicts(), total


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… [{len(text) - max_chars:,} more characters]"


def _describe(record: Mapping[str, Any], kind: str, number: int) -> str:
    metadata = record.get("metadata") or {}
    parts = [f"{kind} {number}"]
    if kind == "rejected":
        parts.append(f"reason: {metadata.get('filter_reason')}")
        if metadata.get("duplicate_of") is not None:
            parts.append(f"duplicate of {metadata['duplicate_of']}")
        if metadata.get("error"):
            parts.append(str(metadata["error"]))
    if metadata.get("original_index") is not None:
        parts.append(f"row {metadata['original_index']}")
    if metadata.get("language"):
        score = metadata.get("language_score")
        shown = f" ({score:.2f})" if isinstance(score, int | float) else ""
        parts.append(f"language {metadata['language']}{shown}")
    parts.append(f"{len(record.get('text') or ''):,} characters")
    return " | ".join(parts)


def format_documents(
    dataset_id: str,
    kind: str,
    documents: Sequence[Mapping[str, Any]],
    total: int,
    max_chars: int,
    reason: str | None = None,
) -> str:
    which = f"{kind} as {reason}" if reason else kind
    lines = [f"=== {dataset_id}: {len(documents)} of {total:,} {which} documents ==="]
    for number, record in enumerate(documents, start=1):
        lines.append(f"--- {_describe(record, kind, number)} ---")
        lines.append(_cut(str(record.get("text") or ""), max_chars))
    return "\n".join(lines)


def inspect_dataset(
    dataset_id: str,
    cleaned_path: str | Path,
    rejected_path: str | Path,
    n: int,
    seed: int,
    max_chars: int,
    reason: str | None = None,
    kinds: Sequence[str] = ("kept", "rejected"),
) -> str:
    """The text `inspect` prints for one dataset (a reason restricts the rejected ones)."""
    parts = []
    if "kept" in kinds and reason is None:
        kept, total = random_documents(cleaned_path, n, seed, f"{dataset_id}/kept")
        parts.append(format_documents(dataset_id, "kept", kept, total, max_chars))
    if "rejected" in kinds:
        stream = f"{dataset_id}/rejected/{reason or ''}"
        rejected, total = random_documents(rejected_path, n, seed, stream, reason)
        parts.append(format_documents(dataset_id, "rejected", rejected, total, max_chars, reason))
    return "\n\n".join(parts)


def run_inspect_job(
    cleaned_paths: Sequence[str | Path],
    rejected_paths: Sequence[str | Path],
    settings: Mapping[str, Any],
) -> str:
    """What the `inspect` rule does: print every dataset's sample (and log it)."""
    texts = []
    for cleaned, rejected in zip(cleaned_paths, rejected_paths, strict=True):
        texts.append(
            inspect_dataset(
                Path(cleaned).parent.name,
                cleaned,
                rejected,
                int(settings.get("documents", 3)),
                int(settings.get("seed", 0)),
                int(settings.get("max_chars", 600)),
            )
        )
    text = "\n\n".join(texts)
    print(text, flush=True)
    log.info("inspected %d datasets", len(texts))
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pretrain_mix.inspect",
        description="Print random kept and rejected documents of a cleaned dataset.",
    )
    parser.add_argument("dataset", help="dataset id (its folder under the cleaned folder)")
    parser.add_argument("-n", "--documents", type=int, default=3, help="documents of each kind")
    parser.add_argument("--seed", type=int, default=0, help="another seed, other documents")
    parser.add_argument("--reason", help="only rejected documents with this filter_reason")
    parser.add_argument("--only", choices=["kept", "rejected"], help="show one kind only")
    parser.add_argument("--max-chars", type=int, default=600, help="cut longer texts")
    parser.add_argument("--cleaned-folder", default="cleaned", help="stage 2 output folder")
    args = parser.parse_args(argv)
    folder = Path(args.cleaned_folder) / args.dataset
    cleaned, rejected = folder / "cleaned_data.jsonl.gz", folder / "rejected_data.jsonl.gz"
    try:
        if not (cleaned.is_file() and rejected.is_file()):
            root = Path(args.cleaned_folder)
            known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise InspectError(
                f"{folder}: no cleaned output for dataset '{args.dataset}'; run stage 2 first"
                f" (snakemake --cores 2 cleaned); cleaned datasets: {', '.join(known) or 'none'}"
            )
        kinds = [args.only] if args.only else ["kept", "rejected"]
        print(
            inspect_dataset(
                args.dataset,
                cleaned,
                rejected,
                args.documents,
                args.seed,
                args.max_chars,
                args.reason,
                kinds,
            )
        )
    except PretrainMixError as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
