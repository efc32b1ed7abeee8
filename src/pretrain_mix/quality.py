"""Quality rules after datatrove's Gopher, C4 and FineWeb filters, computed a batch at a time.

Each rule takes the batch's texts and its settings and returns, per document, the reason code
of the first check that fails (null where all pass), named as datatrove names it. Settings
use datatrove's parameter names and defaults; 0 or null switches a check off, as there.

Words. datatrove splits English with spaCy's tokenizer. Here a token is a regex match
(TOKEN: URLs, numbers, abbreviations and clitics whole, runs of letters/digits/marks, every
other non-space character on its own), which gives the same counts for ordinary prose;
`tokens: pyvi` splits every punctuation mark, as FineWeb-2's Vietnamese tokenizer does. In
Vietnamese a word is then a syllable (pyvi groups syllables into words); the `vi` thresholds
in data/languages.yaml are set for syllables.

Counts are regex passes over the whole batch; the rules that ask "have I seen this line /
n-gram before in this document" explode the batch into one row per line or token and use
hashed keys with polars and numpy. The one Python loop is datatrove's greedy duplicated
n-gram count, run only for documents whose vectorised upper bound already fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

# Tokens, close to spaCy's English tokenizer that datatrove uses: URLs, abbreviations (U.S.),
# numbers and dates stay whole, clitics ('s, n't) are tokens of their own, runs of dots or
# dashes are one token, any other non-space, non-word character is a token by itself.
TOKEN = (
    r"https?://\S+|www\.\S+"
    r"|(?:\w\.){2,}"
    r"|\d+(?:[-.,/:]\d+)+"
    r"|['’]\w+"
    r"|\w+"
    r"|\.{2,}|-{2,}"
    r"|[^\w\s]"
)
# pyvi's way (FineWeb-2's Vietnamese tokenizer): every punctuation mark is a token of its
# own, inside numbers and dates too; only "..." stays whole.
TOKEN_PATTERNS = {"spacy": TOKEN, "pyvi": r"\.\.\.|\w+|[^\w\s]"}


def token_pattern(settings: Mapping[str, Any]) -> str:
    return TOKEN_PATTERNS[settings.get("tokens") or "spacy"]


# Gopher's "symbol words" are tokens made only of punctuation (datatrove's PUNCTUATION set:
# punctuation, math, currency and modifier symbols, control characters).
PUNCTUATION_CLASS = r"\p{P}\p{Sm}\p{Sc}\p{Sk}\p{Cc}►"
SYMBOL_TOKEN = rf"^[{PUNCTUATION_CLASS}]+$"
# Unicode's Sentence_Terminal characters: datatrove's TERMINAL_PUNCTUATION is that list.
TERMINAL_AT_END = r"\p{Sentence_Terminal}$"

T = pl.col("text")


def _enabled(value: Any) -> bool:
    """datatrove's `if self.threshold and ...`: 0 and None switch a check off."""
    return value is not None and value is not False and value != 0


def first_reason(frame: pl.DataFrame, checks: Sequence[tuple[str, pl.Expr]]) -> pl.Series:
    """The first (reason, fails) pair that holds per row, in order; null where none does."""
    if not checks:
        return pl.repeat(None, len(frame), dtype=pl.String, eager=True).alias("reason")
    return frame.select(
        pl.coalesce(pl.when(fails).then(pl.lit(reason)) for reason, fails in checks).alias("reason")
    ).to_series()


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def token_table(text: pl.Series, pattern: str = TOKEN) -> pl.DataFrame:
    """One row per token of every document: `doc` (row in the batch) and `token`."""
    return (
        pl.DataFrame({"token": text.str.extract_all(pattern)})
        .with_row_index("doc")
        .explode("token")
        .drop_nulls("token")
    )


