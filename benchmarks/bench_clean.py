"""Stage 2 benchmark: pretrain-mix's clean step against a plain per-document Python cleaner.

Both clean the same raw file: real documents from ../shared/corpora (web_en, web_vi and a
small share of whole HTML pages), repeated to --docs documents in the stage 1 record shape
`{"text": ..., "metadata": {"source": ..., "original_index": i, ...}}`, gzip JSON lines.

  (a) pretrain-mix: `pretrain_mix.clean.run_clean_job`, exactly what scripts/clean.py calls,
      with the settings the workflow resolves for a `web` dataset of config/config.yaml;
      once with POLARS_MAX_THREADS=1 (the per-core figure) and once with polars' default.
  (b) baseline: what the original script did, one document at a time: json.loads, the same
      normalisers and filters with Python `re` (patterns imported from pretrain_mix where the
      syntax is shared), hashlib exact dedup, json.dumps and a gzip write per document.

Each run is a fresh spawned process, so its peak RSS (VmHWM) is its own. Targets: (a) per
core >= 10x (b) in documents/s, and (a)'s peak memory < 2 GB whatever the input size (shown
by running (a) again on twice the documents).

Run from the repository root:  python benchmarks/bench_clean.py [--docs 200000]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

# No polars or pretrain_mix import at module level: spawned children re-import this module,
# and the baseline's peak RSS must not include a library it does not use.

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
DEFAULT_WORKDIR = REPO / "benchmarks" / "work" / "clean"
CONFIG = REPO / "config" / "config.yaml"
SCHEMA = REPO / "config" / "schema.yaml"
TEXT_CORPORA = ("web_en.jsonl.gz", "web_vi.jsonl.gz")
HTML_CORPUS = "html_pages.jsonl.gz"

SEED = 42
# The baseline writes with the standard library, as a plain script does, at zlib's default
# level (gzip.open's own default, 9, would be slower still). pretrain-mix writes through
# pretrain_mix.io.gzip_writer, whatever compressor that chooses.
GZIP_LEVEL = 6
SPEEDUP_TARGET = 10.0
MEMORY_LIMIT_MB = 2000.0  # "2 GB", in 10^6 bytes: the stricter reading
MB = 1_000_000

PRETRAIN_MIX = "pretrain-mix"
BASELINE = "baseline per-doc"

# The rejection reasons, as pretrain_mix.clean names them.
EMPTY = "empty_after_cleaning"
EXACT_DUPLICATE = "exact_duplicate"


# ---------------------------------------------------------------------------------------------
# The raw input


@dataclass
class RawInput:
    path: str
    docs: int
    html_share: float
    seed: int
    text_bytes: int  # UTF-8 bytes of the `text` fields: what "MB" means in the table
    html_docs: int
    html_bytes: int
    distinct_docs: int  # distinct source documents among the repeated ones
    file_bytes: int

    @property
    def repeated_docs(self) -> int:
        """Documents that are exact copies of an earlier one (repetition, not the corpora)."""
        return self.docs - self.distinct_docs


@dataclass
class SourceDoc:
    source: str
    subset: str
    row: int  # line in the corpus file
    text: str
    size: int  # UTF-8 bytes


def read_corpus(path: Path) -> list[SourceDoc]:
    """Documents with a non-empty string text; the corpora's other fields are not needed."""
    docs = []
    stem = path.name.split(".")[0]
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row, line in enumerate(handle):
            record = json.loads(line)
            text = record.get("text")
            if isinstance(text, str) and text:
                subset = str(record.get("subset") or "")
                docs.append(SourceDoc(stem, subset, row, text, len(text.encode("utf-8"))))
    return docs


def meta_path(workdir: Path, docs: int) -> Path:
    return workdir / f"raw_{docs}.json"


def reusable_input(workdir: Path, docs: int, html_share: float, seed: int) -> RawInput | None:
    """The raw file of an earlier run, if it was built with the same count, share and seed."""
    path = meta_path(workdir, docs)
    if not path.exists():
        return None
    found = RawInput(**json.loads(path.read_text(encoding="utf-8")))
    same = (found.docs, found.html_share, found.seed) == (docs, html_share, seed)
    raw = Path(found.path)
    if same and raw.is_file() and raw.stat().st_size == found.file_bytes:
        return found
    return None


