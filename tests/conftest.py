"""Shared helpers: small local datasets and a Snakemake runner on a temporary folder."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def raw_file(path: Path, texts: list[Any], bad_lines: dict[int, str] | None = None) -> Path:
    """Stage 1 records (original_index = 10 x position); `bad_lines`: position -> raw line."""
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            if bad_lines and i in bad_lines:
                handle.write(bad_lines[i] + "\n")
                continue
            record = {"text": text, "metadata": {"source": "test", "original_index": i * 10}}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def clean(tmp_path: Path, raw: Path, settings: dict[str, Any], name: str = "out"):
    """Run one clean job: (kept records, rejected records, stats)."""
    from pretrain_mix.clean import run_clean_job

    out = tmp_path / name
    stats = run_clean_job(
        raw, settings, out / "cleaned.jsonl.gz", out / "rejected.jsonl.gz", out / "stats.json"
    )
    return read_jsonl_gz(out / "cleaned.jsonl.gz"), read_jsonl_gz(out / "rejected.jsonl.gz"), stats


def numbered_docs(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"text": f"{prefix} document number {i}", "n": i} for i in range(n)]


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


class Workflow:
    """A work folder with its own config, run through the repository's Snakefile."""

    def __init__(self, folder: Path):
        self.folder = folder

    def write_config(self, config: dict[str, Any]) -> Path:
        path = self.folder / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [
            *SNAKEMAKE,
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(self.folder),
            "--configfile",
            str(self.folder / "config.yaml"),
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def jobs(self, dry_run_output: str, rule: str) -> set[str]:
        """Wildcard values of the jobs of `rule` that a dry run lists."""
        found, in_rule = set(), False
        for line in dry_run_output.splitlines():
            stripped = line.strip()
            if stripped.rstrip(":") in (f"rule {rule}", f"localrule {rule}"):
                in_rule = True
            elif stripped.startswith(("rule ", "localrule ")):
                in_rule = False
            elif in_rule and stripped.startswith("wildcards:"):
                found.add(stripped.split("=", 1)[1])
        return found


@pytest.fixture
def workflow(tmp_path: Path) -> Workflow:
    return Workflow(tmp_path)
