"""Stage 2 normalisers: each turns a batch's text column into a cleaner one.

They run in this order: HTML remnants -> Unicode -> control characters -> whitespace.
A normaliser is a list of *edits*: a rewrite (polars expressions, or a Python call per
document where a real parser or a repair library is needed: whole HTML pages, mojibake) and
how to find the rows it can change. Every rewrite builds its strings anew while finding only
reads them, and most documents need few edits or none, so each edit rewrites only the rows
found for it (see normalise_batch).
"""

from __future__ import annotations

import functools
import html
import json
import sys
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

TEXT = "text"


def replaced(series: pl.Series, rows: pl.Series, values: Any) -> pl.Series:
    """A copy of `series` with `values` at `rows`. (Series.scatter alone changes the series
    it is called on, which here is often the caller's.)"""
    return series.clone().scatter(rows, values)


# --- HTML ----------------------------------------------------------------------------------

# A document that is a whole page goes through an HTML-to-text library instead of regexes.
WHOLE_PAGE = r"(?is)^\s*(?:<!doctype\s+html|<html[\s>])|<head[\s>].*<body[\s>]"
SCRIPT_OR_STYLE_BLOCKS = [
    r"(?is)<script\b[^>]*>.*?</script\s*>",
    r"(?is)<style\b[^>]*>.*?</style\s*>",
    r"(?is)<noscript\b[^>]*>.*?</noscript\s*>",
    r"(?s)<!--.*?-->",
]
BLOCK_TAGS = "p|div|li|h[1-6]|tr|table|ul|ol|section|article|blockquote|pre|header|footer"
LINE_BREAK_TAGS = rf"(?i)<br\s*/?>|</(?:{BLOCK_TAGS})\s*>"
# Only real tag names: `a < b > c`, `#include <stdio.h>` and `List<String>` must survive.
KNOWN_TAGS = (
    "a|abbr|address|article|aside|audio|b|bdi|bdo|big|blockquote|body|br|button|canvas|caption|"
    "center|cite|code|col|colgroup|dd|del|details|dfn|div|dl|dt|em|embed|fieldset|figcaption|"
    "figure|font|footer|form|h[1-6]|head|header|hr|html|i|iframe|img|input|ins|kbd|label|legend|"
    "li|link|main|mark|meta|nav|noscript|object|ol|optgroup|option|p|param|picture|pre|q|s|samp|"
    "section|select|small|source|span|strike|strong|sub|summary|sup|svg|table|tbody|td|"
    "textarea|tfoot|th|thead|time|title|tr|tt|u|ul|var|video|wbr"
)
TAG = rf"(?i)</?(?:{KNOWN_TAGS})(?:\s[^<>]*)?/?>|<!doctype[^>]*>"
ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"


def html_page_to_text(page: str, main_content: bool) -> str:
    """Whole pages: Resiliparse (the extractor DCLM and datatrove use), fast C++ per page."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(page, main_content=main_content, alt_texts=False, links=False)


def decode_entities(text: pl.Series) -> pl.Series:
    """Decode &amp;, &#8217;, &#x2019; ... by mapping each distinct entity of the batch once."""
    distinct = text.str.extract_all(ENTITY).explode().drop_nulls().unique().to_list()
    mapping = {e: html.unescape(e) for e in distinct}
    mapping = {entity: char for entity, char in mapping.items() if char != entity}
    return (text.str.replace_many(mapping) if mapping else text).alias(TEXT)


def strip_markup(text: pl.Series, main_content: bool) -> pl.Series:
    """Whole pages through the HTML parser, then tags and blocks left anywhere."""
    pages = text.str.contains(WHOLE_PAGE).arg_true()
    if len(pages):
        # A Python call per page: a real parser is needed for layout and boilerplate.
        converted = [html_page_to_text(page, main_content) for page in text.gather(pages).to_list()]
        text = replaced(text, pages, converted)
    cleaned = pl.select(
        pl.lit(text)
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[0], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[1], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[2], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[3], "")
        .str.replace_all(LINE_BREAK_TAGS, "\n")
        .str.replace_all(TAG, "")
    ).to_series()
    return cleaned.alias(TEXT)


