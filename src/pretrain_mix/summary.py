"""The mixture summary: per dataset what each stage did, and target weights vs achieved shares.

Counts come from the output files (the `measure` step) and are checked against what stage 1
and stage 2 recorded, so a summary never disagrees with the data it describes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pretrain_mix.errors import PretrainMixError
from pretrain_mix.io import atomic_path, write_json
from pretrain_mix.measure import length_bin_edges


class SummaryInputError(PretrainMixError):
    """The files of a dataset disagree with each other."""


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _share(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _check_counts(dataset_id: str, sample: Mapping, stats: Mapping, measured: Mapping) -> None:
    """raw = sampled = kept + rejected, and the files hold what stats.json says, per reason."""
    problems = []
    if measured["raw"]["documents"] != sample["sampled"]:
        problems.append(
            f"raw_data has {measured['raw']['documents']} lines, sample_stats.json says"
            f" {sample['sampled']}"
        )
    for key in ("kept", "rejected"):
        if measured[key]["documents"] != stats[key]:
            problems.append(
                f"{key} file has {measured[key]['documents']} lines, stats.json says {stats[key]}"
            )
    counted = measured["rejected"]["by_reason"]
    recorded = stats.get("rejected_by_reason") or {}
    for reason in dict.fromkeys([*recorded, *counted]):
        if counted.get(reason, 0) != recorded.get(reason, 0):
            problems.append(
                f"{counted.get(reason, 0)} rejected as {reason}, stats.json says"
                f" {recorded.get(reason, 0)}"
            )
    if stats["documents_in"] != stats["kept"] + stats["rejected"]:
        problems.append(f"stats.json: {stats['documents_in']} in != kept + rejected")
    if problems:
        raise SummaryInputError(
            f"dataset '{dataset_id}': {'; '.join(problems)}; its files come from different runs:"
            " delete its raw and cleaned folders and run snakemake again"
        )


def _reasons_in_order(stats: Mapping, measured: Mapping) -> dict[str, int]:
    """Every reason of the pipeline (stats.json order, zeros included), then any others found."""
    counted = measured["rejected"]["by_reason"]
    order = [*(stats.get("rejected_by_reason") or {}), *sorted(counted)]
    return {reason: counted.get(reason, 0) for reason in dict.fromkeys(order)}


def dataset_summary(
    plan_row: Mapping, language: str | None, sample: Mapping, stats: Mapping, measured: Mapping
) -> dict[str, Any]:
    dataset_id = plan_row["id"]
    if measured.get("dataset_id") != dataset_id:
        raise SummaryInputError(
            f"summary inputs out of order: plan row '{dataset_id}' was given the measurements"
            f" of '{measured.get('dataset_id')}'"
        )
    _check_counts(dataset_id, sample, stats, measured)
    kept = measured["kept"]
    return {
        "id": dataset_id,
        "source": plan_row["source"],
        "config": plan_row["config"],
        "split": plan_row["split"],
        "language": language,
        "profile": (stats.get("settings") or {}).get("profile"),
        "weight": plan_row["weight"],
        "target_share": plan_row["share"],
        "planned": plan_row["count"],
        "sampled": sample["sampled"],
        "kept": kept["documents"],
        "rejected": measured["rejected"]["documents"],
        "kept_fraction": _share(kept["documents"], sample["sampled"]),
        "rejected_by_reason": _reasons_in_order(stats, measured),
        "filters": [{"name": f["name"], "removed": f["removed"]} for f in stats.get("filters", [])],
        "characters": {"raw": measured["raw"]["characters"], "kept": kept["characters"]},
        "words_kept": kept["words"],
        "bytes_kept": kept["bytes"],
        "tokens_kept": kept["tokens"],
        "languages": kept["languages"],
        "length_histogram": {
            "raw": measured["raw"]["length_histogram"],
            "kept": kept["length_histogram"],
        },
        "settings": stats.get("settings"),
    }


def _add_achieved_shares(datasets: list[dict[str, Any]], with_tokens: bool) -> None:
    totals = {
        "documents": sum(d["kept"] for d in datasets),
        "characters": sum(d["characters"]["kept"] for d in datasets),
        "tokens": sum(d["tokens_kept"] or 0 for d in datasets),
    }
    for d in datasets:
        d["achieved_share"] = {
            "documents": _share(d["kept"], totals["documents"]),
            "characters": _share(d["characters"]["kept"], totals["characters"]),
            "tokens": _share(d["tokens_kept"] or 0, totals["tokens"]) if with_tokens else None,
        }


def _totals(datasets: list[dict[str, Any]], with_tokens: bool) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    for d in datasets:
        reasons.update(d["rejected_by_reason"])
    order = dict.fromkeys(r for d in datasets for r in d["rejected_by_reason"])
    sampled = sum(d["sampled"] for d in datasets)
    kept = sum(d["kept"] for d in datasets)
    return {
        "planned": sum(d["planned"] for d in datasets),
        "sampled": sampled,
        "kept": kept,
        "rejected": sum(d["rejected"] for d in datasets),
        "kept_fraction": _share(kept, sampled),
        "rejected_by_reason": {reason: reasons[reason] for reason in order},
        "characters": {
            "raw": sum(d["characters"]["raw"] for d in datasets),
            "kept": sum(d["characters"]["kept"] for d in datasets),
        },
        "words_kept": sum(d["words_kept"] for d in datasets),
        "bytes_kept": sum(d["bytes_kept"] for d in datasets),
        "tokens_kept": sum(d["tokens_kept"] or 0 for d in datasets) if with_tokens else None,
    }


def build_summary(
    plan: Mapping,
    languages: Mapping[str, str | None],
    sample_stats: Sequence[Mapping],
    clean_stats: Sequence[Mapping],
    measures: Sequence[Mapping],
) -> dict[str, Any]:
    """The content of summary.json; the per-dataset lists follow the plan's order."""
    rows = plan["datasets"]
    datasets = [
        dataset_summary(row, languages.get(row["id"]), sample, stats, measured)
        for row, sample, stats, measured in zip(
            rows, sample_stats, clean_stats, measures, strict=True
        )
    ]
    tokenizers = {m["tokenizer"] for m in measures}
    tokenizer = tokenizers.pop() if len(tokenizers) == 1 else None
    with_tokens = tokenizer is not None
    _add_achieved_shares(datasets, with_tokens)
    return {
        "target_samples": plan["target_samples"],
        "seed": plan["seed"],
        "tokenizer": tokenizer,
        "length_bin_edges": length_bin_edges(),
        "totals": _totals(datasets, with_tokens),
        "datasets": datasets,
    }


