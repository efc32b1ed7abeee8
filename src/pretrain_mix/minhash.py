"""Near-duplicate detection: MinHash signatures, LSH banding, verification, clusters.

The engine behind `near_duplicate` removal, within a dataset or across the mixture:

1. `dedup_text` folds case, punctuation, digits, whitespace and (optionally) diacritics;
2. `signatures` hashes every word (XXH64 of its UTF-8 bytes, so that signatures computed on
   different machines match), combines the hashes of every word n-gram ("shingle") and keeps,
   for each of `num_perm` hash functions, the smallest value: an (n, num_perm) uint32 matrix;
3. `band_keys` hashes each band of `rows` signature values into one uint64 key;
4. `NearDuplicateIndex` keeps only the keys (plus id, length and priority) batch after
   batch, pairs documents that share a key in any band, checks the pairs (exact Jaccard
   of the shingle sets when a similarity function is given), joins the accepted pairs
   into clusters and keeps one survivor per cluster.

Everything is vectorised (polars for text, numpy for numbers): loops run over hash
functions, bands and chunks, never over documents.

The hash functions are the multiply-add family h(x) = (a*x + b) mod 2^32 (a odd, a and b
random 32-bit, x the top 32 bits of a strong 64-bit shingle hash); the minimum over a set
is taken on the whole 32-bit value, so it is ordered by the high bits as in Dietzfelbinger's
multiply-add-shift scheme. This is a deliberate choice over (a*x + b) mod (2^31 - 1): numpy
multiplies 32-bit lanes natively (AVX2) but emulates 64-bit products, and the prime
reduction adds four passes: the kernel runs 4.6x to 5.7x slower that way. The estimator's
bias and spread match the binomial theory, like datasketch's, and so does the LSH hit rate
(benchmarks/README.md).

Clusters chain: with A~B and B~C accepted, union-find puts A, B and C in one cluster even if
A and C are not similar. With a similarity check (verification), clusters are made
survivor-centred: a member is removed only if it is similar to the survivor it will name;
the others are clustered again among themselves (`NearDuplicateIndex.resolve`). Without a
check, as in datatrove, every member but the survivor is removed.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from pretrain_mix.errors import ConfigError

SURVIVORS = ("first", "longest")
# Keys of the deduplication section that the workflow reads, not the engine.
WORKFLOW_KEYS = frozenset({"enabled", "scope", "priority"})
# (false positive, false negative) weights when bands/rows are derived. datasketch's default
# is (0.5, 0.5); with verification a false positive costs one exact check while a false
# negative is a duplicate kept for good, so missing pairs weighs more.
DERIVATION_WEIGHTS = {False: (0.5, 0.5), True: (0.1, 0.9)}
MAX_NUM_PERM = 1024
# With verification, how many more leaders a band run's failed members are checked against.
RUN_RECHECK_ROUNDS = 8

_UINT32_MAX = np.uint32(0xFFFFFFFF)
WORD_HASH_SEED = 0x5EED_0F_5709  # word hashes do not depend on `seed`: shingles are the same sets
_PAD_WORD = np.uint64(0x9AD0_9AD0_9AD0_9AD0)  # fills documents shorter than n words
_ODD_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: combines hashes in order
# (num_perm x shingles) values per chunk of the min-hash kernel: 4 MB of uint32, cache sized.
_CHUNK_VALUES = 1 << 20
# Shingles of the pairs compared at once by `ShingleSets.jaccard`: 64 MB of uint64 and order.
_PAIR_VALUES = 1 << 22

# --- settings --------------------------------------------------------------------------------


def lsh_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """Probability that two documents of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=np.float64) ** rows) ** bands


