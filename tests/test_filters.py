"""Each filter at and around its threshold, with the exact reason code."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import ConfigError
from pretrain_mix.filters import FILTERS, check_regex, get_filter, keyword_alternation
from pretrain_mix.profiles import FILTER_DEFAULTS, clean_settings


def reasons(filter_name: str, texts: list[str], **settings: Any) -> list[str | None]:
    """The first failing reason of one filter per text (None = passes)."""
    return (
        FILTERS[filter_name].judge(pl.Series("text", texts, pl.String), settings).reason.to_list()
    )


def test_length_counts_characters_and_bounds_are_inclusive() -> None:
    texts = ["a" * 9, "a" * 10, "é" * 20, "a" * 21]
    assert reasons("length", texts, min_length=10, max_length=20) == [
        "too_short",
        None,
        None,
        "too_long",
    ]


def test_length_without_thresholds_keeps_everything() -> None:
    assert reasons("length", ["", "x"], min_length=None, max_length=None) == [None, None]


def test_word_count_uses_whitespace_separated_words() -> None:
    texts = ["one two", "one two three", "one\ntwo\tthree four", "a b c d e"]
    assert reasons("word_count", texts, min_words=3, max_words=4) == [
        "too_few_words",
        None,
        None,
        "too_many_words",
    ]


@pytest.mark.parametrize("limit", [1, 2, 7, 1000, 1001, 1500])
def test_word_thresholds_agree_with_counting_every_word(limit: int) -> None:
    """Small limits use a pattern that stops early, large ones count; both are exact."""
    texts = [
        " ".join(["w"] * n) + ("\n" if n % 2 else "") for n in (0, limit - 1, limit, limit + 1)
    ]
    texts.append("  \t" + " \n ".join(["w"] * limit))
    expected = ["too_few_words" if len(t.split()) < limit else None for t in texts]
    assert reasons("word_count", texts, min_words=limit) == expected
    too_many = ["too_many_words" if len(t.split()) > limit else None for t in texts]
    assert reasons("word_count", texts, max_words=limit) == too_many


def test_exclude_keywords_match_whole_words_case_insensitively() -> None:
    texts = [
        "You are a WINNER today",
        "a winnerless game",
        "Please click\n  here to go on",
        "clicks here",
        "I like c++ a lot",
        "nothing to see",
    ]
    assert reasons("exclude_keywords", texts, exclude_keywords=["winner", "click here", "c++"]) == [
        "excluded_keyword",
        None,
        "excluded_keyword",
        None,
        "excluded_keyword",
        None,
    ]


def test_vietnamese_keyword_matches_in_either_normal_form() -> None:
    composed = "Nhấn vào đây để nhận quà"
    decomposed = unicodedata.normalize("NFD", composed)
    for keyword in ("nhấn vào đây", unicodedata.normalize("NFD", "nhấn vào đây")):
        assert reasons("exclude_keywords", [composed, decomposed], exclude_keywords=[keyword]) == [
            "excluded_keyword",
            "excluded_keyword",
        ]
    # "nhấn" must not match inside a longer word with the same letters.
    assert reasons("exclude_keywords", ["nhấnn vào đây"], exclude_keywords=["nhấn vào"]) == [None]


def test_empty_keyword_lists_and_none_from_old_configs_filter_nothing() -> None:
    assert reasons("exclude_keywords", ["anything"], exclude_keywords=None) == [None]
    assert reasons("exclude_keywords", ["anything"], exclude_keywords=[]) == [None]


def test_junk_patterns_reject_above_the_allowed_number_of_matches() -> None:
    texts = ["fine.", "wow!!! ok", "wow!!! and!!! more"]
    assert reasons("junk_patterns", texts, junk_patterns=["!{3,}"]) == [
        None,
        "junk_pattern",
        "junk_pattern",
    ]
    assert reasons("junk_patterns", texts, junk_patterns=["!{3,}"], junk_max_matches=1) == [
        None,
        None,
        "junk_pattern",
    ]


def test_relevance_is_the_share_of_keep_keywords_present_and_code_passes() -> None:
    settings = {"keep_keywords": ["python", "api", "data science"], "min_relevance": 0.5}
    texts = [
        "Python and the API docs",  # 2/3
        "Only python here",  # 1/3
        "data   science with python",  # 2/3, phrase across spaces
        "def helper(x):\n    return x",  # 0/3 but code
        "rapid apis",  # whole words only: 0/3
    ]
    assert reasons("relevance", texts, **settings) == [
        None,
        "low_relevance",
        None,
        None,
        "low_relevance",
    ]


def test_relevance_is_off_when_min_relevance_is_zero() -> None:
    assert reasons("relevance", ["x"], keep_keywords=["y"], min_relevance=0.0) == [None]


def test_every_reason_is_a_snake_case_code() -> None:
    settings = clean_settings({}, DatasetSpec(id="x", name="json", weight=1))["thresholds"]
    settings = {**FILTER_DEFAULTS, **settings}
    for f in FILTERS.values():
        for reason in f.reasons(settings):
            assert re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]", reason), reason


def test_invalid_regex_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        check_regex("(?<=x)y", "filtering.junk_patterns[2]")
    message = str(caught.value)
    assert message.startswith("filtering.junk_patterns[2]: invalid regex '(?<=x)y'")
    assert "look-around" in message and "\n" not in message
    with pytest.raises(ConfigError, match="invalid regex"):
        check_regex("(unclosed", "x")


def test_unknown_filter_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match="unknown filter 'gopher_quality_typo'; known filters: length"
    ):
        get_filter("gopher_quality_typo")


KEYWORDS = ["winner", "click here", "c++", "nhấn vào đây", "Cá Cược"]
KEYWORD_PIECES = [
    "winner",
    "WINNER",
    "winnerless",
    "click",
    "here",
    " ",
    "\n",
    "clicks",
    "c++",
    "C++",
    "nhấn vào đây",
    unicodedata.normalize("NFD", "NHẤN VÀO ĐÂY"),
    "cá cược",
    "cá",
    "đây",
    ".",
]


@given(st.lists(st.lists(st.sampled_from(KEYWORD_PIECES), max_size=8).map("".join), max_size=30))
def test_exclude_keywords_prefilter_never_misses_a_whole_word_match(texts: list[str]) -> None:
    """Rows the boundary-free prefilter rules out are not searched: the result must be what the
    whole-word pattern gives on every row."""
    exact = pl.Series(texts, dtype=pl.String).str.contains(keyword_alternation(KEYWORDS))
    expected = ["excluded_keyword" if hit else None for hit in exact.to_list()]
    assert reasons("exclude_keywords", texts, exclude_keywords=KEYWORDS) == expected