def document_order(n_text: int, n_html: int, pool_sizes: tuple[int, int], seed: int) -> list:
    """(kind, index) per document: pools repeated end to end, then shuffled together.

    Shuffling spreads the copies through the file, as duplicates are in a real sample,
    instead of one block of distinct documents followed by blocks of repeats.
    """
    text_pool, html_pool = pool_sizes
    order = [(0, i % text_pool) for i in range(n_text)]
    order += [(1, i % html_pool) for i in range(n_html)]
    random.Random(seed).shuffle(order)
    return order


def build_input(
    corpora: Path, workdir: Path, docs: int, html_share: float, seed: int = SEED
) -> RawInput:
    """Write raw_<docs>.jsonl.gz (stage 1 shape) unless an identical one is already there."""
    found = reusable_input(workdir, docs, html_share, seed)
    if found is not None:
        note(f"reusing {found.path} ({found.docs:,} documents)")
        return found
    text_pool = [doc for name in TEXT_CORPORA for doc in read_corpus(corpora / name)]
    html_pool = read_corpus(corpora / HTML_CORPUS)
    n_html = round(docs * html_share) if html_pool else 0
    order = document_order(docs - n_html, n_html, (len(text_pool), len(html_pool) or 1), seed)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"raw_{docs}.jsonl.gz"
    partial = path.with_name(f".{path.name}.partial")
    note(f"writing {path} ({docs:,} documents, {n_html:,} whole HTML pages)")
    text_bytes = html_bytes = 0
    with gzip.open(partial, "wb", compresslevel=GZIP_LEVEL) as out:
        for index, (kind, pick) in enumerate(order):
            doc = html_pool[pick] if kind else text_pool[pick]
            metadata = {
                "source": doc.source,
                "subset": doc.subset,
                "original_index": index,  # unique per line, as stage 1 gives for one split
                "source_row": doc.row,
            }
            line = json.dumps({"text": doc.text, "metadata": metadata}, ensure_ascii=False)
            out.write(line.encode("utf-8") + b"\n")
            text_bytes += doc.size
            html_bytes += doc.size if kind else 0
    os.replace(partial, path)
    raw = RawInput(
        path=str(path),
        docs=docs,
        html_share=html_share,
        seed=seed,
        text_bytes=text_bytes,
        html_docs=n_html,
        html_bytes=html_bytes,
        distinct_docs=len(set(order)),
        file_bytes=path.stat().st_size,
    )
    meta_path(workdir, docs).write_text(json.dumps(asdict(raw), indent=2) + "\n", "utf-8")
    return raw


# ---------------------------------------------------------------------------------------------
# Running one implementation in a process of its own