# --- Unicode --------------------------------------------------------------------------------

# UTF-8 read as Latin-1/cp1252: "Ã©" for é, "â€™" for ’, "Â " for a no-break space.
LOOKS_LIKE_MOJIBAKE = r"[ÂÃ][\u0080-\u00BF]|â€[\u0080-\u00BF™œšž¦˜“”]|Ã[\u00A0-\u00BF]"


# The two classes below, computed once for the Unicode version of the Python that wrote the
# file; computing them takes some 2 s a form, which every clean job would pay again.
SHIPPED_CLASSES = Path(__file__).parent / "data" / "normal_form_classes.json"


@functools.cache
def chars_that_may_change(form: str) -> str:
    """A regex class of every character that can change under `form` (NFC or NFKC); from
    the shipped file when it was made for this Python's Unicode version."""
    shipped = json.loads(SHIPPED_CLASSES.read_text(encoding="utf-8"))
    if shipped["unidata_version"] == unicodedata.unidata_version and form in shipped["classes"]:
        return shipped["classes"][form]
    return compute_chars_that_may_change(form)


def shipped_classes_document() -> dict[str, Any]:
    """What SHIPPED_CLASSES holds; write it with json.dump after a Python upgrade."""
    return {
        "unidata_version": unicodedata.unidata_version,
        "classes": {form: compute_chars_that_may_change(form) for form in ("NFC", "NFKC")},
    }


def compute_chars_that_may_change(form: str) -> str:
    """A regex class of every character that can change under `form` (NFC or NFKC).

    polars' normalisation is several times slower than the text is long, and most documents
    are already normalised; a text without any of these characters is left as it is. The
    class holds characters the form maps elsewhere, combining marks, and the second half of
    every canonical pair (including Hangul vowel and final jamo), which can compose with the
    character before them.
    """
    changing: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        if unicodedata.combining(char) or unicodedata.normalize(form, char) != char:
            changing.add(cp)
        parts = unicodedata.decomposition(char).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            changing.add(int(parts[1], 16))
    ranges: list[list[int]] = []
    for cp in sorted(changing):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[" + "".join(rf"\x{{{a:X}}}-\x{{{b:X}}}" for a, b in ranges) + "]"


def repair_mojibake(text: pl.Series) -> pl.Series:
    import ftfy

    # A Python call per broken document: ftfy decides whether and how to repair.
    return pl.Series(TEXT, [ftfy.fix_text(t) for t in text.to_list()], pl.String)


