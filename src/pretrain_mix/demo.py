"""The offline demo mixture: small local datasets generated from a seed.

Each dataset gives stage 2 real work: English web prose with spam, boilerplate, very short
pages, exact and near duplicates and rows without text; Vietnamese prose partly in
decomposed Unicode (NFD); Python source whose indentation must survive; pages with HTML
remnants and whole HTML documents (nested field); math problems in two columns.
"""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Files per demo dataset, relative to the demo folder. config/config.yaml points at them.
DEMO_FILES: dict[str, list[str]] = {
    "web_en": [f"web_en/part-{i}.jsonl" for i in range(3)],
    "web_vi": ["web_vi/data.jsonl"],
    "code": ["code/python.parquet"],
    "html": ["html/pages.jsonl"],
    "math": ["math/problems.jsonl"],
}

# --- English prose ---------------------------------------------------------------------

_EN_TOPICS = {
    "gardening": (
        ["tomatoes", "roses", "the soil", "compost", "seedlings", "the lawn", "herbs", "the hedge"],
        ["water", "prune", "plant", "harvest", "feed", "protect", "move", "cover"],
    ),
    "history": (
        [
            "the old bridge",
            "the castle",
            "the harbour",
            "the village church",
            "the market hall",
            "the railway",
            "the city walls",
            "the mill",
        ],
        ["restore", "visit", "study", "describe", "rebuild", "document", "explore", "map"],
    ),
    "cooking": (
        [
            "the bread",
            "a simple soup",
            "the sauce",
            "fresh pasta",
            "the rice",
            "roasted vegetables",
            "the dough",
            "a lemon cake",
        ],
        ["bake", "stir", "season", "prepare", "serve", "taste", "cool", "slice"],
    ),
    "science": (
        [
            "the experiment",
            "the samples",
            "the telescope",
            "the data",
            "the cells",
            "the model",
            "the sensors",
            "the results",
        ],
        ["measure", "compare", "observe", "record", "analyse", "repeat", "calibrate", "test"],
    ),
    "travel": (
        [
            "the coastal path",
            "the night train",
            "the old town",
            "the mountain hut",
            "the ferry",
            "the museum",
            "the river walk",
            "the local market",
        ],
        ["book", "reach", "photograph", "recommend", "cross", "follow", "enjoy", "find"],
    ),
}
_EN_ADJECTIVES = [
    "small",
    "quiet",
    "careful",
    "early",
    "useful",
    "bright",
    "patient",
    "simple",
    "local",
    "seasonal",
    "detailed",
    "practical",
    "familiar",
    "gentle",
]
_EN_PEOPLE = [
    "Our neighbour",
    "The guide",
    "My grandmother",
    "A local teacher",
    "The author",
    "One visitor",
    "The team",
    "Most experts",
    "A friend of mine",
    "The owner",
]
_EN_TEMPLATES = [
    "{person} likes to {verb} {noun} in the {adj} hours of the morning.",
    "It is a good idea to {verb} {noun} before the weather changes.",
    "When you {verb} {noun}, take your time and keep notes of what you see.",
    "{person} explained that {noun} needs a {adj} approach and a bit of patience.",
    "There are many ways to {verb} {noun}, but the {adj} one usually works best.",
    "We decided to {verb} {noun} again because the first attempt was not {adj} enough.",
    "In our experience, {noun} is easier to {verb} than most people think.",
    "{person} wrote a {adj} guide on how to {verb} {noun} without special tools.",
    "After a few weeks we could see how {noun} had changed, and it was worth the effort.",
    "If you want to {verb} {noun}, start with a {adj} plan and adjust it as you go.",
    "The {adj} details matter: {person} always says that {noun} rewards attention.",
    "Many readers asked us whether it is possible to {verb} {noun} on a small budget.",
]
_EN_BOILERPLATE = [
    "Subscribe to our newsletter for weekly updates.",
    "This website uses cookies to improve your experience. Accept cookies to continue.",
    "Share this article on social media.",
    "All rights reserved. Terms of use | Privacy policy",
]
_EN_SPAM = [
    "CLICK HERE to claim your FREE prize!!! Winner winner, you have been selected. Buy now, "
    "limited offer, cheap pills and casino bonus codes. Click here click here click here.",
    "Make money fast from home!!! Earn $5000 a week, no experience needed. Viagra, casino, "
    "crypto giveaway. Act now, this offer expires today. CLICK HERE.",
    "Best online casino bonus 2024. Free spins, jackpot, poker, betting tips. "
    "Sign up now and win big. Casino casino casino.",
]
_EN_SHORT = [
    "Home | About | Contact",
    "Page not found.",
    "Loading...",
    "ok",
    "Read more",
    "Lorem ipsum dolor sit amet.",
]