def peak_rss_mb() -> float:
    """This process's high-water RSS. VmHWM belongs to the current address space, unlike
    ru_maxrss, which can carry over the forking parent's RSS across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def output_bytes(out_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(out_dir.glob("*.jsonl.gz"))}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(job: Callable[..., dict], kwargs: dict, conn: Any) -> None:
    try:
        conn.send(job(**kwargs))
    except BaseException as exc:  # the parent reports it; a benchmark run should not hang
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_isolated(job: Callable[..., dict], env: Mapping[str, str | None], **kwargs: Any) -> dict:
    """Run job(**kwargs) in a fresh spawned interpreter with `env` set (None: unset).

    Spawn, not fork: the child starts without the parent's memory, and reads
    POLARS_MAX_THREADS before polars builds its thread pool.
    """
    saved = {key: os.environ.get(key) for key in env}
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(job, kwargs, sender))
        process.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        result = {"error": "the child process died without a result (killed? out of memory?)"}
    process.join()
    return result


# ---------------------------------------------------------------------------------------------
# (a) pretrain-mix


# The original script's rules: what the baseline implements. (The `web` profile also runs
# language ID and the Gopher/C4/FineWeb filters; benchmarks/bench_quality.py measures those
# against datatrove.)
ORIGINAL_RULES = ["length", "word_count", "exclude_keywords", "junk_patterns", "relevance"]


def workflow_settings() -> dict[str, Any]:
    """What the workflow passes to the clean rule of a dataset of config/config.yaml whose
    profile runs the original script's rules (the `web` profile's normalisers and keys)."""
    from snakemake.utils import validate

    from pretrain_mix.config import DatasetSpec, load_yaml
    from pretrain_mix.profiles import clean_settings

    config = load_yaml(CONFIG)
    config.setdefault("profiles", {})["original"] = {"filters": ORIGINAL_RULES}
    # The baseline has exact dedup only; near-dedup is measured by bench_minhash.py.
    config["filtering"]["deduplication"]["near_duplicates"] = False
    validate(config, str(SCHEMA))  # fills the schema's defaults, as rules/common.smk does
    spec = DatasetSpec(id="bench", name="json", weight=1, profile="original")
    return clean_settings(config, spec)


def pretrain_mix_job(raw_path: str, settings: dict, out_dir: str) -> dict:
    """Child process: run_clean_job, timed from after the imports."""
    import polars as pl

    from pretrain_mix.clean import run_clean_job

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    stats = run_clean_job(
        raw_path,
        settings,
        out / "cleaned.jsonl.gz",
        out / "rejected.jsonl.gz",
        out / "stats.json",
    )
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": cpu_seconds() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "threads": pl.thread_pool_size(),
        "documents_in": stats["documents_in"],
        "kept": stats["kept"],
        "rejected_by_reason": stats["rejected_by_reason"],
        "steps": {
            **{f"normalise.{n['name']}": n["seconds"] for n in stats["normalisers"]},
            **{f"filter.{f['name']}": f["seconds"] for f in stats["filters"]},
            **stats["seconds"],
        },
        "output_bytes": output_bytes(out),
        "out_dir": out_dir,
    }


# ---------------------------------------------------------------------------------------------
# (b) the plain per-document baseline


def baseline_rules(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The same rules as plain data: pretrain_mix's own patterns, built in the parent so the
    baseline child imports neither polars nor pretrain_mix."""
    from pretrain_mix import filters, normalise

    thresholds = settings["thresholds"]

    def keywords(key: str) -> list[str]:  # as filters._keywords reads them
        return [k for k in (thresholds.get(key) or []) if isinstance(k, str) and k.strip()]

    keep = {
        " ".join(unicodedata.normalize("NFC", k.lower()).split()) for k in keywords("keep_keywords")
    }
    return {
        "normalise": dict(settings["normalise"]),
        "whole_page": normalise.WHOLE_PAGE,
        "script_or_style": list(normalise.SCRIPT_OR_STYLE_BLOCKS),
        "line_break_tags": normalise.LINE_BREAK_TAGS,
        "tag": normalise.TAG,
        "entity": normalise.ENTITY,
        "mojibake": normalise.LOOKS_LIKE_MOJIBAKE,
        "control_chars": normalise.CONTROL_CHARS,
        "unicode_spaces": as_regex_class(normalise.UNICODE_SPACES),
        "filters": list(settings["filters"]),
        "thresholds": dict(thresholds),
        "exclude": filters.keyword_alternation(keywords("exclude_keywords")),
        "keep_keywords": sorted(keep),
        "keep": filters.keyword_alternation(sorted(keep)) if keep else None,
        "code": "|".join(filters.CODE_INDICATORS),
        "exact_dedup": dict(settings["exact_dedup"]),
    }


def as_regex_class(chars: str | list[str]) -> str:
    """UNICODE_SPACES is a regex class in some library versions and a list of literals in
    others; the baseline needs one Python regex either way."""
    return chars if isinstance(chars, str) else "[" + "".join(re.escape(c) for c in chars) + "]"