def token_counts(tokens: pl.DataFrame, n_docs: int, stop_words: Sequence[str]) -> pl.DataFrame:
    """Per document: tokens, content words (not only punctuation), their characters,
    words with a letter, and distinct stop words present."""
    token = pl.col("token")
    symbol = token.str.contains(SYMBOL_TOKEN)
    per_doc = tokens.group_by("doc").agg(
        n_tokens=pl.len(),
        n_content=(~symbol).sum(),
        content_chars=token.str.len_chars().filter(~symbol).sum(),
        alpha_words=token.str.contains(r"\p{L}").sum(),
        stop_words=token.filter(token.is_in(list(stop_words))).n_unique(),
    )
    every_doc = pl.DataFrame({"doc": pl.arange(0, n_docs, dtype=pl.UInt32, eager=True)})
    return every_doc.join(per_doc, on="doc", how="left", maintain_order="left").fill_null(0)


def _line_count() -> pl.Expr:
    """len(text.splitlines()) for text whose only line break is \\n."""
    return T.str.count_matches("\n", literal=True) + 1 - T.str.ends_with("\n").cast(pl.Int64)


# --------------------------------------------------------------------------- Gopher quality


def gopher_quality(text: pl.Series, s: Mapping[str, Any]) -> pl.Series:
    stop_words = s.get("stop_words") or []
    counts = token_counts(token_table(text, token_pattern(s)), len(text), stop_words)
    stats = pl.concat(
        [
            counts,
            pl.DataFrame({"text": text}).select(
                hashes=T.str.count_matches("#", literal=True),
                ellipses=T.str.count_matches("...", literal=True)
                + T.str.count_matches("…", literal=True),
                n_lines=_line_count(),
                bullet_lines=T.str.count_matches(r"(?m)^[^\S\n]*[•\-]"),
                ellipsis_lines=T.str.count_matches(r"(?m)(?:\.\.\.|…)[^\S\n]*$"),
            ),
        ],
        how="horizontal",
    )
    n_tokens, n_content = pl.col("n_tokens"), pl.col("n_content")
    mean_length = _ratio(pl.col("content_chars"), n_content)
    checks: list[tuple[str, pl.Expr]] = []
    if _enabled(s.get("min_doc_words")):
        checks.append(("gopher_short_doc", n_content < s["min_doc_words"]))
    if _enabled(s.get("max_doc_words")):
        checks.append(("gopher_long_doc", n_content > s["max_doc_words"]))
    if _enabled(s.get("min_avg_word_length")):
        checks.append(("gopher_below_avg_threshold", mean_length < s["min_avg_word_length"]))
    if _enabled(s.get("max_avg_word_length")):
        checks.append(("gopher_above_avg_threshold", mean_length > s["max_avg_word_length"]))
    if _enabled(s.get("max_symbol_word_ratio")):
        limit = s["max_symbol_word_ratio"]
        checks.append(("gopher_too_many_hashes", _ratio(pl.col("hashes"), n_tokens) > limit))
        checks.append(("gopher_too_many_ellipsis", _ratio(pl.col("ellipses"), n_tokens) > limit))
    lines = pl.col("n_lines")
    if _enabled(s.get("max_bullet_lines_ratio")):
        ratio = _ratio(pl.col("bullet_lines"), lines)
        checks.append(("gopher_too_many_bullets", ratio > s["max_bullet_lines_ratio"]))
    if _enabled(s.get("max_ellipsis_lines_ratio")):
        ratio = _ratio(pl.col("ellipsis_lines"), lines)
        checks.append(("gopher_too_many_end_ellipsis", ratio > s["max_ellipsis_lines_ratio"]))
    if _enabled(s.get("max_non_alpha_words_ratio")):
        ratio = _ratio(pl.col("alpha_words"), n_tokens)
        checks.append(("gopher_below_alpha_threshold", ratio < s["max_non_alpha_words_ratio"]))
    if _enabled(s.get("min_stop_words")):
        few = pl.col("stop_words") < s["min_stop_words"]
        checks.append(("gopher_enough_stop_words", few))
    return first_reason(stats, checks)


