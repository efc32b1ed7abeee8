"""Stage 2 settings per dataset: its profile's filters, thresholds and normalisers, resolved.

The `clean` rule receives exactly this resolved dict through `params:`, so changing a
threshold re-runs only the datasets whose profile uses it, and never stage 1.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pretrain_mix.config import DatasetSpec
from pretrain_mix.errors import ConfigError
from pretrain_mix.filters import check_regex, get_filter

DEFAULT_PROFILE = "web"
PROSE_FILTERS = ["length", "word_count", "exclude_keywords", "junk_patterns", "relevance"]

# Built-in profiles; a config's `profiles:` entry of the same name replaces one whole.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "web": {"filters": PROSE_FILTERS},
    "web_multilingual": {"filters": PROSE_FILTERS},
    # Code keeps its markup and gets no prose filters or keyword lists.
    "code": {
        "filters": ["length"],
        "normalise": {"html": False},
        "filtering": {"min_length": 20},
    },
    # Formulas use <, > and & freely; keyword lists do not describe math.
    "math": {
        "filters": ["length", "junk_patterns"],
        "normalise": {"html": False},
        "filtering": {"min_length": 20},
    },
}


def _merged(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def profiles(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {**BUILTIN_PROFILES, **(config.get("profiles") or {})}


def clean_settings(config: Mapping[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """Everything the dataset's `clean` job uses, and nothing else."""
    name = spec.profile or DEFAULT_PROFILE
    known = profiles(config)
    if name not in known:
        raise ConfigError(
            f"{spec.describe()}: unknown profile '{name}'; define it under profiles: or use one"
            f" of: {', '.join(known)}"
        )
    profile = known[name]
    cleaning = config.get("cleaning") or {}
    filtering = _merged(config.get("filtering") or {}, profile.get("filtering"))
    filters = list(profile.get("filters", []))
    thresholds = {key: filtering.get(key) for f in filters for key in get_filter(f).uses}
    dedup = filtering.get("deduplication") or {}
    return {
        "profile": name,
        "normalise": _merged(cleaning.get("normalise") or {}, profile.get("normalise")),
        "filters": filters,
        "thresholds": thresholds,
        "exact_dedup": {
            "enabled": bool(dedup.get("enabled", True)),
            "lowercase": bool(dedup.get("lowercase", False)),
            "fold_whitespace": bool(dedup.get("fold_whitespace", False)),
        },
        "batch_size": int(cleaning.get("batch_size", 10_000)),
        "on_bad_record": cleaning.get("on_bad_record", "fail"),
    }


def check_clean_settings(config: Mapping[str, Any], datasets: Sequence[DatasetSpec]) -> None:
    """Stage 2 config errors, before any job: unknown profile or filter, invalid regex."""
    for name, profile in profiles(config).items():
        for filter_name in profile.get("filters", []):
            try:
                get_filter(filter_name)
            except ConfigError as exc:
                raise ConfigError(f"profiles.{name}.filters: {exc}") from None
    sections = {"filtering": config.get("filtering") or {}} | {
        f"profiles.{name}.filtering": p.get("filtering") or {}
        for name, p in profiles(config).items()
    }
    for where, section in sections.items():
        for i, pattern in enumerate(section.get("junk_patterns") or []):
            check_regex(pattern, f"{where}.junk_patterns[{i}]")
    for spec in datasets:
        clean_settings(config, spec)