@functools.cache
def optimal_bands_rows(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows), bands x rows <= num_perm, minimising the weighted error areas.

    The false positive area is the chance of becoming a candidate integrated over
    similarities below `threshold`, the false negative area the chance of being missed over
    similarities above it (datasketch's `_optimal_param`, integrated here on a grid).
    """
    below = np.linspace(0.0, threshold, 1001)
    above = np.linspace(threshold, 1.0, 1001)
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        bands = np.arange(1, num_perm // rows + 1)[:, None]
        false_positive = np.trapezoid(lsh_probability(below, bands, rows), below, axis=1)
        false_negative = np.trapezoid(1.0 - lsh_probability(above, bands, rows), above, axis=1)
        error = false_positive_weight * false_positive + false_negative_weight * false_negative
        i = int(np.argmin(error))
        if best is None or error[i] < best[0]:
            best = (float(error[i]), i + 1, rows)
    assert best is not None
    return best[1], best[2]


def _integer(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class MinHashSettings:
    """Near-duplicate settings; build them from the config with `from_config`."""

    ngram: int = 5
    num_perm: int = 112
    bands: int = 10  # derived: optimal for 0.85, 112 hash functions, with verification
    rows: int = 11
    similarity_threshold: float = 0.85
    fold_diacritics: bool = True
    verify: bool = True
    survivor: str = "first"
    seed: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "deduplication") -> None:
        _integer(self.ngram, f"{where}.ngram", 1, 64)
        _integer(self.num_perm, f"{where}.num_perm", 1, MAX_NUM_PERM)
        _integer(self.bands, f"{where}.bands", 1, MAX_NUM_PERM)
        _integer(self.rows, f"{where}.rows", 1, MAX_NUM_PERM)
        if self.bands * self.rows > self.num_perm:
            raise ConfigError(
                f"{where}.bands: bands x rows = {self.bands} x {self.rows} exceeds num_perm "
                f"({self.num_perm}); lower them or raise num_perm"
            )
        threshold = self.similarity_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(f"{where}.similarity_threshold must be a number, got {threshold!r}")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(
                f"{where}.similarity_threshold must be in (0, 1] (estimated Jaccard), "
                f"got {threshold!r}"
            )
        _boolean(self.fold_diacritics, f"{where}.fold_diacritics")
        _boolean(self.verify, f"{where}.verify")
        if self.survivor not in SURVIVORS:
            raise ConfigError(
                f"{where}.survivor must be one of {', '.join(SURVIVORS)}, got {self.survivor!r}"
            )
        _integer(self.seed, f"{where}.seed", 0, 2**63 - 1)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], where: str = "deduplication"
    ) -> MinHashSettings:
        """Settings from a config section; bands and rows derived when both are absent.

        `similarity_threshold` (the original script's key) is the estimated Jaccard
        similarity above which two documents are duplicates; `where` names the section in
        error messages.
        """
        names = {f.name for f in fields(cls)}
        for key in config:
            if key not in names and key not in WORKFLOW_KEYS:
                raise ConfigError(
                    f"{where}.{key}: unknown key; expected one of {', '.join(sorted(names))}"
                )
        values = {k: v for k, v in config.items() if k in names and v is not None}
        if ("bands" in values) != ("rows" in values):
            missing = "rows" if "bands" in values else "bands"
            raise ConfigError(
                f"{where}.{missing} is missing: give both bands and rows, or neither to "
                "derive them from similarity_threshold"
            )
        defaults = cls()
        merged = {name: values.get(name, getattr(defaults, name)) for name in names}
        if "bands" in values:
            bands = _integer(values["bands"], f"{where}.bands", 1, MAX_NUM_PERM)
            rows = _integer(values["rows"], f"{where}.rows", 1, MAX_NUM_PERM)
            merged["num_perm"] = values.get("num_perm", bands * rows)
        else:
            # Check what the derivation reads before deriving.
            cls._unchecked({**merged, "bands": 1, "rows": 1}).validate(where)
            weights = DERIVATION_WEIGHTS[merged["verify"]]
            merged["bands"], merged["rows"] = optimal_bands_rows(
                float(merged["similarity_threshold"]), merged["num_perm"], *weights
            )
        settings = cls._unchecked(merged)
        settings.validate(where)
        return settings

    @classmethod
    def _unchecked(cls, values: Mapping[str, Any]) -> MinHashSettings:
        """An instance without __post_init__'s check, so that errors can name the section."""
        settings = cls.__new__(cls)
        for name, value in values.items():
            object.__setattr__(settings, name, value)
        return settings


# --- text to shingles ------------------------------------------------------------------------

# One number, decimals and thousands separators included, becomes "0" (as datatrove).
NUMBER = r"\p{Nd}+(?:[.,]\p{Nd}+)*"
PUNCTUATION_AND_SPACE = r"[\p{P}\p{S}\s]+"
COMBINING_MARKS = r"\p{Mn}+"


@functools.cache
def _diacritic_table() -> tuple[list[str], list[str]]:
    """Precomposed characters -> the same without combining marks (NFD, drop Mn, NFC).

    A one-pass replacement is twice as fast as normalising every text to NFD; marks that
    are already separate code points are removed by COMBINING_MARKS afterwards.
    """
    patterns, replacements = [], []
    for code in range(0xA0, 0x10000):
        char = chr(code)
        decomposition = unicodedata.decomposition(char)
        if not decomposition or decomposition.startswith("<"):
            continue  # no canonical decomposition (Hangul syllables are kept whole)
        nfd = unicodedata.normalize("NFD", char)
        base = "".join(c for c in nfd if unicodedata.category(c) != "Mn")
        base = unicodedata.normalize("NFC", base)
        if base != char:
            patterns.append(char)
            replacements.append(base)
    return patterns, replacements


def _dedup_text_expr(text: pl.Expr, fold_diacritics: bool) -> pl.Expr:
    text = text.fill_null("").str.to_lowercase().str.replace_all(NUMBER, "0")
    if fold_diacritics:
        # Strips tone marks too: Vietnamese words differing only in tone become one word.
        patterns, replacements = _diacritic_table()
        text = text.str.replace_many(patterns, replacements).str.replace_all(COMBINING_MARKS, "")
    return text.str.replace_all(PUNCTUATION_AND_SPACE, " ").str.strip_chars(" ")


def dedup_text(texts: pl.Series, fold_diacritics: bool) -> pl.Series:
    """Text as near-dup detection sees it: lower case, numbers -> 0, punctuation and symbols
    -> space, whitespace collapsed, and diacritics removed if `fold_diacritics`.

    Input is expected in NFC (stage 2 normalises it); nulls become "".
    """
    return texts.to_frame("text").select(_dedup_text_expr(pl.col("text"), fold_diacritics))["text"]


# XXH64 (github.com/Cyan4973/xxHash, XXH64 spec): the word hash, so that signatures match on
# every machine and library version (polars' own hash is stable within one build only).
WORD_HASH = "xxh64"
_XXH_P1 = 0x9E3779B185EBCA87
_XXH_P2 = 0xC2B2AE3D27D4EB4F
_XXH_P3 = 0x165667B19E3779F9
_XXH_P4 = 0x85EBCA77C2B2AE63
_XXH_P5 = 0x27D4EB2F165667C5
_MASK64 = (1 << 64) - 1


def _rotl(x: np.ndarray, bits: int) -> np.ndarray:
    return (x << np.uint64(bits)) | (x >> np.uint64(64 - bits))


def _xxh_round(accumulator: np.ndarray, lane: np.ndarray) -> np.ndarray:
    return _rotl(accumulator + lane * np.uint64(_XXH_P2), 31) * np.uint64(_XXH_P1)


def _string_buffer(strings: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes of all strings followed by 8 zero bytes, offsets (n + 1)); nulls as ""."""
    array = strings.cast(pl.String).fill_null("").rechunk().to_arrow()
    n = len(array)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64)[array.offset : array.offset + n + 1]
    data = np.zeros(int(offsets[-1] - offsets[0]) + 8, np.uint8)
    if len(data) > 8:
        data[:-8] = np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def _xxh64(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """XXH64 of the byte strings data[starts[i] : starts[i] + lengths[i]] (data: 8 bytes of
    padding at the end), vectorised.

    Strings of 32 bytes or more first run XXH64's 32-byte stripes (a loop over stripes on the
    shrinking set of strings that long); then strings are sorted by the bytes left (0 to 31),
    so that each group runs the same fixed steps on contiguous arrays.
    """
    n = len(starts)
    seed &= _MASK64
    lanes = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))  # unaligned
    hashes = np.full(n, (seed + _XXH_P5) & _MASK64, np.uint64)
    position = starts.astype(np.int64)
    long = np.flatnonzero(lengths >= 32)
    if len(long):
        v = [
            np.full(len(long), (seed + start) & _MASK64, np.uint64)
            for start in (_XXH_P1 + _XXH_P2, _XXH_P2, 0, -_XXH_P1)
        ]
        stripes = lengths[long] // 32
        active = np.arange(len(long))
        for stripe in range(int(stripes.max())):
            active = active[stripes[active] > stripe]
            at = position[long[active]] + 32 * stripe
            for k in range(4):
                v[k][active] = _xxh_round(v[k][active], lanes[at + 8 * k])
        h = _rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)
        for k in range(4):
            h = (h ^ _xxh_round(np.zeros_like(h), v[k])) * np.uint64(_XXH_P1) + np.uint64(_XXH_P4)
        hashes[long] = h
        position[long] += stripes * 32
    hashes += lengths.astype(np.uint64)

    left = (lengths % 32).astype(np.uint8)
    order = np.argsort(left, kind="stable")  # radix sort of bytes
    bounds = np.concatenate([[0], np.cumsum(np.bincount(left, minlength=32))])
    sorted_hashes, sorted_position = hashes[order], position[order]
    for remaining in range(32):
        h = sorted_hashes[bounds[remaining] : bounds[remaining + 1]]
        if len(h) == 0:
            continue
        p = sorted_position[bounds[remaining] : bounds[remaining + 1]]
        for k in range(remaining // 8):
            h ^= _xxh_round(np.zeros_like(h), lanes[p + 8 * k])
            h[:] = _rotl(h, 27) * np.uint64(_XXH_P1) + np.uint64(_XXH_P4)
        p = p + 8 * (remaining // 8)
        if remaining % 8 >= 4:
            h ^= (lanes[p] & np.uint64(0xFFFFFFFF)) * np.uint64(_XXH_P1)
            h[:] = _rotl(h, 23) * np.uint64(_XXH_P2) + np.uint64(_XXH_P3)
            p = p + 4
        for k in range(remaining % 4):
            h ^= data[p + k].astype(np.uint64) * np.uint64(_XXH_P5)
            h[:] = _rotl(h, 11) * np.uint64(_XXH_P1)
    hashes[order] = sorted_hashes

    hashes ^= hashes >> np.uint64(33)
    hashes *= np.uint64(_XXH_P2)
    hashes ^= hashes >> np.uint64(29)
    hashes *= np.uint64(_XXH_P3)
    hashes ^= hashes >> np.uint64(32)
    return hashes


def xxh64_strings(strings: pl.Series, seed: int = 0) -> np.ndarray:
    """XXH64 of each string's UTF-8 bytes (uint64; nulls hash as ""), as
    `xxhash.xxh64_intdigest(s.encode(), seed)` computes it, vectorised."""
    if len(strings) == 0:
        return np.zeros(0, np.uint64)
    data, offsets = _string_buffer(strings)
    return _xxh64(data, offsets[:-1], np.diff(offsets), seed)


def _word_hashes(folded: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """XXH64 of every word of the folded texts (split on " ", as str.split(" ") does), flat,
    and each text's number of words. Words are found in the texts' byte buffer: a space byte
    is never part of a multi-byte UTF-8 character."""
    data, offsets = _string_buffer(folded)
    spaces = np.flatnonzero(data[:-8] == 32)
    n_words = len(folded) + len(spaces)
    # A text's first word starts at its start, the others after a space; words end at a
    # space or at the text's end.
    first = np.arange(len(folded)) + np.searchsorted(spaces, offsets[:-1])
    last = np.append(first[1:], n_words) - 1
    starts = np.empty(n_words, np.int64)
    ends = np.empty(n_words, np.int64)
    after_space = np.ones(n_words, dtype=bool)
    after_space[first] = False
    starts[first], starts[after_space] = offsets[:-1], spaces + 1
    before_space = np.ones(n_words, dtype=bool)
    before_space[last] = False
    ends[last], ends[before_space] = offsets[1:], spaces
    words_per_text = last - first + 1
    return _xxh64(data, starts, ends - starts, WORD_HASH_SEED), words_per_text


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser, in place: every output bit depends on every input bit."""
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xFF51AFD7ED558CCD)
    values ^= values >> np.uint64(33)
    values *= np.uint64(0xC4CEB9FE1A85EC53)
    values ^= values >> np.uint64(33)
    return values