GOPHER_QUALITY_REASONS = (
    "gopher_short_doc",
    "gopher_long_doc",
    "gopher_below_avg_threshold",
    "gopher_above_avg_threshold",
    "gopher_too_many_hashes",
    "gopher_too_many_ellipsis",
    "gopher_too_many_bullets",
    "gopher_too_many_end_ellipsis",
    "gopher_below_alpha_threshold",
    "gopher_enough_stop_words",
)


# ------------------------------------------------------------------------ repeated parts


def _part_table(parts: pl.Series) -> pl.DataFrame:
    """One row per part (line, paragraph) of each document, with a per-document hashed key."""
    table = pl.DataFrame({"part": parts}).with_row_index("doc").explode("part")
    return table.with_columns(
        seen=~pl.struct("doc", "part").hash(seed=7).is_first_distinct(),
        chars=pl.col("part").str.len_chars(),
    )


@dataclass
class Duplicates:
    """Per document: number of parts, parts seen before in it, and their characters."""

    parts: np.ndarray
    duplicates: np.ndarray
    duplicate_chars: np.ndarray


def duplicates(parts: pl.Series) -> Duplicates:
    """datatrove's find_duplicates for every document: each repeat counts, the first not."""
    table = _part_table(parts)
    n_docs = len(parts)
    doc = table["doc"].to_numpy()
    present = table["part"].is_not_null().to_numpy()
    seen = table["seen"].to_numpy() & present
    chars = table["chars"].fill_null(0).to_numpy()
    return Duplicates(
        parts=np.bincount(doc, weights=present, minlength=n_docs),
        duplicates=np.bincount(doc, weights=seen, minlength=n_docs),
        duplicate_chars=np.bincount(doc, weights=seen * chars, minlength=n_docs),
    )


