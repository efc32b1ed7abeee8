"""Each normaliser on small documents, with the exact expected output."""

from __future__ import annotations

import itertools
import json
import unicodedata

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pretrain_mix.normalise import (
    SHIPPED_CLASSES,
    apply_edits,
    enabled_normalisers,
    normalise_batch,
    normalise_unicode,
    remove_control_chars,
    shipped_classes_document,
    strip_html,
    tidy_whitespace,
)

HTML_ON = {"html": True, "html_main_content": True}


def run(step, texts: list[str], **settings) -> list[str]:
    return step(pl.Series("text", texts, dtype=pl.String), settings).to_list()


def test_html_remnants_tags_entities_and_script_blocks_are_removed() -> None:
    text = (
        '<p>Tom &amp; Jerry&#8217;s <a href="/x">show</a></p>'
        "<script>var x = '<p>';</script><style>p {color: red}</style>"
        "<!-- a comment -->Next&nbsp;line&#x2019;s end<br/>Last"
    )
    assert run(strip_html, [text], **HTML_ON) == [
        "Tom & Jerry\u2019s show\nNext\u00a0line\u2019s end\nLast"
    ]


def test_text_that_only_looks_like_markup_survives() -> None:
    code = "#include <stdio.h>\nif (a < b && b > c) { List<String> x; }\nAT&T; R&D"
    assert run(strip_html, [code], **HTML_ON) == [code]


def test_whole_html_page_goes_through_the_html_parser() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>T</title><script>track()</script></head>"
        "<body><nav><a href='/'>Home</a></nav><article><h1>Garden notes</h1>"
        "<p>Tomatoes need water &amp; sun every single day of the summer season.</p>"
        "<p>Roses need pruning in early spring before the new growth starts.</p></article>"
        "</body></html>"
    )
    (text,) = run(strip_html, [page], **HTML_ON)
    assert "Tomatoes need water & sun every single day of the summer season." in text
    assert "Roses need pruning" in text
    assert "track()" not in text and "<p>" not in text


def test_vietnamese_in_decomposed_form_comes_out_composed() -> None:
    composed = "Tiếng Việt có dấu thanh và dấu mũ."
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert run(normalise_unicode, [decomposed], unicode="NFC") == [composed]
    assert run(normalise_unicode, [decomposed], unicode="none") == [decomposed]


def test_nfkc_folds_compatibility_characters() -> None:
    assert run(normalise_unicode, ["ﬁnal Ｆｕｌｌ ²"], unicode="NFKC") == ["final Full 2"]
    assert run(normalise_unicode, ["ﬁnal"], unicode="NFC") == ["ﬁnal"]


def test_mojibake_repair_only_touches_documents_that_look_broken() -> None:
    texts = ["The cafÃ© is open â€” come in", "Ã  la carte is fine here: naïve café"]
    fixed = run(normalise_unicode, texts, unicode="NFC", fix_mojibake=True)
    assert fixed[0] == "The café is open — come in"
    assert run(normalise_unicode, ["naïve café — ok"], unicode="NFC", fix_mojibake=True) == [
        "naïve café — ok"
    ]


def test_control_characters_go_but_newline_and_tab_stay() -> None:
    assert run(remove_control_chars, ["a\x00b\x1bc\td\ne\x7ff\x85g"]) == ["abc\td\nefg"]


def test_whitespace_trims_line_ends_and_blank_runs_but_keeps_breaks() -> None:
    text = "\n\nTitle   \r\n\r\nFirst\u00a0paragraph.  \n\n\n\n\n\nSecond paragraph.\t \n  \n"
    assert run(tidy_whitespace, [text]) == ["Title\n\nFirst paragraph.\n\n\nSecond paragraph."]


def test_code_indentation_survives_every_normaliser() -> None:
    code = "def f(x):\n    if x:\n\treturn [i for i in x]  \n\n\n\nclass A:\n    pass\n"
    expected = "def f(x):\n    if x:\n\treturn [i for i in x]\n\n\nclass A:\n    pass"
    text = pl.Series("text", [code])
    for step, settings in [
        (strip_html, HTML_ON),
        (normalise_unicode, {"unicode": "NFC"}),
        (remove_control_chars, {}),
        (tidy_whitespace, {}),
    ]:
        text = step(text, settings)
    assert text.to_list() == [expected]


