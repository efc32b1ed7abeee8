"""Stage 1 benchmark: the sample rule's code path against plain `datasets` streaming.

Both read the same local shards (real documents from ../shared/corpora, repeated to
--rows rows, as parquet and as JSON lines). The plain baselines are

  per-row:        for row in load_dataset(..., streaming=True): pass
  arrow batches:  for table in ds.with_format("arrow").iter(batch_size=10_000): pass

and the sampler is `pretrain_mix.sampling.run_sample_job`, exactly what scripts/sample.py
calls. The sampler reads Arrow batches itself, so the bar is its throughput relative to the
arrow-batch baseline (the faster one): sampler rows/s / plain rows/s >= 0.8.

Run from the repository root:  python benchmarks/bench_sampling.py [--rows 500000]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pretrain_mix import sampling
from pretrain_mix.config import DatasetSpec
from pretrain_mix.sources import open_stream

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
DEFAULT_WORKDIR = REPO / "benchmarks" / "work" / "sampling"
CORPUS_FILES = ("web_en.jsonl.gz", "web_vi.jsonl.gz")

FORMATS = {"parquet": ("parquet", "parquet"), "jsonl": ("json", "jsonl")}  # builder, suffix
NUM_SHARDS = 8  # several files, so the sampler walks shards as it does on the Hub
# Hub parquet exports use row groups of this order; `datasets` yields one batch per group.
ROW_GROUP_ROWS = 10_000
BATCH_SIZE = 10_000  # the sampler's default batch_size; the arrow baseline uses the same
SEED = 42
PASS_RATIO = 0.8

PER_ROW = "datasets per-row"
ARROW = "datasets arrow batches"


# ---------------------------------------------------------------------------------------------
# Building the local dataset


@dataclass
class ShardFile:
    path: str
    rows: int
    bytes: int


@dataclass
class LocalDataset:
    format: str
    rows: int
    files: list[ShardFile]

    @property
    def paths(self) -> list[str]:
        return [shard.path for shard in self.files]


def load_documents(corpora: Path) -> pa.Table:
    """All documents of the corpora, unfiltered: rows without text are part of real data."""
    texts: list[Any] = []
    ids: list[str] = []
    for name in CORPUS_FILES:
        stem = name.split(".")[0]
        with gzip.open(corpora / name, "rt", encoding="utf-8") as handle:
            for index, line in enumerate(handle):
                texts.append(json.loads(line).get("text"))
                ids.append(f"{stem}:{index}")
    return pa.table({"text": pa.array(texts, pa.string()), "doc_id": pa.array(ids, pa.string())})


def shard_bounds(rows: int, shards: int) -> list[tuple[int, int]]:
    """[start, end) of each shard; sizes differ by at most one row."""
    base, extra = divmod(rows, shards)
    bounds, start = [], 0
    for shard in range(shards):
        end = start + base + (shard < extra)
        bounds.append((start, end))
        start = end
    return bounds


def repeated_rows(documents: pa.Table, start: int, end: int) -> pa.Table:
    """Rows start..end of the documents repeated end to end; doc_id stays unique per copy."""
    positions = np.arange(start, end, dtype=np.int64)
    picked = documents.take(pa.array(positions % documents.num_rows))
    copies = pc.cast(pa.array(positions // documents.num_rows), pa.string())
    doc_id = pc.binary_join_element_wise(picked.column("doc_id"), copies, "#")
    return pa.table({"text": picked.column("text"), "doc_id": doc_id})


def write_shard(table: pa.Table, path: Path, fmt: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    if fmt == "parquet":
        pq.write_table(table, partial, row_group_size=ROW_GROUP_ROWS)
    else:
        with open(partial, "w", encoding="utf-8") as handle:
            for row in table.to_pylist():
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, path)


def manifest_path(workdir: Path, fmt: str) -> Path:
    return workdir / fmt / "manifest.json"


def reusable(workdir: Path, fmt: str, rows: int) -> LocalDataset | None:
    """The dataset built by an earlier run, if it has the right rows and is intact."""
    path = manifest_path(workdir, fmt)
    if not path.exists():
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    files = [ShardFile(**entry) for entry in document["files"]]
    intact = all(Path(f.path).is_file() and Path(f.path).stat().st_size == f.bytes for f in files)
    if document["rows"] != rows or len(files) != NUM_SHARDS or not intact:
        return None
    return LocalDataset(fmt, rows, files)


def build_dataset(documents: pa.Table, workdir: Path, fmt: str, rows: int) -> LocalDataset:
    folder = workdir / fmt
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path(workdir, fmt).unlink(missing_ok=True)  # invalid until every shard is written
    suffix = FORMATS[fmt][1]
    files = []
    for shard, (start, end) in enumerate(shard_bounds(rows, NUM_SHARDS)):
        path = folder / f"train-{shard:05d}-of-{NUM_SHARDS:05d}.{suffix}"
        write_shard(repeated_rows(documents, start, end), path, fmt)
        files.append(ShardFile(str(path), end - start, path.stat().st_size))
    dataset = LocalDataset(fmt, rows, files)
    manifest = {"rows": rows, "corpora": list(CORPUS_FILES), "files": [asdict(f) for f in files]}
    manifest_path(workdir, fmt).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return dataset


def prepare_datasets(
    corpora: Path, workdir: Path, formats: list[str], rows: int
) -> dict[str, LocalDataset]:
    prepared: dict[str, LocalDataset] = {}
    documents: pa.Table | None = None  # read the corpora only if something must be built
    for fmt in formats:
        found = reusable(workdir, fmt, rows)
        if found is not None:
            note(f"[{fmt}] reusing {rows:,} rows in {workdir / fmt}")
            prepared[fmt] = found
            continue
        if documents is None:
            documents = load_documents(corpora)
            note(f"read {documents.num_rows:,} documents from {corpora}")
        started = time.perf_counter()
        prepared[fmt] = build_dataset(documents, workdir, fmt, rows)
        note(f"[{fmt}] wrote {rows:,} rows in {time.perf_counter() - started:.1f}s")
    return prepared


def warm_page_cache(dataset: LocalDataset) -> None:
    """Read the files once, so the first timed pass is not the only one paying for the disk."""
    for path in dataset.paths:
        with open(path, "rb") as handle:
            while handle.read(16 << 20):
                pass


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass
class Run:
    seconds: float
    rows: int
    open_seconds: float  # load_dataset(..., streaming=True), included in `seconds`
    write_seconds: float = 0.0  # the sampler's raw_data.jsonl.gz, included in `seconds`


@dataclass
class Measurement:
    format: str
    path: str
    sample_size: int | None
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda run: run.seconds)

    @property
    def rows_per_second(self) -> float:
        return self.best.rows / self.best.seconds

    @property
    def scan_rows_per_second(self) -> float:
        """Throughput without writing the sample: what the sampler's reading costs."""
        best = self.best
        return best.rows / (best.seconds - best.write_seconds)