@dataclass
class Tokens:
    """Every token of a batch in one flat array, with its document, hash and length."""

    doc: np.ndarray  # int64, non-decreasing
    hash: np.ndarray  # uint64
    length: np.ndarray  # int64, characters
    n_docs: int

    @classmethod
    def of(cls, text: pl.Series, pattern: str = TOKEN) -> Tokens:
        table = token_table(text, pattern)
        return cls(
            doc=table["doc"].to_numpy().astype(np.int64),
            hash=table["token"].hash(seed=11).to_numpy(),
            length=table["token"].str.len_chars().to_numpy().astype(np.int64),
            n_docs=len(text),
        )

    def subset(self, mask: np.ndarray) -> Tokens:
        return Tokens(self.doc[mask], self.hash[mask], self.length[mask], self.n_docs)


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _ngram_keys(tokens: Tokens, previous: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the n-grams starting at each token (from the (n-1)-gram hashes), and
    whether that n-gram lies inside one document (False near a document's end)."""
    size = max(len(tokens.hash) - n + 1, 0)
    keys = np.zeros(len(tokens.hash), dtype=np.uint64)
    inside = np.zeros(len(tokens.hash), dtype=bool)
    with np.errstate(over="ignore"):
        keys[:size] = previous[:size] * _MIX + tokens.hash[n - 1 :]
    inside[:size] = tokens.doc[:size] == tokens.doc[n - 1 :]
    return keys, inside


def _window_sums(values: np.ndarray, n: int) -> np.ndarray:
    """sum(values[i:i+n]) for every i (shorter windows at the end)."""
    cumulative = np.concatenate(([0], np.cumsum(values)))
    ends = np.minimum(np.arange(len(values)) + n, len(values))
    return cumulative[ends] - cumulative[:-1]


_DOC_MIX = np.uint64(0xD1342543DE82EF95)
# Hash sets of this many keys stay in CPU cache: 4x faster than one set for the whole batch.
CHUNK_KEYS = 100_000


def _document_keys(tokens: Tokens, keys: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Each position's n-gram key, made per document; an n-gram that runs past its
    document's end gets a key of its own (a counter), so it is never a repeat."""
    with np.errstate(over="ignore"):
        doc_keys = keys ^ (tokens.doc.astype(np.uint64) * _DOC_MIX)
    outside = ~inside
    doc_keys[outside] = np.arange(np.count_nonzero(outside), dtype=np.uint64)
    return doc_keys


def _chunks(docs: np.ndarray) -> list[tuple[int, int]]:
    """Ranges of about CHUNK_KEYS entries that never split a document."""
    cuts = [0]
    while cuts[-1] < len(docs):
        end = min(cuts[-1] + CHUNK_KEYS, len(docs))
        if end < len(docs):
            end = int(np.searchsorted(docs, docs[end], side="left"))
            if end <= cuts[-1]:  # one document longer than a chunk
                end = int(np.searchsorted(docs, docs[cuts[-1]], side="right"))
        cuts.append(end)
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def _first_seen(
    doc_keys: np.ndarray, docs: np.ndarray, with_counts: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(True where a key appears for the first time, occurrences of each first-seen key in
    order of appearance); keys are per document, so chunks along documents are exact."""
    first, counts = [], []
    for begin, end in _chunks(docs):
        part = pl.Series(doc_keys[begin:end])
        first.append(part.is_first_distinct().to_numpy())
        if with_counts:
            counts.append(part.unique_counts().to_numpy())
    if not first:
        return np.zeros(0, bool), np.zeros(0, np.uint32)
    return np.concatenate(first), np.concatenate(counts) if counts else np.zeros(0, np.uint32)


def _top_ngram_chars(tokens: Tokens, keys: np.ndarray, inside: np.ndarray, n: int) -> np.ndarray:
    """Per document, len(top n-gram joined with spaces) x its count (Counter.most_common:
    the most frequent, the first seen among equals); 0 for documents shorter than n."""
    first, counts = _first_seen(_document_keys(tokens, keys, inside), tokens.doc)
    positions = np.flatnonzero(first)  # increasing, so their documents are in order too
    counts = counts[inside[positions]]
    positions = positions[inside[positions]]
    result = np.zeros(tokens.n_docs, dtype=np.int64)
    if len(positions) == 0:
        return result
    docs = tokens.doc[positions]
    new_doc = np.r_[True, docs[1:] != docs[:-1]]
    best = np.maximum.reduceat(counts, np.flatnonzero(new_doc))[np.cumsum(new_doc) - 1]
    is_best = counts == best
    chars = _window_sums(tokens.length, n)[positions] + (n - 1)
    best_docs, best_chars = docs[is_best], (counts * chars)[is_best]
    first_of_doc = np.flatnonzero(np.r_[True, best_docs[1:] != best_docs[:-1]])
    result[best_docs[first_of_doc]] = best_chars[first_of_doc]
    return result


def _covered_repeat_chars(tokens: Tokens, keys: np.ndarray, inside: np.ndarray, n: int):
    """Per document, characters of the tokens covered by n-grams seen before in it: an
    upper bound of datatrove's greedy count, computed for the whole batch at once."""
    first, _ = _first_seen(_document_keys(tokens, keys, inside), tokens.doc, with_counts=False)
    # token j is covered if a repeated n-gram starts in [j - n + 1, j]
    cumulative = np.cumsum(~first & inside)
    before = np.concatenate((np.zeros(n, np.int64), cumulative))[: len(cumulative)]
    covered = cumulative - before > 0
    return np.bincount(tokens.doc, weights=covered * tokens.length, minlength=tokens.n_docs)


def _greedy_repeat_chars(keys: list[int], window_chars: list[int], n: int) -> int:
    """datatrove's find_all_duplicate on one document's n-gram keys: a repeat counts its
    characters and the scan jumps past it, without remembering the n-grams it jumped over.
    A Python loop, run only for documents whose upper bound already fails."""
    seen: set[int] = set()
    repeated_chars, index = 0, 0
    while index < len(keys):
        if keys[index] in seen:
            repeated_chars += window_chars[index]
            index += n
        else:
            seen.add(keys[index])
            index += 1
    return repeated_chars


def _duplicated_ngram_chars(
    tokens: Tokens,
    keys: np.ndarray,
    inside: np.ndarray,
    n: int,
    length: np.ndarray,
    limit: float,
    failed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per document, (datatrove's duplicated n-gram characters where they matter, an upper
    bound): the covered characters bound the count from above, so only documents over the
    limit by that bound, and not failed by an earlier check, are counted exactly."""
    bound = _covered_repeat_chars(tokens, keys, inside, n)
    chars = bound.copy()
    candidates = np.flatnonzero((chars > limit * length) & ~failed)
    if len(candidates) == 0:
        return chars, bound
    window = _window_sums(tokens.length, n)
    bounds = np.searchsorted(tokens.doc, [candidates, candidates + 1])
    for doc, begin, end in zip(candidates, bounds[0], bounds[1], strict=True):
        last = max(end - n + 1, begin)  # n-grams that start and end inside the document
        chars[doc] = _greedy_repeat_chars(keys[begin:last].tolist(), window[begin:last].tolist(), n)
    return chars, bound


def _ngram_chars(
    tokens: Tokens,
    length: np.ndarray,
    top: list[tuple[int, float]],
    repeated: list[tuple[int, float]],
    failed: np.ndarray,
) -> list[tuple[str, np.ndarray, float]]:
    """(reason, characters per document, limit) for each top and duplicated n-gram check;
    `failed` marks documents an earlier check rejects (their exact counts are not needed)."""
    failed = failed.copy()
    wanted = {n: ("top", f) for n, f in top} | {n: ("dup", f) for n, f in repeated}
    results = []
    keys = tokens.hash
    shortest_repeat = min((n for n, _ in repeated), default=None)
    for n in range(2, max(wanted) + 1):
        keys, inside = _ngram_keys(tokens, keys, n)
        if n not in wanted:
            continue
        kind, limit = wanted[n]
        if kind == "top":
            chars = _top_ngram_chars(tokens, keys, inside, n)
            results.append((f"top_{n}_gram", chars, limit))
            failed |= chars > limit * length
            continue
        chars, bound = _duplicated_ngram_chars(tokens, keys, inside, n, length, limit, failed)
        results.append((f"duplicated_{n}_n_grams", chars, limit))
        failed |= chars > limit * length
        later_limits = [f for m, f in repeated if m > n]
        if n == shortest_repeat and later_limits:
            # A repeated longer n-gram is made of repeated n-grams, so `bound` bounds every
            # later count too: only documents over the smallest later limit need them.
            candidates = bound > min(later_limits) * length
            mask = candidates[tokens.doc]
            tokens, keys = tokens.subset(mask), keys[mask]
    return results


def _pairs(value: Any) -> list[tuple[int, float]]:
    return [(int(n), float(f)) for n, f in (value or [])]


def gopher_repetition(text: pl.Series, s: Mapping[str, Any]) -> pl.Series:
    length = text.str.len_chars().to_numpy().astype(np.float64)
    checks: list[tuple[str, np.ndarray]] = []

    def fraction(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, numerator / np.maximum(denominator, 1), 0.0)

    if _enabled(s.get("dup_para_frac")) or _enabled(s.get("dup_para_char_frac")):
        paragraphs = duplicates(
            text.str.strip_chars().str.replace_all(r"\n{2,}", "\x00").str.split("\x00")
        )
        if _enabled(s.get("dup_para_frac")):
            ratio = fraction(paragraphs.duplicates, paragraphs.parts)
            checks.append(("dup_para_frac", ratio > s["dup_para_frac"]))
        if _enabled(s.get("dup_para_char_frac")):
            ratio = fraction(paragraphs.duplicate_chars, length)
            checks.append(("dup_para_char_frac", ratio > s["dup_para_char_frac"]))
    if _enabled(s.get("dup_line_frac")) or _enabled(s.get("dup_line_char_frac")):
        lines = duplicates(text.str.replace_all(r"\n+", "\n").str.split("\n"))
        if _enabled(s.get("dup_line_frac")):
            checks.append(
                ("dup_line_frac", fraction(lines.duplicates, lines.parts) > s["dup_line_frac"])
            )
        if _enabled(s.get("dup_line_char_frac")):
            ratio = fraction(lines.duplicate_chars, length)
            checks.append(("dup_line_char_frac", ratio > s["dup_line_char_frac"]))

    top, repeated = _pairs(s.get("top_n_grams")), _pairs(s.get("dup_n_grams"))
    if top or repeated:
        failed = np.zeros(len(text), dtype=bool)
        for _reason, fails in checks:
            failed |= fails
        ngram_chars = _ngram_chars(Tokens.of(text, token_pattern(s)), length, top, repeated, failed)
        for reason, chars, limit in ngram_chars:
            checks.append((reason, fraction(chars, length) > limit))
    frame = pl.DataFrame({f"c{i}": fails for i, (_, fails) in enumerate(checks)})
    return first_reason(
        frame if checks else pl.DataFrame({"text": text}),
        [(reason, pl.col(f"c{i}")) for i, (reason, _) in enumerate(checks)],
    )


def gopher_repetition_reasons(s: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = ["dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
    reasons += [f"top_{n}_gram" for n, _ in _pairs(s.get("top_n_grams"))]
    reasons += [f"duplicated_{n}_n_grams" for n, _ in _pairs(s.get("dup_n_grams"))]
    return tuple(reasons)


# ------------------------------------------------------------------------------- C4 quality

CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
POLICY_PHRASES = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
]
# A sentence ends at . ! or ? (with any closing quotes or brackets) followed by a space and
# more text: how spaCy's sentencizer splits the lines datatrove counts. Common abbreviations
# are one token in spaCy and end no sentence; they are taken out before counting.
SENTENCE_END = r"[.!?]+[\p{Pe}\p{Pf}\"']*\s+[\p{Ps}\p{Pi}\"']*\w"
ABBREVIATIONS = r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|e\.g|i\.e|a\.m|p\.m|U\.S|No|Inc|Ltd|Co)\."


@dataclass
class C4Result:
    reason: pl.Series
    text: pl.Series  # the kept lines, for documents that pass


def _has_words(column: pl.Expr, n: int) -> pl.Expr:
    """At least n whitespace-separated words: a regex that stops at the n-th word."""
    return pl.lit(True) if n <= 0 else column.str.contains(rf"^\s*(?:\S+\s+){{{n - 1}}}\S")


def c4_quality(text: pl.Series, s: Mapping[str, Any]) -> C4Result:
    """C4's line rules: drop lines that fail, drop documents with lorem ipsum or a curly
    bracket in a line that survived, or fewer than `min_num_sentences` sentences left.

    Steps are materialised one after the other: each works only on the lines that passed
    the previous ones, as datatrove's `continue`s do.
    """
    lines = (
        pl.DataFrame({"line": text.str.split("\n")})
        .with_row_index("doc")
        .explode("line")
        .with_row_index("position")
        .with_columns(pl.col("line").fill_null("").str.strip_chars())
    )
    line = pl.col("line")
    max_word = int(s.get("max_word_length", 1000))
    if max_word != -1:  # only lines longer than the limit can hold such a word
        too_long = (line.str.len_chars() > max_word) & line.str.contains(rf"\S{{{max_word + 1}}}")
        lines = lines.filter(~too_long)
    # words are counted before citations are removed, as datatrove does
    lines = lines.filter(_has_words(line, int(s.get("min_words_per_line", 3))))
    if s.get("remove_citations", True):
        lines = lines.with_columns(line.str.replace_all(CITATION, ""))
    if s.get("filter_no_terminal_punct", True):
        lines = lines.filter(line.str.contains(r"[.?!\"']$") & ~line.str.ends_with("..."))
    lower = pl.col("lower")
    lines = lines.with_columns(lower=line.str.to_lowercase())
    lorem = (
        lower.str.contains("lorem ipsum", literal=True)
        if s.get("filter_lorem_ipsum", True)
        else pl.lit(False)
    )
    javascript = (
        lower.str.contains("javascript", literal=True)
        if s.get("filter_javascript", True)
        else pl.lit(False)
    )
    curly = ~javascript & (
        line.str.contains("{", literal=True)
        if s.get("filter_curly_bracket", True)
        else pl.lit(False)
    )
    policy = (
        lower.str.contains_any(POLICY_PHRASES) if s.get("filter_policy", True) else pl.lit(False)
    )
    lines = lines.with_columns(lorem=lorem, curly=~lorem & curly).with_columns(
        keep=~pl.col("lorem") & ~javascript & ~pl.col("curly") & ~policy
    )
    kept = lines.filter("keep").with_columns(
        sentences=1 + line.str.replace_all(ABBREVIATIONS, "").str.count_matches(SENTENCE_END)
    )
    flagged = lines.group_by("doc").agg(
        first_lorem=pl.col("position").filter("lorem").min(),
        first_curly=pl.col("position").filter("curly").min(),
    )
    kept_per_doc = kept.group_by("doc").agg(
        sentences=pl.col("sentences").sum(), text=line.str.join("\n")
    )
    per_doc = (
        pl.DataFrame({"doc": pl.arange(0, len(text), dtype=pl.UInt32, eager=True)})
        .join(flagged, on="doc", how="left", maintain_order="left")
        .join(kept_per_doc, on="doc", how="left", maintain_order="left")
        .with_columns(pl.col("sentences").fill_null(0), pl.col("text").fill_null(""))
    )
    lorem_first = pl.col("first_lorem").is_not_null() & (
        pl.col("first_curly").is_null() | (pl.col("first_lorem") < pl.col("first_curly"))
    )
    checks = [
        ("lorem_ipsum", lorem_first),
        ("curly_bracket", pl.col("first_curly").is_not_null()),
    ]
    min_sentences = int(s.get("min_num_sentences", 5))
    if min_sentences != -1:
        checks.append(("too_few_sentences", pl.col("sentences") < min_sentences))
    reason = first_reason(per_doc, checks)
    return C4Result(reason=reason, text=per_doc["text"].str.strip_chars().alias("text"))


C4_QUALITY_REASONS = ("lorem_ipsum", "curly_bracket", "too_few_sentences")


# -------------------------------------------------------------------------- FineWeb quality


def fineweb_quality(text: pl.Series, s: Mapping[str, Any]) -> pl.Series:
    lines = (
        pl.DataFrame({"line": text.str.split("\n")})
        .with_row_index("doc")
        .explode("line")
        .filter(pl.col("line").str.strip_chars() != "")
    )
    stop_chars = s.get("stop_chars")
    if stop_chars:
        ends = pl.col("line").str.ends_with(stop_chars[0])
        for char in stop_chars[1:]:
            ends = ends | pl.col("line").str.ends_with(char)
    else:
        ends = pl.col("line").str.contains(TERMINAL_AT_END)
    short_length = int(s.get("short_line_length", 30))
    per_doc = (
        lines.with_columns(
            punct=ends,
            short=pl.col("line").str.len_chars() <= short_length,
            # a line seen before in the same document: its characters count as duplicated
            dup_chars=pl.when(~pl.struct("doc", "line").hash(seed=7).is_first_distinct())
            .then(pl.col("line").str.len_chars())
            .otherwise(0),
        )
        .group_by("doc")
        .agg(
            n_lines=pl.len(),
            punct_lines=pl.col("punct").sum(),
            short_lines=pl.col("short").sum(),
            dup_chars=pl.col("dup_chars").sum(),
        )
    )
    stats = (
        pl.DataFrame({"text": text})
        .with_row_index("doc")
        .join(per_doc, on="doc", how="left", maintain_order="left")
        .with_columns(
            newlines=T.str.count_matches("\n", literal=True),
            chars_without_newlines=T.str.len_chars() - T.str.count_matches("\n", literal=True),
            n_tokens=T.str.count_matches(token_pattern(s)),
        )
    )
    n_lines = pl.col("n_lines")
    checks: list[tuple[str, pl.Expr]] = [("empty", n_lines.is_null())]
    if s.get("line_punct_thr") is not None:
        punct_ratio = pl.col("punct_lines") / n_lines
        fails = punct_ratio < s["line_punct_thr"]
        if s.get("line_punct_exclude_zero"):
            fails = fails & (punct_ratio != 0)
        checks.append(("line_punct_ratio", fails))
    if s.get("short_line_thr") is not None:
        checks.append(("short_line_ratio", pl.col("short_lines") / n_lines > s["short_line_thr"]))
    if s.get("char_duplicates_ratio") is not None:
        ratio = _ratio(pl.col("dup_chars"), pl.col("chars_without_newlines"))
        checks.append(("char_dup_ratio", ratio > s["char_duplicates_ratio"]))
    if s.get("new_line_ratio") is not None:
        ratio = _ratio(pl.col("newlines"), pl.col("n_tokens"))
        checks.append(("list_ratio", ratio > s["new_line_ratio"]))
    return first_reason(stats, checks)


FINEWEB_QUALITY_REASONS = (
    "empty",
    "line_punct_ratio",
    "short_line_ratio",
    "char_dup_ratio",
    "list_ratio",
)


# ----------------------------------------------------------------------------- code quality

# StarCoder's data pipeline: files that say they were generated, in their first lines.
AUTOGENERATED_MARKERS = (
    r"(?i)auto-?generated|automatically generated|generated automatically|"
    r"this file (?:is|was) generated|do not edit"
)


def code_quality(text: pl.Series, s: Mapping[str, Any]) -> pl.Series:
    """Checks for source files, after the StarCoder/The Stack filters."""
    head_lines = int(s.get("autogenerated_head_lines", 5))
    # split once: line lengths and the head lines both come from it
    lines = pl.DataFrame({"text": text}).with_columns(lines=T.str.split("\n"))
    lines = lines.with_columns(line_lengths=pl.col("lines").list.eval(pl.element().str.len_chars()))
    stats = lines.select(
        longest_line=pl.col("line_lengths").list.max(),
        mean_line=pl.col("line_lengths").list.mean(),
        alphanumeric=_ratio(T.str.count_matches(r"[\p{L}\p{N}]"), T.str.len_chars()),
        generated=pl.col("lines")
        .list.head(head_lines)
        .list.join("\n")
        .str.contains(AUTOGENERATED_MARKERS),
    )
    checks: list[tuple[str, pl.Expr]] = []
    if _enabled(s.get("max_line_length")):
        checks.append(("code_long_line", pl.col("longest_line") > s["max_line_length"]))
    if _enabled(s.get("max_mean_line_length")):
        checks.append(("code_long_mean_line", pl.col("mean_line") > s["max_mean_line_length"]))
    if _enabled(s.get("min_alphanumeric_fraction")):
        low = pl.col("alphanumeric") < s["min_alphanumeric_fraction"]
        checks.append(("code_low_alphanumeric", low))
    if s.get("filter_autogenerated", True):
        checks.append(("code_autogenerated", pl.col("generated")))
    return first_reason(stats, checks)


CODE_QUALITY_REASONS = (
    "code_long_line",
    "code_long_mean_line",
    "code_low_alphanumeric",
    "code_autogenerated",
)