def _pad_short_documents(
    word_hashes: np.ndarray, lengths: np.ndarray, ngram: int
) -> tuple[np.ndarray, np.ndarray]:
    """Documents of fewer than `ngram` words padded to `ngram`: one shingle of all their words."""
    padded = np.maximum(lengths, ngram)
    starts = np.cumsum(lengths) - lengths
    padded_starts = np.cumsum(padded) - padded
    out = np.full(int(padded.sum()), _PAD_WORD, dtype=np.uint64)
    out[np.repeat(padded_starts - starts, lengths) + np.arange(len(word_hashes))] = word_hashes
    return out, padded


def _shingle_hashes(texts: pl.Series, settings: MinHashSettings) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram, flat, and each document's offsets into them (n + 1).

    Every document has at least one shingle; repeated n-grams are kept (the minimum and the
    set operations ignore them).
    """
    if len(texts) == 0:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    word_hashes, lengths = _word_hashes(dedup_text(texts, settings.fold_diacritics))
    n = settings.ngram
    if len(lengths) and lengths.min() < n:
        word_hashes, lengths = _pad_short_documents(word_hashes, lengths, n)
    # Shingle i combines words i .. i+n-1 of the flat array; windows that run into the next
    # document are computed too (cheaper than masking) and dropped below.
    count = len(word_hashes) - n + 1  # >= 1: every document has >= n words now
    shingles = word_hashes[:count].copy()
    for k in range(1, n):
        shingles *= _ODD_MULTIPLIER
        shingles += word_hashes[k : k + count]
    _fmix64(shingles)
    ends = np.cumsum(lengths)
    crossing = (ends[:-1, None] - np.arange(1, n)[None, :]).ravel()
    keep = np.ones(count, dtype=bool)
    keep[crossing] = False
    per_document = lengths - n + 1
    offsets = np.concatenate([[0], np.cumsum(per_document)]).astype(np.int64)
    return shingles[keep], offsets


# --- signatures and band keys ----------------------------------------------------------------


def _hash_functions(settings: MinHashSettings) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the num_perm hash functions, from `seed` alone; a odd (a bijection)."""
    rng = np.random.default_rng(settings.seed)
    a = rng.integers(0, 2**32, settings.num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**32, settings.num_perm, dtype=np.uint64)
    return a.astype(np.uint32), b.astype(np.uint32)