def plain_per_row(builder: str, files: list[str]) -> Run:
    started = time.perf_counter()
    stream = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    opened = time.perf_counter()
    rows = 0
    for _row in stream:
        rows += 1
    return Run(time.perf_counter() - started, rows, opened - started)


def plain_arrow_batches(builder: str, files: list[str]) -> Run:
    started = time.perf_counter()
    stream = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    opened = time.perf_counter()
    rows = 0
    for table in stream.with_format("arrow").iter(batch_size=BATCH_SIZE):
        rows += table.num_rows
    return Run(time.perf_counter() - started, rows, opened - started)


@contextmanager
def timed_sample_writes(seconds: list[float]) -> Iterator[None]:
    """Time run_sample_job's write of raw_data.jsonl.gz without changing what it does."""
    write = sampling.write_frame_jsonl_gz

    def timed(path: str | Path, records: Any) -> int:
        started = time.perf_counter()
        try:
            return write(path, records)
        finally:
            seconds.append(time.perf_counter() - started)

    with mock.patch.object(sampling, "write_frame_jsonl_gz", timed):
        yield


def sampler_job(builder: str, files: list[str], count: int, out_dir: Path) -> Run:
    spec = DatasetSpec(id="bench", name=builder, weight=1.0, data_files=files, text_field="text")
    open_seconds: list[float] = []
    write_seconds: list[float] = []

    def timed_open(opened_spec: DatasetSpec) -> Any:
        started = time.perf_counter()
        try:
            return open_stream(opened_spec)  # the rule's default opener, only timed
        finally:
            open_seconds.append(time.perf_counter() - started)

    with timed_sample_writes(write_seconds):
        started = time.perf_counter()
        stats = sampling.run_sample_job(
            dataset=spec.source_params(),
            count=count,
            seed=SEED,
            sampling={},
            data_path=out_dir / "raw_data.jsonl.gz",
            stats_path=out_dir / "sample_stats.json",
            open_dataset=timed_open,
        )
        seconds = time.perf_counter() - started
    if stats["sampled"] != count:
        raise RuntimeError(f"sampler returned {stats['sampled']} rows, expected {count}")
    return Run(seconds, stats["rows_scanned"], sum(open_seconds), sum(write_seconds))