# --- Markdown ---------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table padded so that it also reads well as plain text; numbers align right."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    numeric = [
        all(_looks_numeric(row[i]) for row in rows) and bool(rows) for i in range(len(header))
    ]
    numeric[0] = False

    def line(cells: Sequence[str]) -> str:
        padded = [
            f"{c:>{w}}" if is_num else f"{c:<{w}}"
            for c, w, is_num in zip(cells, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if n else "-" * w for w, n in zip(widths, numeric, strict=True)]
    return "\n".join([line(header), "| " + " | ".join(rule) + " |", *map(line, rows)])


def _looks_numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").rstrip("%").lstrip("-").isdigit() or cell == "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def dataset_table(summary: Mapping) -> str:
    with_tokens = summary["tokenizer"] is not None
    header = ["dataset", "planned", "sampled", "kept", "kept %", "rejected"]
    header += ["characters kept", "words kept", "bytes kept"]
    header += ["tokens kept"] if with_tokens else []
    rows = []
    for d in [*summary["datasets"], {"id": "total", **summary["totals"]}]:
        row = [d["id"], _int(d["planned"]), _int(d["sampled"]), _int(d["kept"])]
        row += [_pct(d["kept_fraction"]), _int(d["rejected"]), _int(d["characters"]["kept"])]
        row += [_int(d["words_kept"]), _int(d["bytes_kept"])]
        row += [_int(d["tokens_kept"])] if with_tokens else []
        rows.append(row)
    return markdown_table(header, rows)


def reasons_table(summary: Mapping) -> str:
    rows = []
    for d in [*summary["datasets"], {"id": "total", **summary["totals"]}]:
        found = ", ".join(f"{r} {n:,}" for r, n in d["rejected_by_reason"].items() if n)
        rows.append([d["id"], _int(d["rejected"]), found or "-"])
    return markdown_table(["dataset", "rejected", "by reason (pipeline order)"], rows)


def mixture_table(summary: Mapping) -> str:
    with_tokens = summary["tokenizer"] is not None
    header = ["dataset", "weight", "target share", "documents kept", "characters kept"]
    header += ["tokens kept"] if with_tokens else []
    rows = []
    for d in summary["datasets"]:
        achieved = d["achieved_share"]
        row = [d["id"], f"{d['weight']:g}", _pct(d["target_share"])]
        row += [_pct(achieved["documents"]), _pct(achieved["characters"])]
        row += [_pct(achieved["tokens"])] if with_tokens else []
        rows.append(row)
    return markdown_table(header, rows)


def summary_markdown(summary: Mapping) -> str:
    tokenizer = summary["tokenizer"]
    counted = f"tokens counted with {tokenizer}" if tokenizer else "no tokenizer set"
    return "\n".join(
        [
            "# Mixture summary",
            "",
            f"Target {summary['target_samples']:,} documents, seed {summary['seed']};"
            f" {counted}. Words are whitespace-separated; bytes are UTF-8.",
            "",
            "## Datasets",
            "",
            dataset_table(summary),
            "",
            "## Rejected documents",
            "",
            reasons_table(summary),
            "",
            "## Mixture: target share vs achieved share of the kept data",
            "",
            mixture_table(summary),
            "",
        ]
    )


def run_summary_job(
    plan_path: str | Path,
    sample_stats_paths: Sequence[str | Path],
    clean_stats_paths: Sequence[str | Path],
    measure_paths: Sequence[str | Path],
    languages: Mapping[str, str | None],
    json_path: str | Path,
    markdown_path: str | Path,
) -> dict[str, Any]:
    """What the `summary` rule does: summary.json and summary.md, both or neither."""
    summary = build_summary(
        read_json(plan_path),
        languages,
        [read_json(p) for p in sample_stats_paths],
        [read_json(p) for p in clean_stats_paths],
        [read_json(p) for p in measure_paths],
    )
    text = summary_markdown(summary)
    with atomic_path(markdown_path) as partial:
        partial.write_text(text, encoding="utf-8")
        write_json(json_path, summary)
    return summary


def fresh_summary_text(markdown_path: str | Path, since: float) -> str | None:
    """summary.md if this run wrote it (modified at or after `since`), for the end of the run."""
    path = Path(markdown_path)
    if not path.is_file() or path.stat().st_mtime < since:
        return None
    return path.read_text(encoding="utf-8")