class BaselineCleaner:
    """One document at a time, as the original script cleaned; Python `re` throughout."""

    def __init__(self, rules: Mapping[str, Any]):
        self.rules = rules
        self.settings = rules["normalise"]
        self.thresholds = rules["thresholds"]
        self.whole_page = re.compile(rules["whole_page"])
        self.script_or_style = [re.compile(p) for p in rules["script_or_style"]]
        self.line_break_tags = re.compile(rules["line_break_tags"])
        self.tag = re.compile(rules["tag"])
        self.entity = re.compile(rules["entity"])
        self.mojibake = re.compile(rules["mojibake"])
        self.control_chars = re.compile(rules["control_chars"])
        self.unicode_spaces = re.compile(rules["unicode_spaces"])
        # The steps of normalise.tidy_whitespace and the \S+ word count, verbatim.
        self.crlf = re.compile(r"\r\n?")
        self.trailing = re.compile(r"(?m)[ \t]+$")
        self.blank_runs = re.compile(r"\n{4,}")
        self.leading_newlines = re.compile(r"^\n+")
        self.exclude = re.compile(rules["exclude"]) if rules["exclude"] else None
        self.junk = [re.compile(p) for p in (self.thresholds.get("junk_patterns") or []) if p]
        self.keep = re.compile(rules["keep"]) if rules["keep"] else None
        self.code = re.compile(rules["code"])
        self.seconds: Counter = Counter()  # per step; two perf_counter calls, ~0.1 us each
        self.steps = self.enabled_normalisers()

    # --- normalisers, in pretrain_mix's order ---

    def strip_html(self, text: str) -> str:
        if self.whole_page.search(text):
            from resiliparse.extract.html2text import extract_plain_text

            main = bool(self.settings.get("html_main_content", True))
            text = extract_plain_text(text, main_content=main, alt_texts=False, links=False)
        for block in self.script_or_style:
            text = block.sub("", text)
        text = self.line_break_tags.sub("\n", text)
        text = self.tag.sub("", text)
        # Only complete entities (with ';'), as pretrain_mix decodes them: html.unescape on
        # the whole text would also decode "&copy" without ';' inside URLs and words.
        return self.entity.sub(lambda m: html.unescape(m.group()), text)

    def normalise_unicode(self, text: str) -> str:
        if self.settings.get("fix_mojibake") and self.mojibake.search(text):
            import ftfy

            text = ftfy.fix_text(text)
        form = self.settings.get("unicode", "NFC")
        return unicodedata.normalize(form, text) if form and form != "none" else text

    def tidy_whitespace(self, text: str) -> str:
        text = self.crlf.sub("\n", text)
        text = self.unicode_spaces.sub(" ", text)
        text = self.trailing.sub("", text)
        text = self.blank_runs.sub("\n\n\n", text)
        text = self.leading_newlines.sub("", text)
        return text.rstrip()

    def remove_control_chars(self, text: str) -> str:
        return self.control_chars.sub("", text)

    def enabled_normalisers(self) -> list[tuple[str, Callable[[str], str]]]:
        """In pretrain_mix's order, enabled by the same settings (normalise.NORMALISERS)."""
        s = self.settings
        steps = [
            ("normalise.html", self.strip_html, bool(s.get("html"))),
            (
                "normalise.unicode",
                self.normalise_unicode,
                s.get("unicode", "NFC") != "none" or bool(s.get("fix_mojibake")),
            ),
            ("normalise.control_chars", self.remove_control_chars, bool(s.get("control_chars"))),
            ("normalise.whitespace", self.tidy_whitespace, bool(s.get("whitespace"))),
        ]
        return [(name, step) for name, step, enabled in steps if enabled]

    def normalise(self, text: str) -> str:
        for name, step in self.steps:
            started = time.perf_counter()
            text = step(text)
            self.seconds[name] += time.perf_counter() - started
        return text

    # --- filters: the first failing check names the reason ---

    def check(self, name: str, text: str) -> str | None:
        t = self.thresholds
        if name == "length":
            if t.get("min_length") is not None and len(text) < t["min_length"]:
                return "too_short"
            if t.get("max_length") is not None and len(text) > t["max_length"]:
                return "too_long"
        elif name == "word_count":
            words = len(text.split())  # same runs as \S+: str.isspace is Unicode White_Space
            if t.get("min_words") is not None and words < t["min_words"]:
                return "too_few_words"
            if t.get("max_words") is not None and words > t["max_words"]:
                return "too_many_words"
        elif name == "exclude_keywords":
            if self.exclude is not None and self.exclude.search(text):
                return "excluded_keyword"
        elif name == "junk_patterns":
            matches = sum(1 for p in self.junk for _ in p.finditer(text))
            if self.junk and matches > int(t.get("junk_max_matches") or 0):
                return "junk_pattern"
        elif name == "relevance":
            return self.relevance(text)
        return None

    def relevance(self, text: str) -> str | None:
        min_relevance = float(self.thresholds.get("min_relevance") or 0.0)
        if self.keep is None or min_relevance <= 0:
            return None
        found = {
            re.sub(r"\s+", " ", unicodedata.normalize("NFC", m.group().lower()))
            for m in self.keep.finditer(text)
        }
        score = len(found) / len(self.rules["keep_keywords"])
        return "low_relevance" if score < min_relevance and not self.code.search(text) else None

    def first_failure(self, text: str) -> str | None:
        if not text:
            return EMPTY
        for name in self.rules["filters"]:
            started = time.perf_counter()
            reason = self.check(name, text)
            self.seconds[f"filter.{name}"] += time.perf_counter() - started
            if reason:
                return reason
        return None

    def dedup_key(self, text: str) -> bytes:
        settings = self.rules["exact_dedup"]
        if settings.get("lowercase"):
            text = text.lower()
        if settings.get("fold_whitespace", True):
            text = " ".join(text.split())  # = replace_all(r"\s+", " ").strip_chars()
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def json_bytes(record: Any) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def baseline_job(raw_path: str, rules: dict, out_dir: str) -> dict:
    """Child process: the per-document loop, single-threaded."""
    import resiliparse.extract.html2text  # noqa: F401  imported before the clock starts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cleaner = BaselineCleaner(rules)
    dedup = bool(rules["exact_dedup"].get("enabled", True))
    first_seen: dict[bytes, int] = {}  # key -> id of the kept document; duplicate_of needs it
    reasons: Counter = Counter()
    seconds = cleaner.seconds
    kept = documents = 0
    wall, cpu = time.perf_counter(), cpu_seconds()
    with (
        gzip.open(raw_path, "rt", encoding="utf-8") as source,
        gzip.open(out / "cleaned.jsonl.gz", "wb", compresslevel=GZIP_LEVEL) as kept_out,
        gzip.open(out / "rejected.jsonl.gz", "wb", compresslevel=GZIP_LEVEL) as rejected_out,
    ):
        lines = iter(source)
        while True:
            started = time.perf_counter()  # "read" = decompress + parse, as in (a)'s stats
            line = next(lines, None)
            if line is None:
                break
            record = json.loads(line)
            seconds["read"] += time.perf_counter() - started
            documents += 1
            text = cleaner.normalise(record["text"])
            reason = cleaner.first_failure(text)
            duplicate_of = None
            if reason is None and dedup:
                started = time.perf_counter()
                key = cleaner.dedup_key(text)
                doc_id = (record.get("metadata") or {}).get("original_index", documents)
                duplicate_of = first_seen.setdefault(key, doc_id)
                if duplicate_of == doc_id:
                    duplicate_of = None
                else:
                    reason = EXACT_DUPLICATE
                seconds["dedup"] += time.perf_counter() - started
            started = time.perf_counter()
            write_result(record, text, reason, duplicate_of, kept_out, rejected_out)
            seconds["write"] += time.perf_counter() - started
            if reason is None:
                kept += 1
            else:
                reasons[reason] += 1
    return {
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": cpu_seconds() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "threads": 1,
        "documents_in": documents,
        "kept": kept,
        "rejected_by_reason": dict(reasons),
        "steps": dict(seconds),
        "output_bytes": output_bytes(out),
        "out_dir": out_dir,
    }