@pytest.mark.parametrize("empty", ["", "   ", "\n\n"])
def test_whitespace_only_documents_become_empty(empty: str) -> None:
    assert run(tidy_whitespace, [empty]) == [""]


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12), max_size=50))
def test_skipping_already_normalised_texts_changes_no_result(texts: list[str]) -> None:
    """The prefilter only skips texts that the normal form would leave unchanged."""
    for form in ("NFC", "NFKC"):
        expected = [unicodedata.normalize(form, t) for t in texts]
        assert run(normalise_unicode, texts, unicode=form) == expected


# Pieces that every edit looks for, so random documents hit each one and their mixtures.
PIECES = [
    "word",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n\n",
    "\r\n",
    "\r",
    "\u00a0",
    "\u2003",
    "\x00",
    "\x85",
    "<p>",
    "</p>",
    "<br>",
    "&amp;",
    "&#8217;",
    "&nbsp;",
    "<script>x</script>",
    "e\u0301",
    "\u1100\u1161",
    "Ã©",
    "â€™",
    "<!-- c -->",
    "a < b",
    "AT&T",
]
ALL_ON = {
    "html": True,
    "unicode": "NFC",
    "fix_mojibake": True,
    "control_chars": True,
    "whitespace": True,
}


def each_edit_on_its_own(texts: pl.Series, settings: dict) -> pl.Series:
    """The reference: each edit finds its rows in the whole batch (no shared scan)."""
    for step in enabled_normalisers(settings):
        texts = apply_edits(texts, step.edits(settings))
    return texts


@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), max_size=30))
def test_batch_runner_skips_only_rows_an_edit_would_leave_unchanged(texts: list[str]) -> None:
    batch = pl.Series("text", texts, dtype=pl.String)
    for settings in (ALL_ON, {**ALL_ON, "fix_mojibake": False, "html": False}):
        expected = each_edit_on_its_own(batch, settings)
        cleaned, outcomes, _seconds = normalise_batch(batch, settings)
        assert cleaned.to_list() == expected.to_list()
        assert batch.to_list() == texts  # the caller's series is not changed in place
        assert outcomes[0].chars_before == sum(len(t) for t in texts)
        assert outcomes[-1].chars_after == sum(len(t) for t in expected.to_list())
        for before, after in itertools.pairwise(outcomes):
            assert before.chars_after == after.chars_before


def test_batch_runner_counts_documents_each_normaliser_changed() -> None:
    texts = pl.Series("text", ["plain", "a&amp;b", "x\u00a0y", "z\r\n", "e\u0301"])
    _cleaned, outcomes, _seconds = normalise_batch(texts, ALL_ON)
    changed = {o.name: o.documents_changed for o in outcomes}
    assert changed == {"html": 1, "unicode": 1, "control_chars": 0, "whitespace": 2}


@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=8).map("".join), max_size=30))
def test_each_edit_finds_every_row_its_rewrite_changes(texts: list[str]) -> None:
    # Mojibake repair is left out: there `find` is the rule (only text that looks broken).
    settings = {**ALL_ON, "fix_mojibake": False}
    batch = pl.Series("text", texts, dtype=pl.String)
    for step in enabled_normalisers(settings):
        for edit in step.edits(settings):
            assert apply_edits(batch, [edit]).to_list() == edit.rewrite(batch).to_list()
            batch = edit.rewrite(batch)


def test_shipped_normal_form_classes_are_what_this_python_computes() -> None:
    shipped = json.loads(SHIPPED_CLASSES.read_text(encoding="utf-8"))
    if shipped["unidata_version"] != unicodedata.unidata_version:
        pytest.skip("another Unicode version: the classes are computed at run time")
    assert shipped == shipped_classes_document(), (
        "regenerate: python -c 'import json; from pretrain_mix.normalise import *; "
        'SHIPPED_CLASSES.write_text(json.dumps(shipped_classes_document(), indent=1) + "\\n")\''
    )
