"""Stage 2 normalisers: each turns a batch's text column into a cleaner one.

They run in this order: HTML remnants -> Unicode -> control characters -> whitespace.
All of them are polars expressions, except where a document needs a real parser or a
repair library (whole HTML pages, mojibake); those run only on the rows that need them.
"""

from __future__ import annotations

import functools
import html
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

TEXT = "text"

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
    return text.str.replace_many(mapping) if mapping else text


def strip_html(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    is_page = text.str.contains(WHOLE_PAGE)
    pages = is_page.arg_true()
    if len(pages):
        # A Python call per page: a real parser is needed for layout and boilerplate.
        main = bool(settings.get("html_main_content", True))
        converted = [html_page_to_text(page, main) for page in text.gather(pages).to_list()]
        text = text.scatter(pages, converted)
    cleaned = pl.select(
        pl.lit(text)
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[0], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[1], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[2], "")
        .str.replace_all(SCRIPT_OR_STYLE_BLOCKS[3], "")
        .str.replace_all(LINE_BREAK_TAGS, "\n")
        .str.replace_all(TAG, "")
    ).to_series()
    return decode_entities(cleaned).alias(TEXT)


# --- Unicode --------------------------------------------------------------------------------

# UTF-8 read as Latin-1/cp1252: "Ã©" for é, "â€™" for ’, "Â " for a no-break space.
LOOKS_LIKE_MOJIBAKE = r"[ÂÃ][\u0080-\u00BF]|â€[\u0080-\u00BF™œšž¦˜“”]|Ã[\u00A0-\u00BF]"


@functools.cache
def chars_that_may_change(form: str) -> str:
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


def normalise_unicode(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    if settings.get("fix_mojibake"):
        broken = text.str.contains(LOOKS_LIKE_MOJIBAKE).arg_true()
        if len(broken):
            import ftfy

            # A Python call per broken document only: ftfy decides whether and how to repair.
            fixed = [ftfy.fix_text(t) for t in text.gather(broken).to_list()]
            text = text.scatter(broken, fixed)
    form = settings.get("unicode", "NFC")
    if form and form != "none":
        candidates = text.str.contains(chars_that_may_change(form)).arg_true()
        if len(candidates):
            text = text.scatter(candidates, text.gather(candidates).str.normalize(form))
    return text


# --- control characters and whitespace ------------------------------------------------------

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; keep \t and \n (\r is
# a line break and is handled by the whitespace step).
CONTROL_CHARS = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"
# No-break and other Unicode spaces, as literals for Aho-Corasick replacement.
UNICODE_SPACES = [chr(c) for c in (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)]


def remove_control_chars(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    return text.str.replace_all(CONTROL_CHARS, "")


def tidy_whitespace(text: pl.Series, settings: Mapping[str, Any]) -> pl.Series:
    """Trim line ends and blank-line runs; keep line breaks and indentation (code!)."""
    return pl.select(
        pl.lit(text)
        .str.replace_all(r"\r\n?", "\n")  # Windows and old Mac line ends
        .str.replace_many(UNICODE_SPACES, [" "] * len(UNICODE_SPACES))
        .str.replace_all(r"[ \t]+\n", "\n")  # trailing spaces; strip_chars_end does the last
        .str.replace_all(r"\n{4,}", "\n\n\n")  # at most two blank lines (PEP 8 uses two)
        .str.strip_chars_end()
        .str.strip_chars_start("\n")  # leading blank lines; leading spaces are indentation
    ).to_series()


@dataclass(frozen=True)
class Normaliser:
    name: str
    enabled: Callable[[Mapping[str, Any]], bool]
    apply: Callable[[pl.Series, Mapping[str, Any]], pl.Series]


NORMALISERS: tuple[Normaliser, ...] = (
    Normaliser("html", lambda s: bool(s.get("html")), strip_html),
    Normaliser(
        "unicode",
        lambda s: s.get("unicode", "NFC") != "none" or bool(s.get("fix_mojibake")),
        normalise_unicode,
    ),
    Normaliser("control_chars", lambda s: bool(s.get("control_chars")), remove_control_chars),
    Normaliser("whitespace", lambda s: bool(s.get("whitespace")), tidy_whitespace),
)


def enabled_normalisers(settings: Mapping[str, Any]) -> list[Normaliser]:
    return [n for n in NORMALISERS if n.enabled(settings)]