def write_result(
    record: dict,
    text: str,
    reason: str | None,
    duplicate_of: int | None,
    kept_out: BinaryIO,
    rejected_out: BinaryIO,
) -> None:
    """Kept: cleaned text. Rejected: the original record, reason added (as pretrain-mix)."""
    if reason is None:
        kept_out.write(json_bytes({**record, "text": text}))
    else:
        extra = {"filter_reason": reason, "duplicate_of": duplicate_of}
        record["metadata"] = {**(record.get("metadata") or {}), **extra}
        rejected_out.write(json_bytes(record))


# ---------------------------------------------------------------------------------------------
# Agreement of the two outputs


def kept_texts(out_dir: str) -> dict[int, bytes]:
    """original_index -> digest of the kept text. Few documents survive dedup: cheap."""
    found = {}
    with gzip.open(Path(out_dir) / "cleaned.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            digest = hashlib.blake2b(record["text"].encode("utf-8"), digest_size=16).digest()
            found[record["metadata"]["original_index"]] = digest
    return found


def agreement(a: dict, b: dict) -> dict[str, Any]:
    """Counts per reason side by side, and which kept documents or texts differ."""
    reasons = list(dict.fromkeys([*a["rejected_by_reason"], *b["rejected_by_reason"]]))
    by_reason = {
        r: (a["rejected_by_reason"].get(r, 0), b["rejected_by_reason"].get(r, 0)) for r in reasons
    }
    kept_a, kept_b = kept_texts(a["out_dir"]), kept_texts(b["out_dir"])
    both = kept_a.keys() & kept_b.keys()
    return {
        "kept": (a["kept"], b["kept"]),
        "rejected_by_reason": by_reason,
        "kept_only_by_pretrain_mix": sorted(kept_a.keys() - kept_b.keys())[:20],
        "kept_only_by_baseline": sorted(kept_b.keys() - kept_a.keys())[:20],
        "kept_by_both": len(both),
        "kept_text_differs": sorted(i for i in both if kept_a[i] != kept_b[i])[:20],
        "kept_text_differs_count": sum(1 for i in both if kept_a[i] != kept_b[i]),
        "identical": a["kept"] == b["kept"]
        and all(x == y for x, y in by_reason.values())
        and kept_a == kept_b,
    }


def show_agreement(result: dict[str, Any]) -> None:
    print("\nAgreement, (a) pretrain-mix vs (b) baseline, same input:")
    rows = [["kept", *map(str, result["kept"])]]
    rows += [[reason, str(x), str(y)] for reason, (x, y) in result["rejected_by_reason"].items()]
    rows = [[*row, f"{int(row[1]) - int(row[2]):+d}"] for row in rows]
    print(render_table(["count", "(a)", "(b)", "(a)-(b)"], rows))
    print(
        f"kept by both: {result['kept_by_both']:,}; cleaned text differs for"
        f" {result['kept_text_differs_count']:,} of them"
    )
    for key in ("kept_only_by_pretrain_mix", "kept_only_by_baseline", "kept_text_differs"):
        if result[key]:
            print(f"  {key} (original_index, first 20): {result[key]}")
    print("identical outputs (counts and kept texts):", "yes" if result["identical"] else "no")


# ---------------------------------------------------------------------------------------------
# Reporting


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def measurement_row(name: str, run: dict, raw: RawInput) -> dict[str, Any]:
    seconds = run["seconds"]
    docs_per_s = raw.docs / seconds
    mb_per_s = raw.text_bytes / MB / seconds
    return {
        "implementation": name,
        "threads": run["threads"],
        "docs": raw.docs,
        "mb": raw.text_bytes / MB,
        "seconds": seconds,
        "cpu_seconds": run["cpu_seconds"],
        "docs_per_s": docs_per_s,
        "mb_per_s": mb_per_s,
        "docs_per_s_per_core": docs_per_s / run["threads"],
        "mb_per_s_per_core": mb_per_s / run["threads"],
        "peak_rss_mb": run["peak_rss_mb"],
    }


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "implementation",
        "threads",
        "docs",
        "MB (input text)",
        "seconds",
        "CPU s",
        "docs/s",
        "MB/s",
        "docs/s per core",
        "MB/s per core",
        "peak RSS MB",
    ]
    body = [
        [
            r["implementation"],
            str(r["threads"]),
            f"{r['docs']:,}",
            f"{r['mb']:,.1f}",
            f"{r['seconds']:.1f}",
            f"{r['cpu_seconds']:.1f}",
            f"{r['docs_per_s']:,.0f}",
            f"{r['mb_per_s']:.2f}",
            f"{r['docs_per_s_per_core']:,.0f}",
            f"{r['mb_per_s_per_core']:.2f}",
            f"{r['peak_rss_mb']:,.0f}",
        ]
        for r in rows
    ]
    return render_table(headers, body)


