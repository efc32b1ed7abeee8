"""Quality filters: each rule at and around its thresholds, with datatrove's reason codes."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from conftest import clean, raw_file

from pretrain_mix import quality
from pretrain_mix.clean import CleanReport, run_filters
from pretrain_mix.config import DatasetSpec
from pretrain_mix.langid import identify
from pretrain_mix.profiles import FILTER_DEFAULTS, clean_settings

WORDS = "the garden and the house have water with roses that grow to light of day".split()


def words(n: int, vocabulary: list[str] = WORDS) -> str:
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(n))


def reasons(rule: Any, texts: list[str], **overrides: Any) -> list[str | None]:
    name = rule.__name__
    settings = {**FILTER_DEFAULTS[name], **overrides}
    result = rule(pl.Series("text", texts, pl.String), settings)
    return getattr(result, "reason", result).to_list()


def gopher(texts: list[str], **overrides: Any) -> list[str | None]:
    return reasons(quality.gopher_quality, texts, **overrides)


def repetition(texts: list[str], **overrides: Any) -> list[str | None]:
    return reasons(quality.gopher_repetition, texts, **overrides)


# ------------------------------------------------------------------------------ Gopher quality


def test_gopher_word_count_bounds() -> None:
    assert gopher([words(49) + ".", words(50) + ".", words(61)], max_doc_words=60) == [
        "gopher_short_doc",
        None,
        "gopher_long_doc",
    ]


def test_punctuation_tokens_are_not_words() -> None:
    # 49 words and a handful of punctuation tokens are still 49 words
    assert gopher([words(49) + " , ; : ! ?"]) == ["gopher_short_doc"]


def test_gopher_mean_word_length() -> None:
    short = words(60, ["the", "of", "to", "an", "a"])  # mean 2.0
    long = words(60, ["the", "of", "extraordinarily", "incomprehensibilities"])  # mean 10.5
    exactly_three = words(60, ["the", "and", "dog", "cat"])  # mean 3.0: not below 3
    assert gopher([short, long, exactly_three]) == [
        "gopher_below_avg_threshold",
        "gopher_above_avg_threshold",
        None,
    ]


def test_gopher_hash_and_ellipsis_ratios() -> None:
    # 50 words + k symbols: k / (50 + k) > 0.1 from k = 6 on
    base = words(50)
    assert gopher([base + " #" * 5, base + " #" * 6, base + " ..." * 6, "… " * 5 + base]) == [
        None,
        "gopher_too_many_hashes",
        "gopher_too_many_ellipsis",
        None,
    ]


def test_gopher_bullet_and_ellipsis_lines() -> None:
    line = words(8)
    bullets_9 = "\n".join([f"- {line}"] * 9 + [line])  # 0.9: not above 0.9
    bullets_10 = "\n".join(f"• {line}" for _ in range(10))
    trailing_3 = "\n".join([line + "..."] * 3 + [line + "."] * 7)  # 0.3: not above
    trailing_4 = "\n".join([line + "…"] * 4 + [line + "."] * 6)
    assert gopher([bullets_9, bullets_10, trailing_3, trailing_4]) == [
        None,
        "gopher_too_many_bullets",
        None,
        "gopher_too_many_end_ellipsis",
    ]


def test_gopher_alphabetic_words_and_stop_words() -> None:
    numbers = words(60) + " 12" * 16  # 60 / 76 words have a letter: 0.79
    fewer_numbers = words(60) + " 12" * 15  # 60 / 75 = 0.8: not below
    no_stop_words = words(60, ["garden", "house", "water", "roses"])
    one_stop_word = words(60, ["garden", "house", "the", "roses"])
    assert gopher([numbers, fewer_numbers, no_stop_words, one_stop_word]) == [
        "gopher_below_alpha_threshold",
        None,
        "gopher_enough_stop_words",
        "gopher_enough_stop_words",
    ]
    # stop words are whole words, and the list is a setting (Vietnamese below)
    assert gopher([words(60, ["thecat", "andthen", "roses"])]) == ["gopher_enough_stop_words"]
    vietnamese = words(60, ["người", "ta", "là", "và", "nhà"])
    assert gopher([vietnamese], stop_words=["là", "và"], min_avg_word_length=1) == [None]


def test_pyvi_tokens_split_numbers_at_their_punctuation() -> None:
    dates = words(60) + " 1/2/3" * 4  # spacy: 4 number tokens; pyvi: 4 x (3 digits + 2 "/")
    assert gopher([dates]) == [None]  # 60 / 64 words have a letter
    assert gopher([dates], tokens="pyvi") == ["gopher_below_alpha_threshold"]  # 60 / 80


def test_zero_or_null_switches_a_gopher_check_off() -> None:
    assert gopher([words(10)], min_doc_words=0, min_stop_words=None) == [None]


# -------------------------------------------------------------------------- Gopher repetition


def numbered_lines(n: int) -> list[str]:
    return [f"{words(6)} number {i}." for i in range(n)]


def test_duplicate_lines_and_paragraphs() -> None:
    lines = numbered_lines(10)
    three_repeats = "\n".join(lines[:7] + [lines[0]] * 3)  # 3/10 duplicates: not above 0.3
    four_repeats = "\n".join(lines[:6] + [lines[0]] * 4)
    paragraphs = "\n\n".join(lines[:6] + [lines[0]] * 4)
    off = {"dup_line_char_frac": 0, "dup_para_char_frac": 0, "top_n_grams": [], "dup_n_grams": []}
    assert repetition([three_repeats, four_repeats, paragraphs], **off) == [
        None,
        "dup_line_frac",
        "dup_para_frac",
    ]


def test_duplicate_line_characters() -> None:
    long_line = words(40) + "."
    text = "\n".join([long_line, long_line] + numbered_lines(6))
    assert repetition([text], dup_line_frac=0, top_n_grams=[], dup_n_grams=[]) == [
        "dup_line_char_frac"
    ]


def test_top_ngram_share() -> None:
    # "ab cd" is 5 characters; 20 repeats among unique words: share = 100 / len(text)
    unique = " ".join(f"w{i:03d}x" for i in range(80))
    text = unique + " " + " ".join(["ab cd"] * 20)
    share = 20 * 5 / len(text)
    assert 0.16 < share < 0.2
    assert repetition([text], top_n_grams=[[2, share - 0.01]], dup_n_grams=[]) == ["top_2_gram"]
    assert repetition([text], top_n_grams=[[2, share + 0.01]], dup_n_grams=[]) == [None]


def test_duplicated_ngram_characters_follow_datatrove_greedy_count() -> None:
    unique = [f"u{i:03d}" for i in range(60)]
    repeated = "alpha beta gamma delta epsilon".split()
    # the 5-gram appears 3 times: the 2nd and 3rd count, 2 x 26 characters (joined, no spaces)
    tokens = repeated + unique[:20] + repeated + unique[20:40] + repeated + unique[40:]
    text = " ".join(tokens)
    share = 2 * len("".join(repeated)) / len(text)
    rule = {"top_n_grams": [], "dup_line_frac": 0, "dup_line_char_frac": 0}
    assert repetition([text], dup_n_grams=[[5, share - 0.005]], **rule) == ["duplicated_5_n_grams"]
    assert repetition([text], dup_n_grams=[[5, share + 0.005]], **rule) == [None]
    # a longer n-gram size sees no repeat at all
    assert repetition([text], dup_n_grams=[[5, 0.9], [6, 0.0001]], **rule) == [None]


def test_repetition_is_independent_of_the_other_documents_in_the_batch() -> None:
    lines = numbered_lines(10)
    doc = "\n".join(lines[:6] + [lines[0]] * 4)
    clean = "\n".join(numbered_lines(8))
    alone = [repetition([d]) for d in (doc, clean)]
    assert repetition([doc, clean, doc]) == [alone[0][0], alone[1][0], alone[0][0]]


# ------------------------------------------------------------------------------------- C4


def c4(texts: list[str], **overrides: Any) -> tuple[list[str | None], list[str]]:
    settings = {**FILTER_DEFAULTS["c4_quality"], **overrides}
    result = quality.c4_quality(pl.Series("text", texts, pl.String), settings)
    return result.reason.to_list(), result.text.to_list()


SENTENCE = "The garden needs water every day in summer."


def test_c4_minimum_sentences() -> None:
    four = "\n".join([SENTENCE] * 4)
    five = " ".join([SENTENCE] * 5)  # five sentences on one line count too
    assert c4([four, five])[0] == ["too_few_sentences", None]
    assert c4([four], min_num_sentences=-1)[0] == [None]


def test_c4_drops_lines_and_keeps_the_rest() -> None:
    text = "\n".join(
        [
            SENTENCE + " [1]",  # citation removed, then the line ends with "." again? no: " "
            "Enable JavaScript to see this page.",
            "Read our privacy policy for details.",
            "Menu",  # no terminal punctuation
            "Too few.",  # fewer than 3 words
            "Wait for it...",  # ellipsis is no terminal punctuation
            *[SENTENCE] * 5,
        ]
    )
    reason, kept = c4([text])
    assert reason == [None]
    assert kept == ["\n".join([SENTENCE] * 5)]


def test_c4_citations_are_removed_from_kept_lines() -> None:
    reason, kept = c4(["\n".join([SENTENCE.replace("day", "day[2]")] * 5)])
    assert reason == [None] and kept == ["\n".join([SENTENCE] * 5)]


def test_c4_document_rules() -> None:
    lorem = "\n".join([SENTENCE] * 5 + ["Lorem ipsum dolor sit amet."])
    curly = "\n".join([SENTENCE] * 5 + ["The value is {x} here."])
    curly_in_dropped_line = "\n".join([SENTENCE] * 5 + ["function() {"])
    assert c4([lorem, curly, curly_in_dropped_line])[0] == ["lorem_ipsum", "curly_bracket", None]


def test_c4_without_terminal_punctuation_rule_keeps_such_lines() -> None:
    text = "\n".join([SENTENCE] * 5 + ["A heading without a full stop"])
    assert c4([text], filter_no_terminal_punct=False)[1] == [text]


# -------------------------------------------------------------------------------- FineWeb


def fineweb(texts: list[str], **overrides: Any) -> list[str | None]:
    return reasons(quality.fineweb_quality, texts, **overrides)


def test_fineweb_line_punctuation_ratio() -> None:
    lines = [f"{words(8)} item {i}" for i in range(25)]
    one_in_nine = "\n".join(lines[:8] + [SENTENCE])  # 1/9 = 0.111 < 0.12
    one_in_eight = "\n".join(lines[:7] + [SENTENCE])  # 0.125
    assert fineweb([one_in_nine, one_in_eight], new_line_ratio=None) == ["line_punct_ratio", None]
    assert fineweb(["\n".join(lines[:9])], line_punct_exclude_zero=True, new_line_ratio=None) == [
        None
    ]


def test_fineweb_short_lines_duplicates_and_lists() -> None:
    short = "\n".join(["Short line here."] * 1 + [f"Item {i}." for i in range(3)] + [SENTENCE])
    duplicated = "\n".join([SENTENCE + f" Part {i}." for i in range(20)] + [SENTENCE + " Part 1."])
    listing = "\n".join(f"{words(1)} {i}." for i in range(12))  # 11 newlines, 36 tokens
    assert fineweb([short], char_duplicates_ratio=None) == ["short_line_ratio"]
    assert fineweb([duplicated]) == ["char_dup_ratio"]
    assert fineweb([listing], short_line_thr=None) == ["list_ratio"]
    assert fineweb([duplicated], char_duplicates_ratio=0.1) == [None]


# ----------------------------------------------------------------------------------- code


def code(texts: list[str], **overrides: Any) -> list[str | None]:
    return reasons(quality.code_quality, texts, **overrides)


def test_code_quality_rules() -> None:
    module = "def add(a, b):\n    return a + b\n"
    long_line = module + "x = '" + "a" * 1000 + "'\n"
    wide = "\n".join(["y = " + "1 + " * 30 + "1"] * 5)  # mean line length > 100
    symbols = "\n".join(["{ [ ( ) ] } ; : = + - * / < > ! & | ^ ~ % , ."] * 5)
    generated = "# This file was generated by protoc. DO NOT EDIT.\n" + module
    assert code([module, long_line, wide, symbols, generated]) == [
        None,
        "code_long_line",
        "code_long_mean_line",
        "code_low_alphanumeric",
        "code_autogenerated",
    ]
    marker_later = module * 5 + "# autogenerated table below\n"
    assert code([marker_later]) == [None]  # only the first lines are read


# ------------------------------------------------------------------------- language and profiles


def test_language_identification_on_short_sentences() -> None:
    found = identify(
        pl.Series(
            [
                "The weather is lovely today and we are going to the park.",
                "Hôm nay trời rất đẹp và chúng tôi đi dạo trong công viên.",
            ]
        )
    )
    assert found.language.to_list() == ["en", "vi"]
    assert all(score > 0.65 for score in found.score.to_list())


VIETNAMESE = (
    "Hà Nội là thủ đô của nước Cộng hòa Xã hội chủ nghĩa Việt Nam và là một trong những thành "
    "phố lớn nhất cả nước. Thành phố nằm ở đồng bằng sông Hồng, có lịch sử hơn một nghìn năm "
    "và được biết đến với nhiều di tích văn hóa. Người dân ở đây thường uống trà và ăn phở vào "
    "buổi sáng. Các con phố cổ có nhiều cửa hàng nhỏ bán đồ thủ công truyền thống. Vào mùa thu, "
    "thời tiết mát mẻ và có nhiều du khách đến thăm hồ Hoàn Kiếm."
)
PYTHON = "\n".join(
    [
        "import os",
        "",
        "",
        "def list_files(folder):",
        '    """Every file under folder, sorted."""',
        "    found = []",
        "    for root, _dirs, files in os.walk(folder):",
        "        for name in files:",
        "            found.append(os.path.join(root, name))",
        "    return sorted(found)",
    ]
)


def verdict(text: str, profile: str, language: str | None) -> str | None:
    spec = DatasetSpec(id="d", name="json", weight=1, profile=profile, language=language)
    settings = clean_settings({"filtering": {"min_length": 20}}, spec)
    report = CleanReport([])
    result = run_filters(
        pl.Series("text", [text]), settings["filters"], settings["thresholds"], report
    )
    return result.reason.to_list()[0]


def test_vietnamese_passes_the_vietnamese_profile_and_fails_the_english_one() -> None:
    assert verdict(VIETNAMESE, "web_multilingual", "vi") is None
    assert verdict(VIETNAMESE, "web", "en") == "wrong_language"


def test_code_passes_the_code_profile_and_fails_the_web_one() -> None:
    assert verdict(PYTHON, "code", None) is None
    assert verdict(PYTHON, "web", "en") is not None


def test_language_without_settings_block_is_a_config_error() -> None:
    from pretrain_mix.errors import ConfigError

    spec = DatasetSpec(id="d", name="json", weight=1, profile="web_multilingual", language="xx")
    with pytest.raises(ConfigError, match="language 'xx' has no block under languages:"):
        clean_settings({}, spec)
    # a config block adds the language, no code needed
    config = {"languages": {"xx": {"gopher_quality": {"stop_words": ["ba", "ko"]}}}}
    thresholds = clean_settings(config, spec)["thresholds"]
    assert thresholds["gopher_quality"]["stop_words"] == ["ba", "ko"]
    assert thresholds["language_id"]["languages"] == ["xx"]


def test_vietnamese_settings_come_from_fineweb2() -> None:
    spec = DatasetSpec(id="d", name="json", weight=1, profile="web_multilingual", language="vi")
    thresholds = clean_settings({}, spec)["thresholds"]
    assert thresholds["language_id"]["threshold"] == 0.802
    assert "là" in thresholds["gopher_quality"]["stop_words"]
    assert thresholds["gopher_repetition"]["dup_para_frac"] == 0  # FineWeb-2 switched it off


def test_builtin_language_blocks_validate_against_the_schema() -> None:
    import copy

    from conftest import REPO
    from snakemake.utils import validate
    from snakemake_interface_common.exceptions import WorkflowError

    from pretrain_mix.profiles import builtin_languages

    schema = str(REPO / "config" / "schema.yaml")
    minimal = [{"name": "json", "data_files": "x", "weight": 1}]
    blocks = copy.deepcopy(builtin_languages())
    fineweb2 = {"de", "el", "es", "fa", "fr", "hi", "it", "ja", "ko", "pt", "ru", "th", "zh"}
    assert set(blocks) >= {"en", "vi"} | fineweb2
    validate({"datasets": minimal, "languages": blocks}, schema)
    # the schema does look inside the blocks
    misspelt = {"zh": {"gopher_quality": {"min_doc_word": 50}}}
    with pytest.raises(WorkflowError):
        validate({"datasets": minimal, "languages": misspelt}, schema)


CHINESE = "\n".join(
    [
        "今天早上天气很好，我们一起去公园散步。",
        "公园里有很多花，红的、黄的、白的都有。",
        "孩子们在草地上玩游戏，老人们在树下下棋。",
        "中午我们在湖边的小饭馆吃了午饭，菜的味道不错。",
        "下午下了一场小雨，空气变得更加清新了。",
        "傍晚回家的时候，路上的灯都亮了起来。",
    ]
)


def test_chinese_web_multilingual_has_gopher_word_checks_off() -> None:
    spec = DatasetSpec(id="d", name="json", weight=1, profile="web_multilingual", language="zh")
    thresholds = clean_settings({}, spec)["thresholds"]
    gopher_settings = thresholds["gopher_quality"]
    for key in (
        "min_doc_words",
        "max_doc_words",
        "min_avg_word_length",
        "max_avg_word_length",
        "max_non_alpha_words_ratio",
    ):
        assert gopher_settings[key] is None, key
    assert gopher_settings["min_stop_words"] == 0
    assert "的" in gopher_settings["stop_words"]  # FineWeb-2's list, kept for reference
    repetition_settings = thresholds["gopher_repetition"]
    assert repetition_settings["top_n_grams"] == [] and repetition_settings["dup_n_grams"] == []
    assert repetition_settings["dup_line_frac"] == 0.287  # line-level: kept
    assert thresholds["fineweb_quality"]["new_line_ratio"] is None
    assert thresholds["fineweb_quality"]["line_punct_thr"] == 0.106
    assert thresholds["language_id"] == {"languages": ["zh"], "threshold": 0.692}
    # a clean Chinese text passes; with the English defaults it is "too short": its 14 runs
    # of characters between punctuation marks are 14 words
    text = pl.Series("text", [CHINESE], pl.String)
    assert quality.gopher_quality(text, gopher_settings).to_list() == [None]
    assert quality.gopher_repetition(text, repetition_settings).to_list() == [None]
    assert quality.fineweb_quality(text, thresholds["fineweb_quality"]).to_list() == [None]
    assert quality.gopher_repetition_reasons(repetition_settings) == (
        "dup_para_frac",
        "dup_para_char_frac",
        "dup_line_frac",
        "dup_line_char_frac",
    )
    assert gopher([CHINESE]) == ["gopher_short_doc"]


def test_language_threshold_and_reasons() -> None:
    from pretrain_mix.langid import Languages, language_reason

    found = Languages(
        language=pl.Series(["en", "en", "vi", None]),
        score=pl.Series([0.65, 0.6499, 0.99, 0.0]),
    )
    assert language_reason(found, ["en"], 0.65).to_list() == [
        None,  # at the threshold: kept (score >= threshold)
        "low_language_score",
        "wrong_language",
        "wrong_language",
    ]
    assert language_reason(found, [], 0.65).to_list() == [None] * 4  # no language: label only


def test_every_cleaned_and_rejected_record_carries_its_language(tmp_path) -> None:
    texts = [VIETNAMESE, "The weather is lovely today and we are going to the park together."]
    spec = DatasetSpec(id="d", name="json", weight=1, profile="p", language="vi")
    settings = clean_settings({"profiles": {"p": {"filters": ["language_id"]}}}, spec)
    kept, rejected, _ = clean(tmp_path, raw_file(tmp_path / "raw.jsonl.gz", texts), settings)
    assert [r["metadata"]["language"] for r in kept] == ["vi"]
    assert kept[0]["metadata"]["language_score"] > 0.802
    assert [r["metadata"]["language"] for r in rejected] == ["en"]
    assert rejected[0]["metadata"]["filter_reason"] == "wrong_language"
