"""Near-duplicate engine: what it finds, what it keeps, and that the answer is reproducible."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from pretrain_mix.errors import ConfigError
from pretrain_mix.minhash import (
    RUN_RECHECK_ROUNDS,
    WORD_HASH_SEED,
    MinHashSettings,
    NearDuplicateIndex,
    NearDuplicateResult,
    band_keys,
    dedup_text,
    exact_jaccard,
    optimal_bands_rows,
    signatures,
    text_similarity,
    xxh64_strings,
)

SETTINGS = MinHashSettings.from_config({"similarity_threshold": 0.8})
BOILERPLATE = [
    "Subscribe to our newsletter for the latest news and exclusive offers every week",
    "Copyright all rights reserved privacy policy terms of use contact us about us",
    "Share this article on social media and leave a comment below to join the talk",
]


def vocabulary(size: int = 3000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(size)})


WORDS = vocabulary()


def document(seed: int, n_words: int = 300) -> str:
    return " ".join(random.Random(seed).choices(WORDS, k=n_words))


def change_words(text: str, positions: list[int]) -> str:
    words = text.split(" ")
    for p in positions:
        words[p] = "changed"
    return " ".join(words)


def run(
    texts: list[str],
    settings: MinHashSettings = SETTINGS,
    batch: int | None = None,
    priority: list[int] | None = None,
    verify: bool = True,
) -> NearDuplicateResult:
    """The engine end to end: signatures and keys batch by batch, then resolve."""
    ids = np.arange(len(texts), dtype=np.int64) * 10  # ids need not be positions
    series = pl.Series(texts)
    index = NearDuplicateIndex(settings)
    step = batch or len(texts)
    for start in range(0, len(texts), step):
        part = series[start : start + step]
        keys = band_keys(signatures(part, settings), settings)
        index.add(
            ids[start : start + step],
            keys,
            part.str.len_chars().to_numpy(),
            None if priority is None else np.array(priority[start : start + step]),
        )
    return index.resolve(text_similarity(ids, series, settings) if verify else None)


def removed(result: NearDuplicateResult) -> dict[int, int]:
    """removed id -> survivor id, ids divided back to positions."""
    return {
        int(r) // 10: int(s) // 10
        for r, s in zip(result.removed_ids, result.survivor_ids, strict=True)
    }


def test_dedup_text_folds_case_numbers_punctuation_space_and_diacritics():
    texts = pl.Series(["  Hello, WORLD!!  Price: 1,234.50 € \n\n Café – naïve  ", None])
    assert dedup_text(texts, fold_diacritics=True).to_list() == [
        "hello world price 0 cafe naive",
        "",
    ]
    assert dedup_text(texts, fold_diacritics=False)[0] == "hello world price 0 café naïve"


def test_exact_and_near_duplicates_are_removed_and_point_at_the_original():
    base = [document(seed) for seed in range(6)]
    texts = [
        *base,
        base[0],  # 6: exact copy
        change_words(base[1], [20, 150, 280]),  # 7: three words changed
        base[2] + "\n" + "\n".join(BOILERPLATE),  # 8: boilerplate appended
        change_words(base[3], [100]).upper(),  # 9: a word changed, shouting
    ]
    result = run(texts)
    assert removed(result) == {6: 0, 7: 1, 8: 2, 9: 3}
    assert result.clusters == 4
    assert result.cluster_sizes == {2: 4}
    assert result.similarity[0] == 1.0
    assert np.all(result.similarity[1:] >= 0.8) and np.all(result.similarity[1:] < 1.0)
    assert result.chain_splits == 0


def test_documents_sharing_only_boilerplate_lines_are_kept():
    texts = [document(seed, 150) + "\n" + "\n".join(BOILERPLATE) for seed in range(20)]
    result = run(texts)
    assert removed(result) == {}
    assert result.pairs_checked == result.pairs_rejected  # any candidate was a false one


def test_unrelated_documents_are_kept_and_form_no_candidates():
    result = run([document(seed, 80) for seed in range(300)])
    assert removed(result) == {}
    assert result.pairs_checked == 0


def test_results_do_not_depend_on_batch_size():
    base = [document(seed, 120) for seed in range(30)]
    texts = base + [change_words(t, [60]) for t in base[::3]] + base[:5]
    results = [run(texts, batch=b) for b in (1, 7, None)]
    for other in results[1:]:
        assert np.array_equal(other.removed_ids, results[0].removed_ids)
        assert np.array_equal(other.survivor_ids, results[0].survivor_ids)
        assert np.array_equal(other.similarity, results[0].similarity)
    assert len(results[0].removed_ids) == 15
    series = pl.Series(texts)
    whole = signatures(series, SETTINGS)
    in_sevens = np.concatenate(
        [signatures(series[i : i + 7], SETTINGS) for i in range(0, len(texts), 7)]
    )
    assert whole.tobytes() == in_sevens.tobytes()


# XXH64 of the UTF-8 bytes at seeds 0 and WORD_HASH_SEED, from the reference implementation
# (the `xxhash` package): 0, 1-3, 4-7, 8-31 and 32+ bytes take different steps.
GOLDEN_XXH64 = {
    "": (17241709254077376921, 16928968354002213309),
    "a": (15154266338359012955, 8376184987872701663),
    "hello": (2794345569481354659, 17173227010078189145),
    "việt": (12406802275091446880, 8419598365948887580),
    "internationalization": (7113448916972265505, 3228141168628972428),
    "pneumonoultramicroscopicsilicovolcanoconiosis": (12591036588563321050, 7526164184661030366),
}


def test_words_are_hashed_with_xxh64_of_their_utf8_bytes():
    words = pl.Series(list(GOLDEN_XXH64))
    assert xxh64_strings(words, 0).tolist() == [v[0] for v in GOLDEN_XXH64.values()]
    assert xxh64_strings(words, WORD_HASH_SEED).tolist() == [v[1] for v in GOLDEN_XXH64.values()]
    assert xxh64_strings(words[2:4], 0).tolist() == [2794345569481354659, 12406802275091446880]
    xxhash = pytest.importorskip("xxhash")
    rng = random.Random(5)
    strings = ["".join(rng.choices("ab é中", k=rng.randint(0, 150))) for _ in range(500)]
    expected = [xxhash.xxh64_intdigest(x.encode(), WORD_HASH_SEED) for x in strings]
    assert xxh64_strings(pl.Series(strings), WORD_HASH_SEED).tolist() == expected


GOLDEN_SIGNATURE = [624405062, 515376529, 289403631, 1435654066, 268356941, 225121415]


def test_signature_values_are_fixed_for_a_fixed_text():
    # Pins the whole chain (folding, XXH64 words, shingles, hash functions) across machines
    # and library versions: a change here breaks stored signatures and mixture-scope stores.
    text = "The quick brown fox jumps over the lazy dog, 42 times! Việt Nam."
    assert signatures(pl.Series([text]), SETTINGS)[0, :6].tolist() == GOLDEN_SIGNATURE


def test_same_seed_same_signature_bytes_in_a_fresh_process_other_seed_other_bytes():
    texts = [document(seed, 50) for seed in range(5)] + ["short one", ""]
    here = signatures(pl.Series(texts), SETTINGS).tobytes()
    code = (
        "import sys, polars as pl;"
        "from pretrain_mix.minhash import MinHashSettings, signatures;"
        "texts = sys.stdin.read().split('\\x1e');"
        "s = MinHashSettings.from_config({'similarity_threshold': 0.8});"
        "sys.stdout.buffer.write(signatures(pl.Series(texts), s).tobytes())"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], input="\x1e".join(texts).encode(), capture_output=True
    )
    assert fresh.returncode == 0, fresh.stderr.decode()
    assert fresh.stdout == here
    reseeded = MinHashSettings.from_config({"similarity_threshold": 0.8, "seed": 2})
    assert signatures(pl.Series(texts), reseeded).tobytes() != here


def test_survivor_first_keeps_the_earliest_longest_keeps_the_longest():
    original = document(1, 200)
    longer = original + " " + " ".join(BOILERPLATE[:1])
    texts = [original, longer, original]
    assert removed(run(texts)) == {1: 0, 2: 0}
    longest = MinHashSettings.from_config({"similarity_threshold": 0.8, "survivor": "longest"})
    assert removed(run(texts, longest)) == {0: 1, 2: 1}
    # Equal lengths: the earlier one wins.
    assert removed(run([original, original], longest)) == {1: 0}


def test_priority_decides_which_dataset_keeps_the_copy():
    shared = document(3, 200)
    # Dataset A (priority 1) comes first in the input; dataset B (priority 0) ranks higher.
    texts = [shared, document(4, 200), shared, document(5, 200)]
    priority = [1, 1, 0, 0]
    assert removed(run(texts, priority=priority)) == {0: 2}
    # "longest": length first, priority breaks ties.
    longest = MinHashSettings.from_config({"similarity_threshold": 0.8, "survivor": "longest"})
    assert removed(run([shared + " extra words here", shared], longest, priority=[1, 0])) == {1: 0}
    assert removed(run(texts, longest, priority=priority)) == {0: 2}


VIETNAMESE = (
    "Hôm nay trời đẹp nên cả nhà tôi đi chợ mua rau và cá để nấu một bữa cơm ngon "
    "cho ông bà ở quê lên chơi vào cuối tuần này sau đó chúng tôi sẽ đi dạo quanh hồ"
)
# Same syllables, other tone marks: different words in Vietnamese.
VIETNAMESE_TONES = (
    "Hồm này trởi đẹp nến cà nhả tối đì chở mùa râu vã cà đề nầu một bữa cơm ngôn "
    "chọ ồng bả ớ què lền chới vảo cuội tuân nảy sàu đò chùng tội sè đì dào quành hổ"
)


def test_fold_diacritics_conflates_vietnamese_tone_variants_only_when_on():
    texts = [VIETNAMESE, VIETNAMESE_TONES]
    assert removed(run(texts)) == {1: 0}
    unfolded = MinHashSettings.from_config({"similarity_threshold": 0.8, "fold_diacritics": False})
    assert removed(run(texts, unfolded)) == {}
    assert exact_jaccard([VIETNAMESE], [VIETNAMESE_TONES], unfolded)[0] < 0.1


@pytest.mark.parametrize(
    ("threshold", "verify", "expected"),
    [
        (0.7, True, (18, 6)),
        (0.85, True, (10, 11)),
        (0.9, True, (8, 14)),
        (0.7, False, (12, 9)),
        (0.85, False, (7, 16)),
        (0.9, False, (5, 22)),
    ],
)
def test_bands_and_rows_are_derived_from_the_threshold(threshold, verify, expected):
    settings = MinHashSettings.from_config({"similarity_threshold": threshold, "verify": verify})
    assert (settings.bands, settings.rows, settings.num_perm) == (*expected, 112)


def test_derivation_matches_datasketch_optimal_param():
    lsh = pytest.importorskip("datasketch.lsh")
    for threshold in (0.5, 0.7, 0.8, 0.85, 0.9):
        for num_perm, weights in ((112, (0.5, 0.5)), (128, (0.1, 0.9))):
            ours = optimal_bands_rows(threshold, num_perm, *weights)
            assert ours == lsh._optimal_param(threshold, num_perm, *weights)


def test_explicit_bands_rows_and_defaults():
    assert MinHashSettings.from_config({}) == MinHashSettings()
    explicit = MinHashSettings.from_config({"bands": 14, "rows": 8})
    assert (explicit.bands, explicit.rows, explicit.num_perm) == (14, 8, 112)
    # Keys the workflow reads are accepted and ignored.
    assert MinHashSettings.from_config({"enabled": True, "scope": "mixture"}) == MinHashSettings()


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"ngram": 0}, "deduplication.ngram"),
        ({"ngram": "5"}, "deduplication.ngram"),
        ({"num_perm": True}, "deduplication.num_perm"),
        ({"bands": 20, "rows": 8, "num_perm": 112}, "deduplication.bands"),
        ({"bands": 0, "rows": 8}, "deduplication.bands"),
        ({"bands": 20, "rows": 8, "num_perm": 128.0}, "deduplication.num_perm"),
        ({"bands": 4}, "deduplication.rows"),
        ({"similarity_threshold": 1.5}, "deduplication.similarity_threshold"),
        ({"similarity_threshold": "high"}, "deduplication.similarity_threshold"),
        ({"fold_diacritics": "yes"}, "deduplication.fold_diacritics"),
        ({"verify": 1}, "deduplication.verify"),
        ({"survivor": "last"}, "deduplication.survivor"),
        ({"seed": -1}, "deduplication.seed"),
        ({"num_perms": 128}, "deduplication.num_perms"),
    ],
)
def test_bad_settings_raise_one_line_config_error_naming_the_key(config, key):
    with pytest.raises(ConfigError) as error:
        MinHashSettings.from_config(config)
    message = str(error.value)
    assert message.startswith(key) and "\n" not in message


def test_verification_rejects_a_false_positive_that_lsh_alone_removes():
    # One hash per band and many bands: documents sharing a third of their shingles
    # almost surely share a band, though their Jaccard is far below the threshold.
    loose = MinHashSettings.from_config({"bands": 40, "rows": 1, "similarity_threshold": 0.8})
    first = document(11, 200)
    words = first.split(" ")
    second = " ".join(words[:100] + document(12, 100).split(" "))
    jaccard = exact_jaccard([first], [second], loose)[0]
    assert 0.2 < jaccard < 0.4
    verified = run([first, second], loose)
    assert removed(verified) == {}
    assert (verified.pairs_checked, verified.pairs_rejected) == (1, 1)
    unverified = run([first, second], loose, verify=False)
    assert removed(unverified) == {1: 0}
    assert not unverified.verified


def test_a_chain_is_split_so_that_every_removal_is_similar_to_its_survivor():
    words = document(21, 140).split(" ")
    a, b, c = (" ".join(words[i : i + 100]) for i in (0, 10, 20))
    settings = MinHashSettings.from_config({"similarity_threshold": 0.75, "seed": 3})
    assert exact_jaccard([a, b, a], [b, c, c], settings).round(3).tolist() == [0.811, 0.811, 0.655]
    # a~b and b~c, but c is not similar to a, the survivor: c is kept, not removed via b.
    verified = run([a, b, c], settings)
    assert removed(verified) == {1: 0}
    assert verified.similarity.round(3).tolist() == [0.811]
    assert (verified.chain_splits, verified.cluster_sizes) == (1, {2: 1})
    survivor, similarity = verified.duplicate_of(np.array([0, 10, 20, 30]))
    assert survivor.tolist() == [-1, 0, -1, -1]
    assert similarity[1] == pytest.approx(0.811, abs=1e-3) and np.isnan(similarity[2])
    # A split-off member still loses to a later survivor it is similar to.
    d = " ".join(words[25:125])  # c~d (0.9), d not similar to a or b
    again = run([a, b, c, d], settings)
    assert removed(again) == {1: 0, 3: 2}
    assert again.cluster_sizes == {2: 2}
    # LSH alone (datatrove's behaviour): the whole union-find cluster goes.
    assert removed(run([a, b, c], settings, verify=False)) == {1: 0, 2: 0}


def test_run_members_that_fail_against_the_leader_are_checked_against_each_other():
    # One band where all documents share a key (a false positive run led by document 0), and
    # one where none do: documents 1 and 2 are near duplicates, each unlike the leader.
    settings = MinHashSettings.from_config({"bands": 2, "rows": 1, "similarity_threshold": 0.8})
    second = document(42, 100)
    texts = [document(41, 100), second, change_words(second, [50]), document(43, 100)]
    keys = np.array([[7, 100 + i] for i in range(4)], dtype=np.uint64)
    index = NearDuplicateIndex(settings)
    index.add(np.arange(4), keys, np.full(4, 100))
    assert index.candidate_pairs().tolist() == [[0, 1], [0, 2], [0, 3]]
    result = index.resolve(text_similarity(np.arange(4), texts, settings))
    assert (result.removed_ids.tolist(), result.survivor_ids.tolist()) == ([2], [1])
    # (1, 2) and (1, 3) after the three with the leader; 3 is left alone and stays.
    assert (result.pairs_checked, result.pairs_rejected, result.pairs_rechecked) == (5, 4, 2)

    # Bounded: in a run of 40 unrelated documents, each round drops one leader, for at most
    # RUN_RECHECK_ROUNDS rounds after the first.
    texts = [document(100 + i, 60) for i in range(40)]
    keys = np.array([[7, 100 + i] for i in range(40)], dtype=np.uint64)
    index = NearDuplicateIndex(settings)
    index.add(np.arange(40), keys, np.full(40, 60))
    result = index.resolve(text_similarity(np.arange(40), texts, settings))
    rounds = range(RUN_RECHECK_ROUNDS + 1)
    assert result.pairs_checked == result.pairs_rejected == sum(39 - r for r in rounds)
    assert len(result.removed_ids) == 0


def reference_jaccard(x: str, y: str, n: int) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = dedup_text(pl.Series([text]), True)[0].split(" ")
        return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))}

    a, b = shingles(x), shingles(y)
    return len(a & b) / len(a | b)


def test_exact_jaccard_equals_word_ngram_sets_short_documents_included():
    base = document(31, 60)
    pairs = [
        (base, change_words(base, [5, 30])),
        (base, base + " " + BOILERPLATE[0]),
        ("one two three", "one two three"),
        ("one two three", "one two four"),
        ("a b a b a b a b", "a b a b a b"),  # repeated shingles count once
        ("", ""),
    ]
    ours = exact_jaccard([p[0] for p in pairs], [p[1] for p in pairs], SETTINGS)
    expected = [reference_jaccard(x, y, SETTINGS.ngram) for x, y in pairs]
    assert ours.tolist() == pytest.approx(expected)
    assert ours[2] == 1.0 and ours[3] == 0.0


def test_index_memory_is_eight_bytes_a_band_plus_sixteen_a_document():
    index = NearDuplicateIndex(SETTINGS)
    texts = pl.Series([document(seed, 30) for seed in range(50)])
    keys = band_keys(signatures(texts, SETTINGS), SETTINGS)
    index.add(np.arange(50), keys, texts.str.len_chars().to_numpy())
    assert len(index) == 50
    assert index.nbytes == 50 * (8 * SETTINGS.bands + 16)
    with pytest.raises(ValueError, match="increasing"):
        index.add(np.arange(10), keys[:10], np.ones(10))