def top_steps(run: dict, limit: int = 8) -> str:
    """The largest per-step seconds of a run (stats.json for (a), the loop's timers for (b))."""
    steps = {k: v for k, v in run["steps"].items() if k != "total"}
    ranked = sorted(steps.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    total = run["seconds"]
    return "\n".join(
        f"    {name:<28} {sec:8.2f} s  {100 * sec / total:5.1f} %" for name, sec in ranked
    )


def processing_seconds(run: dict) -> float:
    """Seconds outside reading and writing: the cleaning itself."""
    return run["seconds"] - run["steps"].get("read", 0.0) - run["steps"].get("write", 0.0)


def show_outputs(a: dict, b: dict) -> None:
    """Output sizes: the two write the same records, compressed differently."""
    print("\nOutput files, gzip bytes (same JSON lines; (a) pretrain_mix.io, (b) stdlib gzip -6):")
    for name in sorted({*a["output_bytes"], *b["output_bytes"]}):
        x, y = a["output_bytes"].get(name, 0), b["output_bytes"].get(name, 0)
        print(f"  {name:<20} (a) {x / MB:9.1f} MB   (b) {y / MB:9.1f} MB")


def library_fingerprint() -> dict[str, str]:
    """Digest of each pretrain_mix module the clean step loads: which version the figures
    are for (stage 1 modules are left out, so editing them does not raise a warning)."""
    import pretrain_mix.clean
    import pretrain_mix.profiles  # noqa: F401  loaded for its place in sys.modules

    modules = [m for name, m in sys.modules.items() if name.startswith("pretrain_mix")]
    files = sorted({Path(m.__file__) for m in modules if getattr(m, "__file__", None)})
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for path in files}


