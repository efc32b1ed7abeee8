"""Per-dataset counts: largest remainder, exact totals, the printed table."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pretrain_mix.config import DatasetSpec
from pretrain_mix.plan import format_plan_table, largest_remainder, make_plan, plan_document

weights_strategy = st.lists(
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=40,
)


@given(weights=weights_strategy, total=st.integers(min_value=0, max_value=10**9))
def test_counts_add_up_to_target_exactly(weights: list[float], total: int) -> None:
    counts = largest_remainder(weights, total)
    assert sum(counts) == total
    assert all(c >= 0 for c in counts)


@given(weights=weights_strategy, total=st.integers(min_value=0, max_value=10**7))
def test_each_count_is_floor_or_ceiling_of_its_quota(weights: list[float], total: int) -> None:
    counts = largest_remainder(weights, total)
    exact = [Fraction(repr(w)) for w in weights]
    for count, weight in zip(counts, exact, strict=True):
        quota = total * weight / sum(exact)
        assert math.floor(quota) <= count <= math.ceil(quota)


def test_leftover_goes_to_largest_remainders_then_to_earlier_entries() -> None:
    assert largest_remainder([1, 1, 1], 10) == [4, 3, 3]
    assert largest_remainder([0.2, 0.3, 0.5], 7) == [1, 2, 4]  # quotas 1.4, 2.1, 3.5
    # quotas 505.98, 455.38, 34.19, 4.44: floors leave 2, given to .98 and .44
    assert largest_remainder([0.37, 0.333, 0.025, 0.00325], 1000) == [506, 455, 34, 5]


def test_decimal_weights_behave_as_written() -> None:
    # 0.1 + 0.2 != 0.3 in binary; read as decimals, the split is exact.
    assert largest_remainder([0.1, 0.2, 0.3], 6) == [1, 2, 3]


def _spec(dataset_id: str, weight: float) -> DatasetSpec:
    return DatasetSpec(id=dataset_id, name=dataset_id, weight=weight)


def test_plan_rows_and_document_carry_counts_and_shares() -> None:
    plan = make_plan([_spec("a", 3), _spec("b", 1)], 10)
    assert [(row.id, row.count) for row in plan] == [("a", 8), ("b", 2)]
    assert plan[0].share == 0.75 and plan[0].quota == 7.5
    document = plan_document(plan, 10, seed=7)
    assert document["target_samples"] == 10 and document["seed"] == 7
    assert [d["count"] for d in document["datasets"]] == [8, 2]


def test_plan_table_lists_every_dataset_largest_first_with_total() -> None:
    table = format_plan_table(make_plan([_spec("small", 1), _spec("big", 9)], 1000))
    lines = table.splitlines()
    assert lines[0] == "Dataset sampling plan:"
    assert lines[3].startswith("big") and lines[3].endswith("900")
    assert lines[4].startswith("small") and lines[4].endswith("100")
    assert lines[-1].startswith("total") and lines[-1].endswith("1,000")