# --- control characters and whitespace ------------------------------------------------------

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; keep \t and \n (\r is
# a line break and is handled by the whitespace step).
CONTROL_CHARS = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"
# No-break and other Unicode spaces, as literals for Aho-Corasick replacement.
UNICODE_SPACES = [chr(c) for c in (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)]


UNICODE_SPACE_CLASS = "[" + "".join(rf"\x{{{ord(c):X}}}" for c in UNICODE_SPACES) + "]"


def unicode_spaces_to_space(text: pl.Series) -> pl.Series:
    return text.str.replace_many(UNICODE_SPACES, [" "] * len(UNICODE_SPACES))


def has_loose_ends(text: pl.Series) -> pl.Series:
    """Trailing whitespace at the very end, or a blank line at the very start."""
    return text.str.slice(-1).str.contains(r"\s") | text.str.starts_with("\n")


def strip_ends(text: pl.Series) -> pl.Series:
    # strip_chars_end removes White_Space, exactly what \s matches in has_loose_ends.
    # Leading spaces are indentation and stay; leading blank lines go.
    return text.str.strip_chars_end().str.strip_chars_start("\n")


# --- edits and steps ------------------------------------------------------------------------


def found(pattern: str, literal: bool = False) -> Callable[[pl.Series], pl.Series]:
    return lambda text: text.str.contains(pattern, literal=literal)


def replacing(pattern: str, by: str) -> Callable[[pl.Series], pl.Series]:
    return lambda text: text.str.replace_all(pattern, by)


@dataclass(frozen=True)
class Edit:
    """One rewrite of a normaliser, and how to find the rows it may change.

    `find` is True on every row the rewrite would change (it may be True on more). An edit
    found by a rare character class says so in `rare_chars`: one regex pass per batch looks
    for all of them at once, and rows without any need no further look (normalise_batch).
    """

    rewrite: Callable[[pl.Series], pl.Series]
    find: Callable[[pl.Series], pl.Series]
    rare_chars: str | None = None
    # May write rare characters (decoded entities, ftfy): rows it changes after the shared
    # scan join the scanned rows. Today both such edits run before the scan, or only on
    # rows already in it; the flag keeps the runner right if the order changes.
    adds_characters: bool = False
    # The rewrite leaves rows `find` rules out unchanged anyway, so it may as well be given
    # the whole batch. Not so where `find` is the rule: ftfy only sees text that looks broken.
    find_is_a_shortcut: bool = True

    @classmethod
    def of_rare_chars(cls, pattern: str, rewrite: Callable[[pl.Series], pl.Series]) -> Edit:
        return cls(rewrite, found(pattern), rare_chars=pattern)


def html_edits(settings: Mapping[str, Any]) -> list[Edit]:
    """Pages, tags and blocks all start with '<', entities with '&': memchr finds them."""
    main = bool(settings.get("html_main_content", True))
    return [
        Edit(lambda text: strip_markup(text, main), found("<", True), adds_characters=True),
        Edit(decode_entities, found("&", True), adds_characters=True),
    ]


def unicode_edits(settings: Mapping[str, Any]) -> list[Edit]:
    edits = []
    if settings.get("fix_mojibake"):
        broken = LOOKS_LIKE_MOJIBAKE
        edits.append(
            Edit(
                repair_mojibake,
                found(broken),
                rare_chars=broken,
                adds_characters=True,
                find_is_a_shortcut=False,
            )
        )
    form = settings.get("unicode", "NFC")
    if form and form != "none":
        may_change = chars_that_may_change(form)
        edits.append(Edit.of_rare_chars(may_change, lambda text: text.str.normalize(form)))
    return edits


def control_char_edits(settings: Mapping[str, Any]) -> list[Edit]:
    return [Edit.of_rare_chars(CONTROL_CHARS, replacing(CONTROL_CHARS, ""))]


def whitespace_edits(settings: Mapping[str, Any]) -> list[Edit]:
    """Trim line ends and blank-line runs; keep line breaks and indentation (code!)."""
    return [
        Edit(replacing(r"\r\n?", "\n"), found("\r", True)),  # Windows and old Mac line ends
        Edit.of_rare_chars(UNICODE_SPACE_CLASS, unicode_spaces_to_space),
        # Trailing spaces of each line; strip_ends does the last one.
        Edit(replacing(r"[ \t]+\n", "\n"), found(r"[ \t]\n")),
        # At most two blank lines in a row (PEP 8 uses two).
        Edit(replacing(r"\n{4,}", "\n\n\n"), found("\n\n\n\n", True)),
        Edit(strip_ends, has_loose_ends),
    ]


def apply_edits(text: pl.Series, edits: list[Edit]) -> pl.Series:
    """The edits in order, each on the rows its `find` picks (one normaliser on its own)."""
    for edit in edits:
        rows = edit.find(text).arg_true()
        if len(rows):
            text = replaced(text, rows, edit.rewrite(text.gather(rows)))
    return text


def strip_html(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    return apply_edits(text, html_edits(settings))


def normalise_unicode(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    return apply_edits(text, unicode_edits(settings))


def remove_control_chars(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    return apply_edits(text, control_char_edits(settings))


def tidy_whitespace(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    return apply_edits(text, whitespace_edits(settings))


@dataclass(frozen=True)
class Normaliser:
    name: str
    enabled: Callable[[Mapping[str, Any]], bool]
    edits: Callable[[Mapping[str, Any]], list[Edit]]


NORMALISERS: tuple[Normaliser, ...] = (
    Normaliser("html", lambda s: bool(s.get("html")), html_edits),
    Normaliser(
        "unicode",
        lambda s: s.get("unicode", "NFC") != "none" or bool(s.get("fix_mojibake")),
        unicode_edits,
    ),
    Normaliser("control_chars", lambda s: bool(s.get("control_chars")), control_char_edits),
    Normaliser("whitespace", lambda s: bool(s.get("whitespace")), whitespace_edits),
)


def enabled_normalisers(settings: Mapping[str, Any]) -> list[Normaliser]:
    return [n for n in NORMALISERS if n.enabled(settings)]


@dataclass
class StepOutcome:
    name: str
    chars_before: int  # whole batch
    chars_after: int
    documents_changed: int
    seconds: float  # finding and rewriting rows, without the shared rare-character scan


class RareCharRows:
    """Rows that may hold a rare character of any edit, from one regex pass (made when the
    first edit that needs it comes up, so that it sees html's output).

    A row outside it stays outside unless an edit that adds characters changes it; every
    other edit writes none, so the one pass serves all later edits.
    """

    def __init__(self, patterns: list[str]):
        self.pattern = "|".join(patterns)
        self.mask: pl.Series | None = None
        self.seconds = 0.0

    def rows(self, text: pl.Series) -> pl.Series:
        if self.mask is None:
            started = time.perf_counter()
            self.mask = text.str.contains(self.pattern)
            self.seconds += time.perf_counter() - started
        return self.mask.arg_true()

    def add(self, rows: pl.Series) -> None:
        if self.mask is not None:
            self.mask = replaced(self.mask, rows, True)


def mostly(rows: pl.Series, text: pl.Series) -> bool:
    """Whether `rows` hold most of the batch's bytes: rewriting all of it is then cheaper
    than gathering them and scattering the result back."""
    lengths = text.str.len_bytes()
    return int(lengths.gather(rows).sum()) * 2 > int(lengths.sum())


def normalise_batch(
    text: pl.Series, settings: Mapping[str, Any]
) -> tuple[pl.Series, list[StepOutcome], float]:
    """Every enabled normaliser over a batch: (text, one outcome per normaliser, seconds of
    the shared rare-character scan). Same result as apply_edits with every edit in turn."""
    plan = [(step, step.edits(settings)) for step in enabled_normalisers(settings)]
    rare = RareCharRows([e.rare_chars for _, edits in plan for e in edits if e.rare_chars])
    chars = int(text.str.len_chars().sum())
    outcomes = []
    for step, edits in plan:
        started = time.perf_counter()
        scan_before = rare.seconds
        chars_before = chars
        changed = pl.repeat(False, len(text), eager=True)
        for edit in edits:
            if edit.rare_chars is not None:
                rows = rare.rows(text)
                rows = rows.filter(edit.find(text.gather(rows)))
            else:
                rows = edit.find(text).arg_true()
            if len(rows) == 0:
                continue
            if edit.find_is_a_shortcut and mostly(rows, text):
                rows = pl.int_range(0, len(text), dtype=rows.dtype, eager=True)
                given = text  # no gathering and scattering back
            else:
                given = text.gather(rows)
            cleaned = edit.rewrite(given)
            differs = rows.filter(cleaned != given)
            chars += int(cleaned.str.len_chars().sum()) - int(given.str.len_chars().sum())
            text = cleaned if given is text else replaced(text, rows, cleaned)
            changed = replaced(changed, differs, True)
            if edit.adds_characters:
                rare.add(differs)
        seconds = time.perf_counter() - started - (rare.seconds - scan_before)
        outcomes.append(StepOutcome(step.name, chars_before, chars, int(changed.sum()), seconds))
    return text, outcomes, rare.seconds