def note(message: str) -> None:
    print(f"[bench_clean] {message}", file=sys.stderr, flush=True)


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200_000, help="documents in the raw file")
    parser.add_argument(
        "--html-share",
        type=float,
        default=0.02,
        help="share of documents that are whole HTML pages (through Resiliparse; default 0.02)",
    )
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run (a) on 2 x --docs to show its peak memory stays flat (default on)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each measurement; the fastest is reported (default 1: they are long)",
    )
    args = parser.parse_args(argv)
    if args.docs < 1 or args.repeats < 1 or not 0 <= args.html_share < 1:
        parser.error("--docs and --repeats must be >= 1, --html-share in [0, 1)")
    return args


def best_of(
    repeats: int, job: Callable[..., dict], env: Mapping[str, str | None], **kwargs: Any
) -> dict:
    """The fastest of `repeats` runs (a shared machine only ever slows a run down), with the
    highest peak RSS of them all, so the memory figure stays a worst case."""
    runs = []
    for _ in range(repeats):
        run = run_isolated(job, env, **kwargs)
        if "error" in run:
            raise RuntimeError(run["error"])
        note(f"  {run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MB")
        runs.append(run)
    best = min(runs, key=lambda r: r["seconds"])
    return {
        **best,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "all_seconds": [r["seconds"] for r in runs],
    }


def run_pretrain_mix(
    raw: RawInput, settings: dict, workdir: Path, threads: int | None, repeats: int
) -> dict:
    label = f"a_{raw.docs}_{threads or 'default'}threads"
    note(f"(a) pretrain-mix, {raw.docs:,} documents, POLARS_MAX_THREADS={threads or 'unset'}")
    env = {"POLARS_MAX_THREADS": None if threads is None else str(threads)}
    out_dir = str(workdir / label)
    return best_of(
        repeats, pretrain_mix_job, env, raw_path=raw.path, settings=settings, out_dir=out_dir
    )


