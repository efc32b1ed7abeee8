"""The mixture config: schema check with one-line errors, and typed dataset entries."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pretrain_mix.errors import ConfigError

# `name` values that mean "local files" to datasets.load_dataset.
LOCAL_BUILDERS = frozenset({"json", "parquet", "csv", "text", "arrow"})

DEFAULT_TEXT_FIELD = "text"
DEFAULT_SPLIT = "train"


def load_yaml(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@dataclass(frozen=True)
class DatasetSpec:
    """One mixture entry, mapped one-to-one onto datasets.load_dataset(...)."""

    id: str
    name: str
    weight: float
    config: str | None = None
    split: str = DEFAULT_SPLIT
    data_files: Any = None
    data_dir: str | None = None
    revision: str | None = None
    text_field: str | None = DEFAULT_TEXT_FIELD
    text_template: str | None = None
    profile: str | None = None
    language: str | None = None
    metadata_fields: tuple[str, ...] = ()
    max_rows_scanned: Any = None  # None: use the global sampling setting
    position: int = field(default=0, compare=False)  # index in the config's list

    @property
    def is_local(self) -> bool:
        return self.name in LOCAL_BUILDERS

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of datasets.load_dataset, without streaming."""
        kwargs: dict[str, Any] = {"path": self.name, "split": self.split}
        for key in ("config", "data_files", "data_dir", "revision"):
            value = getattr(self, key)
            if value is not None:
                kwargs["name" if key == "config" else key] = value
        return kwargs

    def source_params(self) -> dict[str, Any]:
        """What a dataset's raw sample depends on (and nothing stage 2 uses)."""
        return {
            "id": self.id,
            "name": self.name,
            "config": self.config,
            "split": self.split,
            "data_files": self.data_files,
            "data_dir": self.data_dir,
            "revision": self.revision,
            "text_field": self.text_field,
            "text_template": self.text_template,
            "weight": self.weight,
            "metadata_fields": list(self.metadata_fields),
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DatasetSpec:
        fields = dict(params)
        fields["metadata_fields"] = tuple(fields.get("metadata_fields") or ())
        return cls(**fields)

    def describe(self) -> str:
        """How error messages name this dataset."""
        where = self.name + (f" (config {self.config})" if self.config else "")
        return f"dataset '{self.id}' [{where}, datasets[{self.position}]]"


def default_dataset_id(name: str, config: str | None) -> str:
    """The original script's folder name: name with '/' -> '_', plus '_<config>'."""
    folder = name.replace("/", "_")
    if config:
        folder += "_" + config.replace("/", "_")
    return folder


def template_fields(template: str) -> list[str]:
    """Column names a text_template uses; only plain {column} or {a.b} placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"text_template {template!r}: {exc}; use {{column}} placeholders"
        ) from exc
    names = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or spec or conversion:
            raise ConfigError(
                f"text_template {template!r}: only plain {{column}} placeholders are supported"
                f" (found {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}})"
            )
        names.append(name)
    if not names:
        raise ConfigError(
            f"text_template {template!r} uses no column; add a {{column}} placeholder"
        )
    return names


def _schema_error_line(error: jsonschema.ValidationError, config: Mapping[str, Any]) -> str:
    """Turn a jsonschema error into one line naming the key and the fix."""
    path = list(error.absolute_path)
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    prefix = f"config key '{where}'" if where else "config"
    if path[:1] == ["datasets"] and len(path) >= 2 and isinstance(path[1], int):
        entry = config["datasets"][path[1]]
        label = entry.get("id") or entry.get("name") if isinstance(entry, Mapping) else None
        if label:
            prefix += f" (dataset '{label}')"
    if error.validator == "additionalProperties" and not path:
        known = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = ", ".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
        return f"config: unknown top-level key(s) {unknown}; known keys are: {known}"
    if error.validator == "additionalProperties":
        unknown = ", ".join(sorted(set(error.instance) - set(error.schema.get("properties", {}))))
        return f"{prefix}: unknown key(s) {unknown}; check the spelling (README, Config reference)"
    if error.validator == "required":
        return f"{prefix}: {error.message}; every dataset entry needs 'name' and 'weight'"
    if error.validator == "exclusiveMinimum" and path[-1:] == ["weight"]:
        return f"{prefix}: weight must be a positive number, got {error.instance!r}"
    if error.validator == "type" and path[-1:] == ["weight"]:
        return f"{prefix}: weight must be a positive number, got {error.instance!r}"
    if error.validator == "oneOf" and path[-1:] == ["max_rows_scanned"]:
        return (
            f"{prefix}: {error.instance!r} is not a scan limit; use null (whole split),"
            " a row count such as 5000000, or a multiple of the sample size such as '10x'"
        )
    return f"{prefix}: {error.message}"


def check_against_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate with the same schema Snakemake's validate() uses, failing on one line."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(_schema_error_line(errors[0], config))


def _dataset_from_entry(entry: Mapping[str, Any], position: int) -> DatasetSpec:
    name = entry["name"]
    label = f"datasets[{position}] ('{name}')"
    config = entry.get("config")
    subset = entry.get("subset")
    if config is not None and subset is not None and config != subset:
        raise ConfigError(f"{label}: 'config' ({config}) and its alias 'subset' ({subset}) differ")
    config = config if config is not None else subset
    text_field = entry.get("text_field")
    text_template = entry.get("text_template")
    if text_field and text_template:
        raise ConfigError(f"{label}: set text_field or text_template, not both")
    if text_template:
        try:
            template_fields(text_template)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    elif not text_field:
        text_field = DEFAULT_TEXT_FIELD
    if name in LOCAL_BUILDERS and not entry.get("data_files") and not entry.get("data_dir"):
        raise ConfigError(
            f"{label}: '{name}' reads local files; add data_files: (a path, list or glob)"
        )
    return DatasetSpec(
        id=entry.get("id") or default_dataset_id(name, config),
        name=name,
        weight=float(entry["weight"]),
        config=config,
        split=entry.get("split") or DEFAULT_SPLIT,
        data_files=entry.get("data_files"),
        data_dir=entry.get("data_dir"),
        revision=entry.get("revision"),
        text_field=None if text_template else text_field,
        text_template=text_template,
        profile=entry.get("profile"),
        language=entry.get("language"),
        metadata_fields=tuple(entry.get("metadata_fields") or ()),
        max_rows_scanned=entry.get("max_rows_scanned"),
        position=position,
    )


def parse_datasets(config: Mapping[str, Any]) -> list[DatasetSpec]:
    """Typed dataset entries; duplicate folders are an error."""
    specs = [_dataset_from_entry(entry, i) for i, entry in enumerate(config["datasets"])]
    seen: dict[str, DatasetSpec] = {}
    for spec in specs:
        if spec.id in seen:
            first = seen[spec.id]
            raise ConfigError(
                f"datasets[{first.position}] ('{first.name}') and datasets[{spec.position}]"
                f" ('{spec.name}') would both be written to folder '{spec.id}';"
                " give one of them a distinct 'id:'"
            )
        seen[spec.id] = spec
    return specs


def load_mixture(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[DatasetSpec]:
    """Check the whole config and return its datasets; raises ConfigError on one line."""
    check_against_schema(config, schema)
    return parse_datasets(config)
