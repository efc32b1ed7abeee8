"""How many documents each dataset contributes: exact largest-remainder apportionment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction

from pretrain_mix.config import DatasetSpec


def largest_remainder(weights: Sequence[float], total: int) -> list[int]:
    """Integer counts proportional to `weights` that add up to `total` exactly.

    Each count is the floor or the ceiling of its exact quota. Leftover units go to the
    largest fractional remainders; ties go to the earlier entry, so the result is stable.
    Weights are read as their decimal repr so that 0.1 + 0.2 behaves as written.
    """
    if total < 0:
        raise ValueError(f"total must be >= 0, got {total}")
    exact = [Fraction(repr(float(w))) for w in weights]
    if any(w <= 0 for w in exact):
        raise ValueError("weights must be positive")
    weight_sum = sum(exact)
    quotas = [total * w / weight_sum for w in exact]
    counts = [int(q) for q in quotas]  # floor: quotas are non-negative
    leftover = total - sum(counts)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[:leftover]:
        counts[i] += 1
    return counts


@dataclass(frozen=True)
class PlanRow:
    id: str
    source: str
    config: str | None
    split: str
    weight: float
    share: float  # weight / total weight
    quota: float  # target_samples * share, before rounding
    count: int


def make_plan(datasets: Sequence[DatasetSpec], target_samples: int) -> list[PlanRow]:
    counts = largest_remainder([d.weight for d in datasets], target_samples)
    total_weight = sum(d.weight for d in datasets)
    return [
        PlanRow(
            id=d.id,
            source=d.name,
            config=d.config,
            split=d.split,
            weight=d.weight,
            share=d.weight / total_weight,
            quota=target_samples * d.weight / total_weight,
            count=count,
        )
        for d, count in zip(datasets, counts, strict=True)
    ]


def plan_document(plan: Sequence[PlanRow], target_samples: int, seed: int) -> dict:
    """The content of <raw_folder>/sampling_plan.json."""
    return {
        "target_samples": target_samples,
        "seed": seed,
        "method": "largest remainder",
        "total_weight": sum(row.weight for row in plan),
        "datasets": [asdict(row) for row in plan],
    }


def format_plan_table(plan: Sequence[PlanRow]) -> str:
    """The 'Dataset sampling plan' table printed before sampling starts."""
    id_width = max([len("dataset"), *(len(row.id) for row in plan)])
    header = f"{'dataset':<{id_width}}  {'weight':>10}  {'share':>8}  {'samples':>12}"
    lines = ["Dataset sampling plan:", header, "-" * len(header)]
    for row in sorted(plan, key=lambda r: (-r.count, r.id)):
        lines.append(
            f"{row.id:<{id_width}}  {row.weight:>10g}  {row.share:>8.2%}  {row.count:>12,}"
        )
    total = sum(row.count for row in plan)
    lines.append("-" * len(header))
    lines.append(f"{'total':<{id_width}}  {'':>10}  {'100.00%':>8}  {total:>12,}")
    return "\n".join(lines)