def run_baseline(raw: RawInput, rules: dict, workdir: Path, repeats: int) -> dict:
    note(f"(b) baseline, {raw.docs:,} documents, one process, one thread")
    out_dir = str(workdir / f"b_{raw.docs}")
    return best_of(repeats, baseline_job, {}, raw_path=raw.path, rules=rules, out_dir=out_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.workdir.resolve()
    library = library_fingerprint()
    settings = workflow_settings()
    rules = baseline_rules(settings)
    raw = build_input(args.corpora, workdir, args.docs, args.html_share)

    repeats = args.repeats
    single = run_pretrain_mix(raw, settings, workdir, threads=1, repeats=repeats)
    default = run_pretrain_mix(raw, settings, workdir, threads=None, repeats=repeats)
    base = run_baseline(raw, rules, workdir, repeats)
    scaled_raw = scaled = None
    if args.scaling:
        scaled_raw = build_input(args.corpora, workdir, 2 * args.docs, args.html_share)
        scaled = run_pretrain_mix(scaled_raw, settings, workdir, threads=1, repeats=repeats)

    rows = [
        measurement_row(PRETRAIN_MIX, single, raw),
        measurement_row(PRETRAIN_MIX, default, raw),
        measurement_row(BASELINE, base, raw),
    ]
    if scaled is not None and scaled_raw is not None:
        rows.append(measurement_row(f"{PRETRAIN_MIX} (2x docs)", scaled, scaled_raw))

    print(f"\nStage 2 clean benchmark: {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"input: {raw.path}\n  {raw.docs:,} documents, {raw.text_bytes / MB:,.1f} MB of text;"
        f" {raw.html_docs:,} whole HTML pages ({raw.html_bytes / MB:,.1f} MB);"
        f" {raw.distinct_docs:,} distinct source documents, so {raw.repeated_docs:,}"
        f" ({100 * raw.repeated_docs / raw.docs:.1f} %) are exact repeats"
    )
    print(f"settings: {CONFIG.relative_to(REPO)}, original rules {settings['filters']}")
    print()
    print(table(rows))

    speedup = rows[0]["docs_per_s_per_core"] / rows[2]["docs_per_s"]
    peak = max(r["peak_rss_mb"] for r in rows if r["implementation"].startswith(PRETRAIN_MIX))
    processing = processing_seconds(base) / processing_seconds(single)
    print(f"\nspeedup, (a) per core / (b): {speedup:.2f}x")
    print(
        f"  without reading and writing (decompress + parse, serialise + compress):"
        f" {processing:.2f}x ((a) {processing_seconds(single):.1f} s,"
        f" (b) {processing_seconds(base):.1f} s)"
    )
    print(f"{verdict(speedup >= SPEEDUP_TARGET)}: >= {SPEEDUP_TARGET:.0f}x")
    print(f"{verdict(peak < MEMORY_LIMIT_MB)}: peak memory < 2 GB ((a) max {peak:,.0f} MB)")
    if scaled is not None:
        growth = scaled["peak_rss_mb"] / single["peak_rss_mb"]
        print(
            f"memory scaling, (a) 1 thread: {single['peak_rss_mb']:,.0f} MB at {raw.docs:,} docs,"
            f" {scaled['peak_rss_mb']:,.0f} MB at {2 * raw.docs:,} docs ({growth:.2f}x)"
        )

    if library_fingerprint() != library:
        print("WARNING: pretrain_mix's source changed during the run; figures mix versions")
    print("\nLargest steps:")
    for name, run in (("(a) 1 thread", single), ("(a) default", default), ("(b)", base)):
        print(f"  {name}, {run['seconds']:.1f} s in all:\n{top_steps(run)}")

    agree = agreement(single, base)
    show_agreement(agree)
    show_outputs(single, base)

    results = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "input": asdict(raw),
        "input_2x": asdict(scaled_raw) if scaled_raw else None,
        "settings": settings,
        "rows": rows,
        "runs": {"a_1thread": single, "a_default": default, "b": base, "a_2x": scaled},
        "speedup_per_core": speedup,
        "speedup_without_read_write": processing,
        "pass_speedup": speedup >= SPEEDUP_TARGET,
        "peak_rss_mb": peak,
        "pass_memory": peak < MEMORY_LIMIT_MB,
        "agreement": agree,
        "library_files_sha256": library,
        "library_changed_during_run": library_fingerprint() != library,
    }
    (workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(f"\nresults: {workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # the benchmark reports; it does not fail the caller
        note(f"error: {type(exc).__name__}: {exc}")
    sys.exit(0)
