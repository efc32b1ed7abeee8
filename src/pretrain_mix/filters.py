"""Stage 2 filters: the original script's rules, and the registry of every filter.

A filter has a name (used in profiles), the keys of the `filtering` section it reads, and
one short snake_case reason per way of failing. It judges a batch of texts at once: the
original rules are polars expressions; the Gopher, C4, FineWeb and code rules live in
`quality`, language identification in `langid`. The pipeline, not the filter, counts and
writes the rejected documents; the first failing check names the reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pretrain_mix import langid, quality
from pretrain_mix.errors import ConfigError

TEXT = pl.col("text")


# The original script's code detection: a document with one of these is code-like and kept
# by the relevance filter whatever its keyword score.
CODE_INDICATORS = [
    r"\bdef\s+\w+\s*\(",
    r"\bfunction\s+\w+\s*\(",
    r"\bclass\s+\w+\s*[:{]",
    r"\bpublic\s+\w+\s+\w+\s*\(",
    r"\bimport\s+[\w.]+",
    r"#include\s*<[\w./]+>",
    r"```",
    r"\b(?:int|string|bool|float|double)\s+\w+\s*=",
]


Check = tuple[str, pl.Expr]  # (reason, True where the document fails)


@dataclass
class Verdict:
    """What a filter says about each document of a batch."""

    reason: pl.Series  # the first failing check's reason code; null where the document passes
    text: pl.Series | None = None  # rewritten text (C4 drops lines), for the documents that pass
    metadata: dict[str, pl.Series] = field(default_factory=dict)  # e.g. language, language_score


@dataclass(frozen=True)
class Filter:
    """A named filter: the settings keys it reads, its reason codes, and its judgement.

    `uses` are keys of the resolved `filtering` settings: flat keys of the original script
    (min_length, ...) or one block named after the filter (gopher_quality: {...}).
    """

    name: str
    uses: tuple[str, ...]
    reasons: Callable[[Mapping[str, Any]], tuple[str, ...]]  # reason codes, given the settings
    judge: Callable[[pl.Series, Mapping[str, Any]], Verdict]


def expression_filter(
    name: str,
    uses: tuple[str, ...],
    reasons: tuple[str, ...],
    checks: Callable[[Mapping[str, Any]], list[Check]],
) -> Filter:
    """A filter whose checks are polars expressions over the `text` column."""

    def judge(text: pl.Series, settings: Mapping[str, Any]) -> Verdict:
        return Verdict(quality.first_reason(pl.DataFrame({"text": text}), checks(settings)))

    return Filter(name, uses, lambda _settings: reasons, judge)


def block_filter(
    name: str,
    reasons: Callable[[Mapping[str, Any]], tuple[str, ...]] | tuple[str, ...],
    judge: Callable[[pl.Series, Mapping[str, Any]], pl.Series],
) -> Filter:
    """A filter configured by one settings block named after it."""

    def reason_codes(settings: Mapping[str, Any]) -> tuple[str, ...]:
        return reasons(settings.get(name) or {}) if callable(reasons) else reasons

    return Filter(
        name,
        (name,),
        reason_codes,
        lambda text, settings: Verdict(judge(text, settings.get(name) or {})),
    )


def c4_quality_judge(text: pl.Series, settings: Mapping[str, Any]) -> Verdict:
    result = quality.c4_quality(text, settings.get("c4_quality") or {})
    return Verdict(result.reason, text=result.text)


def language_judge(text: pl.Series, settings: Mapping[str, Any]) -> Verdict:
    block = settings.get("language_id") or {}
    found = langid.identify(text)
    reason = langid.language_reason(
        found, langid.wanted_languages(block), float(block.get("threshold", 0.65))
    )
    return Verdict(reason, metadata={"language": found.language, "language_score": found.score})


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")


def phrase_pattern(phrase: str, whole_words: bool = True) -> str:
    """A keyword or phrase as a whole-word regex; spaces inside match any whitespace run.

    Rust's Unicode \\b counts combining marks as word characters, so decomposed Vietnamese
    works; a keyword that starts or ends with punctuation ("c++") gets no \\b on that side.
    """
    words = phrase.split()
    body = r"\s+".join(re.escape(word) for word in words)
    start = r"\b" if whole_words and _is_word_char(words[0][0]) else ""
    end = r"\b" if whole_words and _is_word_char(words[-1][-1]) else ""
    return f"{start}{body}{end}"


def keyword_alternation(keywords: list[str], whole_words: bool = True) -> str | None:
    """Case-insensitive alternation of whole-word keywords, each in NFC and NFD form."""
    forms: list[str] = []
    for keyword in sorted(keywords, key=len, reverse=True):  # longest first wins overlaps
        for form in ("NFC", "NFD"):
            pattern = phrase_pattern(unicodedata.normalize(form, keyword), whole_words)
            if pattern not in forms:
                forms.append(pattern)
    return f"(?i)(?:{'|'.join(forms)})" if forms else None


def _keywords(settings: Mapping[str, Any], key: str) -> list[str]:
    return [k for k in (settings.get(key) or []) if isinstance(k, str) and k.strip()]


def length_checks(s: Mapping[str, Any]) -> list[Check]:
    n_chars = TEXT.str.len_chars()
    checks = []
    if s.get("min_length") is not None:
        checks.append(("too_short", n_chars < s["min_length"]))
    if s.get("max_length") is not None:
        checks.append(("too_long", n_chars > s["max_length"]))
    return checks


# Up to this many words, "has at least n words" is a regex that stops at the n-th word,
# about 100x faster than counting every word; beyond it the pattern would grow too large.
BOUNDED_WORD_PATTERN_LIMIT = 1000


def has_at_least_words(n: int) -> pl.Expr:
    """True where the text has at least `n` whitespace-separated words."""
    if n <= 0:
        return pl.lit(True)
    if n <= BOUNDED_WORD_PATTERN_LIMIT:
        return TEXT.str.contains(rf"^\s*(?:\S+\s+){{{n - 1}}}\S")
    return TEXT.str.count_matches(r"\S+") >= n


def word_count_checks(s: Mapping[str, Any]) -> list[Check]:
    checks = []
    if s.get("min_words") is not None:
        checks.append(("too_few_words", ~has_at_least_words(int(s["min_words"]))))
    if s.get("max_words") is not None:
        checks.append(("too_many_words", has_at_least_words(int(s["max_words"]) + 1)))
    return checks


def exclude_keywords_judge(text: pl.Series, settings: Mapping[str, Any]) -> Verdict:
    reason = pl.repeat(None, len(text), dtype=pl.String, eager=True)
    keywords = _keywords(settings, "exclude_keywords")
    if not keywords:
        return Verdict(reason)
    # \b in a Unicode regex keeps Rust's matcher off its fastest engine. The same alternation
    # without word boundaries finds the rows that can match, several times faster; only
    # those go through the whole-word pattern.
    rows = text.str.contains(keyword_alternation(keywords, whole_words=False)).arg_true()
    hits = rows.filter(text.gather(rows).str.contains(keyword_alternation(keywords)))
    return Verdict(reason.scatter(hits, "excluded_keyword"))


def junk_pattern_checks(s: Mapping[str, Any]) -> list[Check]:
    patterns = [p for p in (s.get("junk_patterns") or []) if p]
    if not patterns:
        return []
    matches = pl.sum_horizontal([TEXT.str.count_matches(p) for p in patterns])
    return [("junk_pattern", matches > int(s.get("junk_max_matches") or 0))]


def relevance_checks(s: Mapping[str, Any]) -> list[Check]:
    """Share of keep_keywords present (whole words), as the original scored it; code passes."""
    keywords = {
        " ".join(unicodedata.normalize("NFC", k.lower()).split())
        for k in _keywords(s, "keep_keywords")
    }
    min_relevance = float(s.get("min_relevance") or 0.0)
    if not keywords or min_relevance <= 0:
        return []
    # One regex pass finds the keywords present; overlapping ones ("code" inside "source
    # code") count once, as the longest match.
    found = (
        TEXT.str.extract_all(keyword_alternation(sorted(keywords)))
        .list.eval(
            pl.element().str.to_lowercase().str.normalize("NFC").str.replace_all(r"\s+", " ")
        )
        .list.n_unique()
    )
    relevance = found / len(keywords)
    has_code = TEXT.str.contains("|".join(CODE_INDICATORS))
    return [("low_relevance", (relevance < min_relevance) & ~has_code)]


FILTERS: dict[str, Filter] = {
    f.name: f
    for f in (
        expression_filter(
            "length", ("min_length", "max_length"), ("too_short", "too_long"), length_checks
        ),
        expression_filter(
            "word_count",
            ("min_words", "max_words"),
            ("too_few_words", "too_many_words"),
            word_count_checks,
        ),
        Filter(
            "exclude_keywords",
            ("exclude_keywords",),
            lambda _settings: ("excluded_keyword",),
            exclude_keywords_judge,
        ),
        expression_filter(
            "junk_patterns",
            ("junk_patterns", "junk_max_matches"),
            ("junk_pattern",),
            junk_pattern_checks,
        ),
        expression_filter(
            "relevance",
            ("keep_keywords", "min_relevance"),
            ("low_relevance",),
            relevance_checks,
        ),
        Filter(
            "language_id",
            ("language_id",),
            lambda _settings: ("wrong_language", "low_language_score"),
            language_judge,
        ),
        block_filter("gopher_quality", quality.GOPHER_QUALITY_REASONS, quality.gopher_quality),
        block_filter(
            "gopher_repetition", quality.gopher_repetition_reasons, quality.gopher_repetition
        ),
        Filter(
            "c4_quality",
            ("c4_quality",),
            lambda _settings: quality.C4_QUALITY_REASONS,
            c4_quality_judge,
        ),
        block_filter("fineweb_quality", quality.FINEWEB_QUALITY_REASONS, quality.fineweb_quality),
        block_filter("code_quality", quality.CODE_QUALITY_REASONS, quality.code_quality),
    )
}


def get_filter(name: str) -> Filter:
    if name not in FILTERS:
        raise ConfigError(f"unknown filter '{name}'; known filters: {', '.join(FILTERS)}")
    return FILTERS[name]


def check_regex(pattern: str, where: str) -> None:
    """Junk patterns run in polars' Rust regex engine: compile them there, before any job."""
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((line.strip() for line in reason if line.strip().startswith("error:")), "")
        raise ConfigError(
            f"{where}: invalid regex {pattern!r} ({detail or 'parse error'}); patterns use Rust"
            " regex syntax: no look-around or backreferences"
        ) from None