def _english_sentence(rng: random.Random, topic: str, template: str) -> str:
    nouns, verbs = _EN_TOPICS[topic]
    return template.format(
        person=rng.choice(_EN_PEOPLE),
        verb=rng.choice(verbs),
        noun=rng.choice(nouns),
        adj=rng.choice(_EN_ADJECTIVES),
    )


def _paragraphs(rng: random.Random, sentences: list[str]) -> list[str]:
    """The sentences split into 1-4 paragraphs, in order."""
    cuts = sorted(rng.sample(range(1, len(sentences)), min(rng.randint(0, 3), len(sentences) - 1)))
    bounds = [0, *cuts, len(sentences)]
    return [" ".join(sentences[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def english_article(rng: random.Random) -> str:
    # Each template at most once a document: real articles do not repeat their sentences,
    # and the Gopher repetition filter would (rightly) reject ones that did.
    topic = rng.choice(sorted(_EN_TOPICS))
    templates = rng.sample(_EN_TEMPLATES, rng.randint(5, len(_EN_TEMPLATES)))
    paragraphs = _paragraphs(rng, [_english_sentence(rng, topic, t) for t in templates])
    if rng.random() < 0.25:
        paragraphs.append(rng.choice(_EN_BOILERPLATE))
    return "\n\n".join(paragraphs)


def near_duplicate(rng: random.Random, text: str, edits: int = 3) -> str:
    """A copy with a few words replaced, as a scraper sees the same page twice."""
    words = text.split(" ")
    for _ in range(edits):
        i = rng.randrange(len(words))
        words[i] = rng.choice(_EN_ADJECTIVES)
    return " ".join(words)


# --- Vietnamese prose ---------------------------------------------------------------------

_VI_SENTENCES = [
    "Hà Nội là thủ đô của Việt Nam và có lịch sử hơn một nghìn năm.",
    "Người dân ở đây thường uống trà vào buổi sáng trước khi đi làm.",
    "Mùa thu là thời điểm đẹp nhất trong năm để đi dạo quanh hồ Gươm.",
    "Các nhà khoa học đã nghiên cứu loài chim này trong nhiều năm.",
    "Phở là một món ăn truyền thống được nhiều người yêu thích.",
    "Trong những năm gần đây, du lịch đã phát triển rất nhanh.",
    "Ngôi chùa cổ này được xây dựng vào thế kỷ thứ mười một.",
    "Học sinh được khuyến khích đọc sách mỗi ngày để mở rộng kiến thức.",
    "Đồng bằng sông Cửu Long là vựa lúa lớn nhất của cả nước.",
    "Người nông dân đã thu hoạch lúa sớm hơn mọi năm vì thời tiết thuận lợi.",
    "Thành phố có nhiều công viên và những con đường rợp bóng cây.",
    "Bảo tàng mở cửa cho khách tham quan từ thứ ba đến chủ nhật.",
    "Loài cá này sống chủ yếu ở vùng nước ngọt và có màu sắc rất đẹp.",
    "Ông tôi kể rằng ngày xưa làng này chỉ có vài chục hộ gia đình.",
    "Chính quyền địa phương đã đầu tư xây dựng thêm trường học và bệnh viện.",
    "Áo dài là trang phục truyền thống của phụ nữ Việt Nam.",
    "Vịnh Hạ Long được công nhận là di sản thiên nhiên thế giới.",
    "Các em nhỏ rất thích nghe kể chuyện cổ tích vào buổi tối.",
    "Cà phê sữa đá là thức uống quen thuộc của người Sài Gòn.",
    "Nhiều loài động vật quý hiếm đang được bảo vệ trong vườn quốc gia.",
]
_VI_SPAM = [
    "Nhấn vào đây để nhận quà miễn phí!!! Trúng thưởng ngay hôm nay, casino uy tín, "
    "khuyến mãi lớn, đăng ký ngay. Nhấn vào đây nhấn vào đây.",
    "Kiếm tiền nhanh tại nhà, thu nhập 50 triệu mỗi tháng, không cần kinh nghiệm. "
    "Casino, cá cược, khuyến mãi khủng. Liên hệ ngay!!!",
]
_VI_SHORT = ["Xem thêm", "Trang chủ | Liên hệ", "Đang tải...", "ok"]


def vietnamese_article(rng: random.Random) -> str:
    sentences = rng.sample(_VI_SENTENCES, rng.randint(5, 12))
    return "\n\n".join(_paragraphs(rng, sentences))


# --- Python source ------------------------------------------------------------------------

_PY_NAMES = ["total", "count", "items", "values", "result", "buffer", "record", "path", "limit"]
_PY_FUNCS = ["load", "parse", "merge", "clean", "summarise", "validate", "normalise", "split"]


def python_module(rng: random.Random) -> str:
    functions = []
    for _ in range(rng.randint(1, 4)):
        name = f"{rng.choice(_PY_FUNCS)}_{rng.choice(_PY_NAMES)}"
        arg, acc = rng.sample(_PY_NAMES, 2)
        functions.append(
            f"def {name}({arg}, limit={rng.randint(2, 99)}):\n"
            f'    """{name.replace("_", " ").capitalize()} up to `limit` entries."""\n'
            f"    {acc} = []\n"
            f"    for index, entry in enumerate({arg}):\n"
            f"        if index >= limit:\n"
            f"            break\n"
            f"        if entry is None:\n"
            f"            continue\n"
            f"        {acc}.append(entry)\n"
            f"    return {acc}\n"
        )
    header = f'"""Helpers for {rng.choice(_PY_NAMES)} handling."""\n\nimport os\nimport sys\n\n\n'
    return header + "\n\n".join(functions)


_GENERATED_CODE = (
    "# -*- coding: utf-8 -*-\n# Generated by the protocol buffer compiler.  DO NOT EDIT!\n"
    "# source: messages.proto\n\nfrom google.protobuf import descriptor as _descriptor\n"
    "_MESSAGE = _descriptor.FileDescriptor(name='messages.proto', package='demo')\n"
)


def minified_javascript(rng: random.Random) -> str:
    body = ";".join(f"var a{i}=function(b){{return b*{rng.randint(1, 9)}}}" for i in range(300))
    return body + ";"


# --- HTML ---------------------------------------------------------------------------------


def html_fragment(rng: random.Random) -> str:
    """Prose with leftover tags and entities, as a careless extractor leaves it."""
    text = english_article(rng)
    paragraphs = text.split("\n\n")
    marked = [f"<p>{p.replace(' and ', ' &amp; ', 1)}</p>" for p in paragraphs]
    marked.insert(1, "<script>var tracking = {id: 42};</script>")
    return "\n".join(marked).replace("It is", "It&#8217;s", 1) + "\n<br/>&nbsp;"


def html_page(rng: random.Random) -> str:
    """A whole HTML document: head, style, navigation, article, footer."""
    paragraphs = "".join(f"<p>{p}</p>\n" for p in english_article(rng).split("\n\n"))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Notes from the garden</title>\n<style>body { font-family: serif; }</style>\n"
        '<script src="/static/app.js"></script>\n</head>\n<body>\n'
        '<nav><a href="/">Home</a> | <a href="/about">About</a></nav>\n'
        f"<article>\n<h1>Notes &amp; stories</h1>\n{paragraphs}</article>\n"
        "<footer>&copy; 2024 Example site. All rights reserved.</footer>\n</body>\n</html>\n"
    )


# --- Math ---------------------------------------------------------------------------------


def math_problem(rng: random.Random) -> dict[str, str]:
    a, b, c = rng.randint(2, 12), rng.randint(1, 30), rng.randint(31, 99)
    return {
        "problem": f"Solve for $x$: ${a}x + {b} = {c}$.",
        "solution": (
            f"Subtract {b} from both sides: ${a}x = {c - b}$.\n"
            f"Divide by {a}: $x = \\frac{{{c - b}}}{{{a}}}$"
            + (f" $= {(c - b) // a}$." if (c - b) % a == 0 else ".")
        ),
    }


# --- Assembly -----------------------------------------------------------------------------


def _with_noise(
    rng: random.Random,
    n: int,
    make: Callable[[random.Random], str],
    spam: list[str],
    short: list[str],
) -> list[str | None]:
    """n texts: mostly `make`, plus spam, very short pages, exact and near duplicates."""
    texts: list[str | None] = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.05 and spam:
            texts.append(rng.choice(spam))
        elif roll < 0.10 and short:
            texts.append(rng.choice(short))
        elif roll < 0.15 and len(texts) > 10:
            texts.append(rng.choice([t for t in texts[-50:] if t] or [make(rng)]))
        elif roll < 0.20 and len(texts) > 10:
            source = rng.choice([t for t in texts[-50:] if t and len(t) > 200] or [make(rng)])
            texts.append(near_duplicate(rng, source))
        else:
            texts.append(make(rng))
    return texts


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def web_en_rows(rng: random.Random, n: int) -> list[dict]:
    texts = _with_noise(rng, n, english_article, _EN_SPAM, _EN_SHORT)
    rows = [{"text": t, "url": f"https://example.org/post/{i}"} for i, t in enumerate(texts)]
    # Rows a real crawl has too: no text, empty text, only whitespace.
    for i, broken in zip(range(7, n, max(1, n // 3)), [None, "", "   \n"], strict=False):
        rows[i]["text"] = broken
    return rows


def web_vi_rows(rng: random.Random, n: int) -> list[dict]:
    texts = _with_noise(rng, n, vietnamese_article, _VI_SPAM, _VI_SHORT)
    # About a third in decomposed form (NFD), as text copied from some sources arrives.
    return [
        {"text": unicodedata.normalize("NFD", t) if rng.random() < 0.3 else t, "id": i}
        for i, t in enumerate(texts)
    ]


def code_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i, text in enumerate(_with_noise(rng, n, python_module, [], [])):
        path, lang = f"src/module_{i}.py", "python"
        if rng.random() < 0.03:
            text, path = _GENERATED_CODE, f"src/messages_{i}_pb2.py"
        elif rng.random() < 0.03:
            text, path, lang = minified_javascript(rng), f"static/app.{i}.min.js", "javascript"
        rows.append({"content": text, "path": path, "lang": lang})
    return rows


def html_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        html = html_page(rng) if rng.random() < 0.4 else html_fragment(rng)
        rows.append({"page": {"url": f"https://example.com/{i}", "html": html}})
    return rows


def math_rows(rng: random.Random, n: int) -> list[dict]:
    rows = [math_problem(rng) for _ in range(n)]
    rows[3]["solution"] = None  # a template column missing: counted, never written
    return rows


def write_demo_data(folder: str | Path, seed: int, documents_per_dataset: int) -> list[Path]:
    """Generate every demo dataset under `folder`; same seed, same files."""
    folder = Path(folder)
    n = documents_per_dataset
    written = []
    en_rows = web_en_rows(random.Random(f"{seed}-web_en"), n)
    per_part = -(-len(en_rows) // len(DEMO_FILES["web_en"]))
    for part, name in enumerate(DEMO_FILES["web_en"]):
        _write_jsonl(folder / name, en_rows[part * per_part : (part + 1) * per_part])
        written.append(folder / name)
    for dataset, make_rows in [("web_vi", web_vi_rows), ("html", html_rows), ("math", math_rows)]:
        path = folder / DEMO_FILES[dataset][0]
        _write_jsonl(path, make_rows(random.Random(f"{seed}-{dataset}"), n))
        written.append(path)
    code_path = folder / DEMO_FILES["code"][0]
    code_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(code_rows(random.Random(f"{seed}-code"), n)), code_path)
    written.append(code_path)
    return written