def measure_format(
    dataset: LocalDataset, sample_sizes: list[int], repeat: int, out_root: Path
) -> list[Measurement]:
    """Interleave the paths within each repeat, so drift (heat, caches) hits all alike."""
    builder = FORMATS[dataset.format][0]
    jobs: list[tuple[Measurement, Callable[[], Run]]] = [
        (Measurement(dataset.format, PER_ROW, None), lambda: plain_per_row(builder, dataset.paths)),
        (
            Measurement(dataset.format, ARROW, None),
            lambda: plain_arrow_batches(builder, dataset.paths),
        ),
    ]
    for count in sample_sizes:
        out_dir = out_root / dataset.format / f"k{count}"
        jobs.append(
            (
                Measurement(dataset.format, f"sampler k={count:,}", count),
                lambda count=count, out_dir=out_dir: sampler_job(
                    builder, dataset.paths, count, out_dir
                ),
            )
        )
    warm_page_cache(dataset)
    for attempt in range(1, repeat + 1):
        for measurement, job in jobs:
            gc.collect()  # garbage of the previous path should not be collected on this one's time
            run = job()
            if run.rows != dataset.rows:
                raise RuntimeError(
                    f"{measurement.path} read {run.rows:,} rows, not {dataset.rows:,}"
                )
            measurement.runs.append(run)
            note(
                f"[{dataset.format}] {attempt}/{repeat} {measurement.path}:"
                f" {run.seconds:.2f}s, {run.rows / run.seconds:,.0f} rows/s"
            )
    return [measurement for measurement, _job in jobs]


# ---------------------------------------------------------------------------------------------
# Report


def baseline(measurements: list[Measurement], fmt: str, path: str) -> Measurement:
    return next(m for m in measurements if m.format == fmt and m.path == path)


def ratios(measurement: Measurement, measurements: list[Measurement]) -> dict[str, float]:
    arrow = baseline(measurements, measurement.format, ARROW)
    per_row = baseline(measurements, measurement.format, PER_ROW)
    return {
        "vs_arrow_batches": measurement.rows_per_second / arrow.rows_per_second,
        "vs_per_row": measurement.rows_per_second / per_row.rows_per_second,
        "vs_arrow_batches_excluding_write": measurement.scan_rows_per_second
        / arrow.rows_per_second,
    }


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        # Text columns (the first two) read best left-aligned, numbers right-aligned.
        return " | ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(cells) for cells in rows)])


def table_rows(measurements: list[Measurement]) -> list[list[str]]:
    rows = []
    for m in measurements:
        best = m.best
        r = ratios(m, measurements)
        is_sampler = m.sample_size is not None
        rows.append(
            [
                m.format,
                m.path,
                f"{best.rows:,}",
                f"{best.open_seconds:.2f}",
                f"{best.write_seconds:.2f}" if is_sampler else "-",
                f"{best.seconds:.2f}",
                f"{m.rows_per_second:,.0f}",
                f"{r['vs_arrow_batches']:.2f}",
                f"{r['vs_per_row']:.2f}",
                f"{r['vs_arrow_batches_excluding_write']:.2f}" if is_sampler else "-",
            ]
        )
    return rows


TABLE_HEADERS = [
    "format",
    "path",
    "rows",
    "open s",
    "write s",
    "total s",
    "rows/s",
    "ratio vs arrow-batches",
    "ratio vs per-row",
    "vs arrow, excl. write",
]


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS); it is this process's high-water mark.
    scale = 1 << 20 if sys.platform == "darwin" else 1 << 10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / (1 << 20)