def _min_hashes(
    values: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """min over each document's values of (a*x + b) mod 2^32, for every (a, b): (n, len(a)).

    Chunks of values, not of documents: a long document spans chunks and its minimum is
    folded in, so memory is bounded whatever the document lengths.
    """
    n_functions, n_documents = len(a), len(offsets) - 1
    result = np.full((n_functions, n_documents), _UINT32_MAX, dtype=np.uint32)
    chunk = max(1, _CHUNK_VALUES // n_functions)
    work = np.empty((n_functions, chunk), dtype=np.uint32)
    a_column, b_column = a[:, None], b[:, None]
    for low in range(0, len(values), chunk):
        high = min(low + chunk, len(values))
        first = int(np.searchsorted(offsets, low, side="right")) - 1
        stop = int(np.searchsorted(offsets, high, side="left"))
        starts = np.maximum(offsets[first:stop], low) - low
        permuted = work[:, : high - low]
        np.multiply(a_column, values[None, low:high], out=permuted)
        np.add(permuted, b_column, out=permuted)
        minima = np.minimum.reduceat(permuted, starts, axis=1)
        np.minimum(result[:, first:stop], minima, out=result[:, first:stop])
    return np.ascontiguousarray(result.T)


def signatures(texts: pl.Series, settings: MinHashSettings) -> np.ndarray:
    """MinHash signatures, (len(texts), num_perm) uint32.

    Deterministic: the same text gives the same row whatever the batch it is in, on every
    machine and library version, for the same settings (words are hashed with XXH64).
    """
    shingles, offsets = _shingle_hashes(texts, settings)
    a, b = _hash_functions(settings)
    top_bits = (shingles >> np.uint64(32)).astype(np.uint32)
    return _min_hashes(top_bits, offsets, a, b)


def band_keys(sigs: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """(n, bands) uint64: each band's `rows` signature values hashed into one key."""
    if sigs.ndim != 2 or sigs.shape[1] != settings.num_perm:
        raise ValueError(f"signatures must be (n, {settings.num_perm}), got {sigs.shape}")
    n, bands, rows = len(sigs), settings.bands, settings.rows
    grouped = sigs[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    keys = grouped[:, :, 0].copy()
    for k in range(1, rows):
        keys *= _ODD_MULTIPLIER
        keys += grouped[:, :, k]
    return _fmix64(keys)


# --- similarity ------------------------------------------------------------------------------


def _gather_sets(
    shingles: np.ndarray, offsets: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pair number, shingle) of every shingle of documents rows[k], pairs in order."""
    lengths = offsets[rows + 1] - offsets[rows]
    pair = np.repeat(np.arange(len(rows)), lengths)
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pair, shingles[np.repeat(offsets[rows], lengths) + within]


def _distinct(pair: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group, value) sorted, each value once per group."""
    order = np.lexsort((values, pair))
    pair, values = pair[order], values[order]
    first = np.ones(len(pair), dtype=bool)
    first[1:] = (pair[1:] != pair[:-1]) | (values[1:] != values[:-1])
    return pair[first], values[first]


def _pair_jaccard(
    shingles: np.ndarray,
    offsets: np.ndarray,
    rows_a: np.ndarray,
    rows_b: np.ndarray,
    distinct: bool = False,
) -> np.ndarray:
    """Jaccard of the shingle sets of documents rows_a[k] and rows_b[k], for every k.

    `distinct`: each document's shingles are already distinct (`ShingleSets`).
    """
    n_pairs = len(rows_a)
    pair_a, values_a = _gather_sets(shingles, offsets, rows_a)
    pair_b, values_b = _gather_sets(shingles, offsets, rows_b)
    if not distinct:
        pair_a, values_a = _distinct(pair_a, values_a)
        pair_b, values_b = _distinct(pair_b, values_b)
    pair = np.concatenate([pair_a, pair_b])
    values = np.concatenate([values_a, values_b])
    order = np.lexsort((values, pair))
    pair, values = pair[order], values[order]
    shared = (pair[1:] == pair[:-1]) & (values[1:] == values[:-1])
    intersection = np.bincount(pair[1:][shared], minlength=n_pairs)
    union = (
        np.bincount(pair_a, minlength=n_pairs)
        + np.bincount(pair_b, minlength=n_pairs)
        - intersection
    )
    return intersection / np.maximum(union, 1)


class ShingleSets:
    """The distinct shingle hashes of documents, kept to compare any pairs of them exactly.

    Memory: 8 bytes a distinct shingle (about one a word, so about 1.3x the folded text) plus
    16 bytes a document; comparing holds at most `_PAIR_VALUES` shingles of pairs at once.
    """

    def __init__(self, settings: MinHashSettings):
        self.settings = settings
        self._ids = np.zeros(0, np.int64)  # sorted
        self._offsets = np.zeros(1, np.int64)
        self._shingles = np.zeros(0, np.uint64)
        self._added: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # merged when read

    def _merge(self) -> None:
        if not self._added:
            return
        parts = [(self._ids, np.diff(self._offsets), self._shingles), *self._added]
        ids, sizes, values = (np.concatenate(column) for column in zip(*parts, strict=True))
        order = np.argsort(ids, kind="stable")
        self._shingles = _gather_sets(values, _offsets(sizes), order)[1]
        self._ids, self._offsets = ids[order], _offsets(sizes[order])
        self._added = []
        if np.any(np.diff(self._ids) == 0):
            raise ValueError("ShingleSets: a document was added twice")

    def __len__(self) -> int:
        self._merge()
        return len(self._ids)

    @property
    def nbytes(self) -> int:
        self._merge()
        return self._ids.nbytes + self._offsets.nbytes + self._shingles.nbytes

    def missing(self, doc_ids: np.ndarray) -> np.ndarray:
        """The ids (sorted, unique) of `doc_ids` whose sets are not held."""
        self._merge()
        return np.setdiff1d(np.asarray(doc_ids, dtype=np.int64), self._ids)

    def add(self, doc_ids: np.ndarray, texts: Sequence[str] | pl.Series) -> None:
        """Add the sets of these documents (ids not held yet)."""
        doc_ids = np.asarray(doc_ids, dtype=np.int64)
        shingles, offsets = _shingle_hashes(_as_series(texts), self.settings)
        document, shingles = _distinct(
            np.repeat(np.arange(len(doc_ids)), np.diff(offsets)), shingles
        )
        self._added.append((doc_ids, np.bincount(document, minlength=len(doc_ids)), shingles))

    def jaccard(self, pairs: np.ndarray) -> np.ndarray:
        """Exact Jaccard of each (id, id) pair; every id must be held."""
        self._merge()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            return np.zeros(0)
        rows = np.minimum(np.searchsorted(self._ids, pairs), max(len(self._ids) - 1, 0))
        if len(self._ids) == 0 or not np.array_equal(self._ids[rows], pairs):
            raise KeyError("a pair names a document whose shingles are not held")
        sizes = np.diff(self._offsets)
        chunk = np.cumsum(sizes[rows[:, 0]] + sizes[rows[:, 1]]) // _PAIR_VALUES
        edges = np.r_[0, np.flatnonzero(np.diff(chunk)) + 1, len(pairs)]
        result = np.zeros(len(pairs))
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            part = rows[low:high]
            result[low:high] = _pair_jaccard(
                self._shingles, self._offsets, part[:, 0], part[:, 1], distinct=True
            )
        return result


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _as_series(texts: Sequence[str] | pl.Series) -> pl.Series:
    if isinstance(texts, pl.Series):
        return texts.alias("text")
    return pl.Series("text", list(texts), pl.String)


def exact_jaccard(
    texts_a: Sequence[str] | pl.Series,
    texts_b: Sequence[str] | pl.Series,
    settings: MinHashSettings,
) -> np.ndarray:
    """Exact Jaccard similarity of texts_a[k] and texts_b[k] on the signature's shingle sets.

    Sets of 64-bit shingle hashes, intersected with one sort over all pairs (no Python set
    per pair); a false match needs a 64-bit collision.
    """
    a, b = _as_series(texts_a), _as_series(texts_b)
    if len(a) != len(b):
        raise ValueError(f"texts_a and texts_b differ in length: {len(a)} vs {len(b)}")
    shingles, offsets = _shingle_hashes(pl.concat([a, b]), settings)
    rows = np.arange(len(a))
    return _pair_jaccard(shingles, offsets, rows, rows + len(a))


def _positions(sorted_ids: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions (in the caller's order) of the ids `wanted`."""
    if len(wanted) == 0:
        return np.zeros(0, np.int64)
    found = np.searchsorted(sorted_ids, wanted)
    found = np.minimum(found, len(sorted_ids) - 1)
    if not np.array_equal(sorted_ids[found], wanted):
        raise KeyError("a pair names a document id that was not given")
    return order[found]


def text_similarity(
    doc_ids: np.ndarray, texts: Sequence[str] | pl.Series, settings: MinHashSettings
) -> Callable[[np.ndarray], np.ndarray]:
    """A verification function for `resolve`: exact Jaccard of documents held in memory."""
    texts = _as_series(texts)
    order = np.argsort(doc_ids, kind="stable")
    sorted_ids = np.asarray(doc_ids)[order]

    def similarity(pairs: np.ndarray) -> np.ndarray:
        if len(pairs) == 0:
            return np.zeros(0)
        positions = _positions(sorted_ids, order, np.asarray(pairs).ravel())
        needed, rows = np.unique(positions, return_inverse=True)
        shingles, offsets = _shingle_hashes(texts.gather(needed), settings)
        rows = rows.reshape(-1, 2)
        return _pair_jaccard(shingles, offsets, rows[:, 0], rows[:, 1])

    return similarity


def signature_similarity(
    doc_ids: np.ndarray, sigs: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Jaccard estimated from full signatures (share of equal values), for `resolve`: as its
    `estimate` (LSH decides, this reports) or as its `similarity` (this decides)."""
    order = np.argsort(doc_ids, kind="stable")
    sorted_ids = np.asarray(doc_ids)[order]

    def similarity(pairs: np.ndarray) -> np.ndarray:
        pairs = np.asarray(pairs).reshape(-1, 2)
        if len(pairs) == 0:
            return np.zeros(0)
        a = sigs[_positions(sorted_ids, order, pairs[:, 0])]
        b = sigs[_positions(sorted_ids, order, pairs[:, 1])]
        return (a == b).mean(axis=1)

    return similarity


# --- index and clusters ----------------------------------------------------------------------


@dataclass(frozen=True)
class NearDuplicateResult:
    """What `resolve` decided; arrays are aligned on `removed_ids` (increasing)."""

    removed_ids: np.ndarray  # int64
    survivor_ids: np.ndarray  # int64: the kept document the removed one duplicates
    similarity: np.ndarray  # float64: removed vs survivor (checked if verified, else estimated)
    clusters: int  # survivors with at least one removed document
    cluster_sizes: dict[int, int]  # size (survivor included) -> number of clusters
    pairs_checked: int  # candidate pairs (sharing a band key), and rechecked pairs
    pairs_rejected: int  # pairs checked that the similarity function put below the threshold
    pairs_rechecked: int  # pairs of band-run members that both failed against the run's leader
    chain_splits: int  # documents that joined a cluster through a chain but were not
    #                    similar enough to its survivor, and were clustered again
    verified: bool  # pairs were checked by a similarity function (else LSH alone decided)
    threshold: float

    def duplicate_of(self, doc_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each id: (survivor id or -1 if kept, similarity to it or NaN)."""
        doc_ids = np.asarray(doc_ids, dtype=np.int64)
        if len(self.removed_ids) == 0:
            return np.full(len(doc_ids), -1, np.int64), np.full(len(doc_ids), np.nan)
        at = np.minimum(np.searchsorted(self.removed_ids, doc_ids), len(self.removed_ids) - 1)
        hit = self.removed_ids[at] == doc_ids
        return (
            np.where(hit, self.survivor_ids[at], -1),
            np.where(hit, self.similarity[at], np.nan),
        )

    def stats(self) -> dict[str, Any]:
        """Figures for stats.json."""
        return {
            "removed": len(self.removed_ids),
            "clusters": self.clusters,
            "cluster_sizes": {str(k): v for k, v in sorted(self.cluster_sizes.items())},
            "pairs_checked": self.pairs_checked,
            "pairs_rejected": self.pairs_rejected,
            "pairs_rechecked": self.pairs_rechecked,
            "chain_splits": self.chain_splits,
            "verified": self.verified,
        }


def _components(edges: np.ndarray, n_nodes: int) -> np.ndarray:
    """Each node's cluster label, the smallest node in its cluster (vectorised union-find).

    Hook every edge's larger root under the smaller one, then halve paths until every node
    points at a root; repeat until both ends of every edge share a root.
    """
    parent = np.arange(n_nodes)
    u, v = edges[:, 0], edges[:, 1]
    while True:
        root_u, root_v = parent[u], parent[v]
        differ = root_u != root_v
        if not differ.any():
            return parent
        low, high = np.minimum(root_u, root_v)[differ], np.maximum(root_u, root_v)[differ]
        np.minimum.at(parent, high, low)
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


class NearDuplicateIndex:
    """Band keys of every document added, and the clustering they lead to.

    Memory: 8 bytes (id) + 8 x bands (keys) + 4 (length) + 4 (priority) per document, i.e.
    (8 x bands + 16) MB per million documents: 96 MB with the default 10 bands. Finding
    the candidate pairs needs about 40 bytes per document more while it sorts one band.
    """

    def __init__(self, settings: MinHashSettings):
        self.settings = settings
        self._batches: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._merged: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._last_id: int | None = None
        self._pairs: np.ndarray | None = None

    def add(
        self,
        doc_ids: np.ndarray,
        band_keys: np.ndarray,
        lengths: np.ndarray,
        priority: np.ndarray | None = None,
    ) -> None:
        """Add a batch: ids strictly increasing across all batches (input order).

        The survivor of a cluster is the smallest (priority, id) with survivor "first", the
        largest length, ties by (priority, id), with "longest". `priority`: lower wins, e.g.
        the dataset's position in the mixture's priority list; default 0 for all.
        """
        ids = np.asarray(doc_ids, dtype=np.int64)
        keys = np.asarray(band_keys)
        n = len(ids)
        if keys.shape != (n, self.settings.bands) or keys.dtype != np.uint64:
            raise ValueError(
                f"band_keys must be uint64 ({n}, {self.settings.bands}), "
                f"got {keys.dtype} {keys.shape}"
            )
        lengths = np.asarray(lengths)
        priority = np.zeros(n, np.int32) if priority is None else np.asarray(priority)
        if lengths.shape != (n,) or priority.shape != (n,):
            raise ValueError(f"lengths and priority must have one value per document ({n})")
        if n == 0:
            return
        if np.any(np.diff(ids) <= 0) or (self._last_id is not None and ids[0] <= self._last_id):
            raise ValueError("doc_ids must be unique and increasing across batches")
        self._last_id = int(ids[-1])
        # Band-major, so that sorting one band reads contiguous memory.
        self._batches.append(
            (ids, np.ascontiguousarray(keys.T), lengths.astype(np.int32), priority.astype(np.int32))
        )
        self._merged, self._pairs = None, None

    def __len__(self) -> int:
        return sum(len(batch[0]) for batch in self._batches)

    @property
    def nbytes(self) -> int:
        return sum(sum(a.nbytes for a in batch) for batch in self._batches)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._merged is None:
            if not self._batches:
                bands = self.settings.bands
                empty = np.zeros(0, np.int64), np.zeros((bands, 0), np.uint64)
                self._merged = (*empty, np.zeros(0, np.int32), np.zeros(0, np.int32))
            else:
                parts = list(zip(*self._batches, strict=True))
                self._merged = (
                    np.concatenate(parts[0]),
                    np.concatenate(parts[1], axis=1),
                    np.concatenate(parts[2]),
                    np.concatenate(parts[3]),
                )
                self._batches = [self._merged]  # merged once; later adds append to it
        return self._merged

    @staticmethod
    def _band_runs(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(leader, member) positions of one band: every document whose key an earlier one
        has, and the first document (the run's leader) with that key."""
        n = len(column)
        order = np.argsort(column, kind="stable")  # stable: run leader = first added
        ordered = column[order]
        new_run = np.ones(n, dtype=bool)
        new_run[1:] = ordered[1:] != ordered[:-1]
        leader = order[np.maximum.accumulate(np.where(new_run, np.arange(n), 0))]
        member = ~new_run
        return leader[member], order[member]

    def _candidate_positions(self) -> np.ndarray:
        """(m, 2) positions, first < second, sharing a key in at least one band; unique, sorted.

        In each band, documents with equal keys are sorted together and each is paired with
        the first of its run: k - 1 pairs for k equal keys, not k(k-1)/2, so a boilerplate
        page copied 10,000 times costs 9,999 pairs. Without verification union-find then joins
        them all; with it, members not similar to the leader are paired among themselves
        (`_recheck_runs`), since they may still be similar to each other.
        """
        if self._pairs is None:
            _, keys, _, _ = self._arrays()
            n = keys.shape[1]
            codes = []
            for column in keys:
                leader, member = self._band_runs(column)
                codes.append(leader * n + member)
            unique = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
            self._pairs = np.stack([unique // max(n, 1), unique % max(n, 1)], axis=1)
        return self._pairs

    def _recheck_runs(
        self,
        positions: np.ndarray,
        known: np.ndarray,
        similarity: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Candidate pairs plus pairs among run members that failed against their leader.

        In each band run, the members below the threshold with the leader take the first of
        them as their next leader and are checked against it; those below again take the next
        one, for at most RUN_RECHECK_ROUNDS rounds, so a run of k unrelated documents costs at
        most (RUN_RECHECK_ROUNDS + 1) x k pairs, not k(k-1)/2. Returns all pairs checked
        (sorted, unique), their similarities and how many were added.
        """
        threshold = self.settings.similarity_threshold
        ids, keys, _, _ = self._arrays()
        n = max(len(ids), 1)
        codes = positions[:, 0] * n + positions[:, 1]
        failed = np.sort(codes[known < threshold])
        if len(failed) == 0:
            return positions, known, 0
        runs, members = [], []  # run label (band, leader) and member of every failed pair
        for band, column in enumerate(keys):
            leader, member = self._band_runs(column)
            pair = leader * n + member
            at = np.minimum(np.searchsorted(failed, pair), len(failed) - 1)
            hit = failed[at] == pair
            runs.append(band * n + leader[hit])
            members.append(member[hit])
        run, member = np.concatenate(runs), np.concatenate(members)
        added = 0
        for _ in range(RUN_RECHECK_ROUNDS):
            order = np.lexsort((member, run))
            run, member = run[order], member[order]
            first = np.ones(len(run), dtype=bool)
            first[1:] = run[1:] != run[:-1]
            leader = member[np.maximum.accumulate(np.where(first, np.arange(len(run)), 0))]
            run, leader, member = run[~first], leader[~first], member[~first]
            if len(member) == 0:
                break
            pair = leader * n + member
            asked, inverse = np.unique(pair, return_inverse=True)
            at = np.minimum(np.searchsorted(codes, asked), len(codes) - 1)
            values = np.where(codes[at] == asked, known[at], np.nan)
            new = np.isnan(values)
            if new.any():
                new_pairs = np.stack([asked[new] // n, asked[new] % n], axis=1)
                values[new] = np.asarray(similarity(ids[new_pairs]), dtype=np.float64)
                merged = np.concatenate([codes, asked[new]])
                order = np.argsort(merged, kind="stable")
                codes, known = merged[order], np.concatenate([known, values[new]])[order]
                added += int(new.sum())
            below = values[inverse] < threshold
            run, member = run[below], member[below]
        return np.stack([codes // n, codes % n], axis=1), known, added

    def candidate_pairs(self) -> np.ndarray:
        """(m, 2) int64 doc ids (smaller first) of every pair sharing a band key."""
        ids = self._arrays()[0]
        return ids[self._candidate_positions()]

    def _estimated_similarity(self, positions: np.ndarray) -> np.ndarray:
        """Jaccard estimated from band keys: share of equal bands ^ (1 / rows).

        Coarse (bands + 1 possible values, and pairs sharing one band can fall far below the
        threshold): the fallback when no full signatures are at hand.
        """
        keys = self._arrays()[1]
        equal = (keys[:, positions[:, 0]] == keys[:, positions[:, 1]]).mean(axis=0)
        return equal ** (1.0 / self.settings.rows)

    def _survivor_rank(self, nodes: np.ndarray) -> np.ndarray:
        """Rank of each node as a survivor, 0 = preferred: (priority, id) for "first";
        largest length, then (priority, id), for "longest"."""
        ids, _, lengths, priority = self._arrays()
        keys = (ids[nodes], priority[nodes])
        if self.settings.survivor == "longest":
            keys = (*keys, -lengths[nodes].astype(np.int64))
        rank = np.empty(len(nodes), np.int64)
        rank[np.lexsort(keys)] = np.arange(len(nodes))
        return rank

    def resolve(
        self,
        similarity: Callable[[np.ndarray], np.ndarray] | None = None,
        estimate: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> NearDuplicateResult:
        """Clusters of near duplicates, one survivor each, and the documents to remove.

        With `similarity` (called with (m, 2) doc ids, returns m Jaccard values; e.g.
        `text_similarity` for exact verification), a candidate pair is accepted only at or
        above the threshold, and clusters are made survivor-centred: union-find joins the
        accepted pairs, each cluster keeps its best-ranked document, members at or above the
        threshold with that survivor are removed, and members below it (reached through a
        chain A~B~C) are clustered again among themselves, until none is left. So every
        removed document is similar to the kept document it names, and no two kept documents
        form an accepted pair. The function is also asked for pairs of band-run members that
        both failed against the run's leader (`_recheck_runs`) and for (member, survivor) pairs
        that were not candidates.

        Without it, every candidate pair is accepted and each union-find cluster keeps one
        document, as datatrove does; the similarities reported are then `estimate`'s (called
        like `similarity`, e.g. `signature_similarity` of the candidates' full signatures), or
        without it estimated from the band keys.
        """
        ids = self._arrays()[0]
        positions = self._candidate_positions()
        threshold = self.settings.similarity_threshold
        rechecked = 0

        def estimated(pairs: np.ndarray) -> np.ndarray:
            if estimate is None:
                return self._estimated_similarity(pairs)
            return np.asarray(estimate(ids[pairs]), dtype=np.float64)

        if similarity is not None:
            pair_similarity = np.asarray(similarity(ids[positions]), dtype=np.float64)
            positions, pair_similarity, rechecked = self._recheck_runs(
                positions, pair_similarity, similarity
            )
            accepted = pair_similarity >= threshold
        else:
            pair_similarity = estimated(positions)
            accepted = np.ones(len(positions), dtype=bool)
        nodes, local = np.unique(positions[accepted], return_inverse=True)
        edges = local.reshape(-1, 2)
        rank = self._survivor_rank(nodes)

        def similarity_to(pairs: np.ndarray) -> np.ndarray:
            if similarity is None:
                return estimated(pairs)
            return self._known_or_asked(pairs, positions, pair_similarity, similarity)

        undecided = np.ones(len(nodes), dtype=bool)
        split = np.zeros(len(nodes), dtype=bool)
        removed, survivors, removed_similarity = [], [], []
        while True:
            live = edges[undecided[edges[:, 0]] & undecided[edges[:, 1]]]
            if len(live) == 0:
                break
            label = _components(live, len(nodes))
            in_play = np.unique(live)
            by_cluster = in_play[np.lexsort((rank[in_play], label[in_play]))]
            first = np.ones(len(by_cluster), dtype=bool)
            first[1:] = label[by_cluster][1:] != label[by_cluster][:-1]
            heads = by_cluster[first]
            members = by_cluster[~first]
            head_of = heads[np.searchsorted(label[heads], label[members])]
            pairs = np.stack([nodes[members], nodes[head_of]], axis=1)
            values = similarity_to(np.sort(pairs, axis=1))
            close = values >= threshold if similarity is not None else np.ones(len(values), bool)
            removed.append(members[close])
            survivors.append(head_of[close])
            removed_similarity.append(values[close])
            split[members[~close]] = True
            undecided[heads] = False
            undecided[members[close]] = False

        removed_local = np.concatenate(removed) if removed else np.zeros(0, np.int64)
        order = np.argsort(removed_local)  # positions increase with ids
        removed_local = removed_local[order]
        survivor_local = np.concatenate(survivors)[order] if removed else removed_local
        sizes = np.unique(survivor_local, return_counts=True)[1] + 1
        size_values, size_counts = np.unique(sizes, return_counts=True)
        return NearDuplicateResult(
            removed_ids=ids[nodes[removed_local]],
            survivor_ids=ids[nodes[survivor_local]],
            similarity=(np.concatenate(removed_similarity)[order] if removed else np.zeros(0)),
            clusters=len(sizes),
            cluster_sizes={int(k): int(c) for k, c in zip(size_values, size_counts, strict=True)},
            pairs_checked=len(positions),
            pairs_rejected=int((~accepted).sum()),
            pairs_rechecked=rechecked,
            chain_splits=int(split.sum()),
            verified=similarity is not None,
            threshold=threshold,
        )

    def _known_or_asked(
        self,
        pairs: np.ndarray,
        positions: np.ndarray,
        known: np.ndarray,
        similarity: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Similarity of position pairs (smaller first): reused when checked, else asked for."""
        n = max(len(self._arrays()[0]), 1)
        known_codes = positions[:, 0] * n + positions[:, 1]  # sorted, as positions are
        codes = pairs[:, 0] * n + pairs[:, 1]
        result = np.full(len(pairs), np.nan)
        if len(known_codes):
            at = np.minimum(np.searchsorted(known_codes, codes), len(known_codes) - 1)
            hit = known_codes[at] == codes
            result[hit] = known[at[hit]]
        missing = np.isnan(result)
        if missing.any():
            ids = self._arrays()[0]
            result[missing] = np.asarray(similarity(ids[pairs[missing]]), dtype=np.float64)
        return result
