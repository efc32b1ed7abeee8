"""The report's plots (PNG, matplotlib), all drawn from summary.json.

Figures are built with matplotlib's object API (no pyplot), so nothing global is touched.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pretrain_mix.io import atomic_path
from pretrain_mix.measure import UNIDENTIFIED
from pretrain_mix.summary import read_json

DPI = 110
KEPT_COLOUR = "#2e7d32"
TARGET_COLOUR = "#9e9e9e"
OTHER_COLOUR = "#bdbdbd"
MAX_LANGUAGES = 10


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    return [colours[i % len(colours)] for i in range(n)]


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, max(1, n))
    return math.ceil(n / cols), cols


def _save(figure: Figure, path: str | Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=DPI)


def _bar_height(datasets: Sequence[Mapping]) -> float:
    return 1.2 + 0.45 * len(datasets)


def funnel(summary: Mapping) -> Figure:
    """Per dataset: documents left after each step that removed any, sampled down to kept."""
    datasets = summary["datasets"]
    rows, cols = _grid(len(datasets))
    steps = [1 + sum(1 for n in d["rejected_by_reason"].values() if n) + 1 for d in datasets]
    height = max(steps, default=2) * 0.32 + 1.3
    figure = Figure(figsize=(5.2 * cols, height * rows))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, d in zip(axes, datasets, strict=False):
        labels, remaining, colours = ["sampled"], [d["sampled"]], [TARGET_COLOUR]
        for reason, count in d["rejected_by_reason"].items():
            if count:
                labels.append(f"- {reason} ({count:,})")
                remaining.append(remaining[-1] - count)
                colours.append("#90a4ae")
        labels.append("kept")
        remaining.append(d["kept"])
        colours.append(KEPT_COLOUR)
        positions = range(len(labels))
        ax.barh(positions, remaining, color=colours)
        ax.set_yticks(list(positions), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(d["sampled"], 1) * 1.18)
        for y, value in zip(positions, remaining, strict=True):
            ax.text(value, y, f" {value:,}", va="center", fontsize=8)
        ax.set_title(f"{d['id']}: {d['kept_fraction']:.1%} kept", fontsize=10)
        ax.set_xlabel("documents")
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    return figure


def _share_bars(
    datasets: Sequence[Mapping],
    series: Sequence[tuple[str, Sequence[float], Any]],
    total: str,
    xlabel: str,
    title: str,
    skip_empty: bool = False,
    **bar_style: Any,
) -> Figure:
    """One stacked bar a dataset: each series' count as a share of the dataset's `total`."""
    figure = Figure(figsize=(10, _bar_height(datasets) + 0.6))
    ax = figure.subplots()
    y = list(range(len(datasets)))
    left = [0.0] * len(datasets)
    for label, counts, colour in series:
        widths = [c / d[total] if d[total] else 0.0 for c, d in zip(counts, datasets, strict=True)]
        if skip_empty and not any(widths):
            continue
        ax.barh(y, widths, left=left, color=colour, label=label, **bar_style)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(y, [d["id"] for d in datasets])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter("{x:.0%}")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return figure


def reasons(summary: Mapping) -> Figure:
    """Per dataset: share of the sampled documents kept and rejected for each reason."""
    datasets = summary["datasets"]
    order = [r for r, n in summary["totals"]["rejected_by_reason"].items() if n]
    series = [("kept", [d["kept"] for d in datasets], KEPT_COLOUR)]
    for reason, colour in zip(order, _palette(len(order)), strict=True):
        series.append((reason, [d["rejected_by_reason"].get(reason, 0) for d in datasets], colour))
    return _share_bars(
        datasets,
        series,
        "sampled",
        "share of the sampled documents",
        "Kept and rejected documents by reason",
    )


def lengths(summary: Mapping) -> Figure:
    """Per dataset: distribution of document length in characters, raw vs cleaned (kept)."""
    datasets = summary["datasets"]
    edges = summary["length_bin_edges"]
    rows, cols = _grid(len(datasets))
    figure = Figure(figsize=(5.2 * cols, 3.0 * rows))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, d in zip(axes, datasets, strict=False):
        histogram = d["length_histogram"]
        ax.stairs(histogram["raw"], edges, label=f"raw ({d['sampled']:,})", color=TARGET_COLOUR)
        ax.stairs(
            histogram["kept"], edges, label=f"cleaned, kept ({d['kept']:,})", color=KEPT_COLOUR
        )
        used = [i for i, n in enumerate(histogram["raw"]) if n] or [0, len(edges) - 2]
        ax.set_xscale("log")
        ax.set_xlim(edges[max(used[0] - 1, 0)], edges[min(used[-1] + 2, len(edges) - 1)])
        ax.set_xlabel("characters")
        ax.set_ylabel("documents")
        ax.set_title(d["id"], fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    for ax in axes[len(datasets) :]:
        ax.set_visible(False)
    return figure


def languages(summary: Mapping) -> Figure:
    """Per dataset: languages of the kept documents (metadata.language; else unidentified)."""
    datasets = summary["datasets"]
    overall: Counter[str] = Counter()
    for d in datasets:
        overall.update(d["languages"])
    named = [lang for lang, _ in overall.most_common() if lang != UNIDENTIFIED]
    shown, rest = named[:MAX_LANGUAGES], set(named[MAX_LANGUAGES:])
    groups: list[tuple[str, Callable[[str], bool], Any]] = [
        (lang, lambda x, lang=lang: x == lang, colour)
        for lang, colour in zip(shown, _palette(len(shown)), strict=True)
    ]
    if rest:
        groups.append(("other", lambda x: x in rest, OTHER_COLOUR))
    groups.append((UNIDENTIFIED, lambda x: x == UNIDENTIFIED, "#eeeeee"))
    series = [
        (
            label,
            [sum(n for lang, n in d["languages"].items() if member(lang)) for d in datasets],
            colour,
        )
        for label, member, colour in groups
    ]
    return _share_bars(
        datasets,
        series,
        "kept",
        "share of the kept documents",
        "Languages of the kept documents",
        skip_empty=True,
        edgecolor="white",
    )


def mixture(summary: Mapping) -> Figure:
    """Per dataset: target share (weight) vs achieved share of kept documents, characters..."""
    datasets = summary["datasets"]
    series = [
        ("target (weight)", [d["target_share"] for d in datasets], TARGET_COLOUR),
        ("kept documents", [d["achieved_share"]["documents"] for d in datasets], "#1565c0"),
        ("kept characters", [d["achieved_share"]["characters"] for d in datasets], "#ef6c00"),
    ]
    if summary["tokenizer"] is not None:
        series.append(
            ("kept tokens", [d["achieved_share"]["tokens"] for d in datasets], KEPT_COLOUR)
        )
    figure = Figure(figsize=(10, 1.2 + 0.3 * len(series) * len(datasets)))
    ax = figure.subplots()
    bar = 0.8 / len(series)
    for k, (label, shares, colour) in enumerate(series):
        positions = [i + (k - (len(series) - 1) / 2) * bar for i in range(len(datasets))]
        ax.barh(positions, shares, height=bar, color=colour, label=label)
        for y, share in zip(positions, shares, strict=True):
            ax.text(share, y, f" {share:.1%}", va="center", fontsize=7)
    ax.set_yticks(range(len(datasets)), [d["id"] for d in datasets])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter("{x:.0%}")
    top = max((s for _, shares, _ in series for s in shares), default=0)
    ax.set_xlim(0, max(top * 1.2, 0.01))
    ax.set_xlabel("share of the mixture")
    ax.set_title("Target vs achieved mixture")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return figure


PLOTS: dict[str, Callable[[Mapping], Figure]] = {
    "funnel": funnel,
    "reasons": reasons,
    "lengths": lengths,
    "languages": languages,
    "mixture": mixture,
}


def run_plots_job(summary_path: str | Path, outputs: Mapping[str, str | Path]) -> None:
    """What the `plots` rule does: one PNG per entry of `outputs` (a name of PLOTS -> path)."""
    summary = read_json(summary_path)
    for name, path in outputs.items():
        _save(PLOTS[name](summary), path)