def results_document(
    args: argparse.Namespace,
    prepared: dict[str, LocalDataset],
    measurements: list[Measurement],
    rss: dict[str, float],
    passed: bool,
) -> dict[str, Any]:
    return {
        "rows": args.rows,
        "formats": args.formats,
        "sample_sizes": args.sample_sizes,
        "repeat": args.repeat,
        "seed": SEED,
        "batch_size": BATCH_SIZE,
        "shards": NUM_SHARDS,
        "parquet_row_group_rows": ROW_GROUP_ROWS,
        "corpora": [str(args.corpora / name) for name in CORPUS_FILES],
        "datasets": {fmt: asdict(dataset) for fmt, dataset in prepared.items()},
        "environment": {
            "python": platform.python_version(),
            "datasets": datasets.__version__,
            "pyarrow": pa.__version__,
            "cpus": os.cpu_count(),
        },
        "bar": {"ratio": PASS_RATIO, "against": ARROW, "passed": passed},
        "measurements": [
            {
                "format": m.format,
                "path": m.path,
                "sample_size": m.sample_size,
                "best": asdict(m.best),
                "rows_per_second": m.rows_per_second,
                "ratios": ratios(m, measurements) if m.sample_size is not None else None,
                "runs": [asdict(run) for run in m.runs],
            }
            for m in measurements
        ],
        "peak_rss_mib_this_process": rss,
    }


# ---------------------------------------------------------------------------------------------
# Command line


def note(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpora",
        type=Path,
        default=DEFAULT_CORPORA,
        help="folder holding web_en.jsonl.gz and web_vi.jsonl.gz (%(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="built shards, sampler outputs and results.json; git-ignored (%(default)s)",
    )
    parser.add_argument("--rows", type=int, default=500_000, help="rows per format (%(default)s)")
    parser.add_argument(
        "--formats", type=comma_list, default="parquet,jsonl", help="comma list (%(default)s)"
    )
    parser.add_argument(
        "--sample-sizes",
        type=lambda text: [int(item) for item in comma_list(text)],
        default="10000,100000",
        help="sample sizes K of the sampler runs (%(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; best is kept")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be positive")
    if any(not 0 < k <= args.rows for k in args.sample_sizes):
        parser.error("every sample size must be between 1 and --rows")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepared = prepare_datasets(args.corpora, args.workdir, args.formats, args.rows)
    rss = {"after_building_data": peak_rss_mib()}
    measurements: list[Measurement] = []
    for fmt in args.formats:
        out_root = args.workdir / "out"
        measurements += measure_format(prepared[fmt], args.sample_sizes, args.repeat, out_root)
    rss["at_end"] = peak_rss_mib()

    samplers = [m for m in measurements if m.sample_size is not None]
    worst = min(ratios(m, measurements)["vs_arrow_batches"] for m in samplers)
    passed = worst >= PASS_RATIO

    print(
        f"Stage 1 sampling benchmark: {args.rows:,} rows x {NUM_SHARDS} shards per format,"
        f" best of {args.repeat}, batch size {BATCH_SIZE:,}"
    )
    print(render_table(TABLE_HEADERS, table_rows(measurements)))
    print()
    print(
        "ratio = sampler rows/s / plain rows/s of the same format; rows/s = rows scanned / total s"
        " (total includes opening the stream and, for the sampler, writing raw_data.jsonl.gz)."
    )
    print(
        f"The bar is the ratio vs arrow-batches (the sampler reads Arrow batches): >= {PASS_RATIO}."
    )
    print(
        "Peak RSS of this one benchmark process (ru_maxrss, a high-water mark over every"
        f" measurement): {rss['after_building_data']:,.0f} MiB after preparing data,"
        f" {rss['at_end']:,.0f} MiB at the end."
    )
    results = args.workdir / "results.json"
    document = results_document(args, prepared, measurements, rss, passed)
    results.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"Figures written to {results}")
    verdict = "PASS" if passed else "FAIL"
    sign = ">=" if passed else "<"
    print(
        f"{verdict}: sampler/plain ratio {sign} {PASS_RATIO} (worst vs arrow-batches {worst:.2f})"
    )
    return 0  # a benchmark reports; it does not fail the build


if __name__ == "__main__":
    raise SystemExit(main())
