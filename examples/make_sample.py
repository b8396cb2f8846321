"""Regenerate ``examples/sample.jsonl``: a few hundred real documents for the quick start.

The documents are sections of the Python documentation (PSF licence) as Debian's
``python3.11-doc`` package installs it (``apt-get install python3.11-doc``). Each
line holds ``id``, ``text``, ``source``, ``title``, ``language``, ``topics`` and a
heuristic ``quality_score`` spread around 0.7, then a few planted edge cases:
exact and near duplicates, documents without a title or a score, an empty text,
non-ASCII text and an unknown metadata key. Deterministic: same docs, same bytes.

    python examples/make_sample.py --out examples/sample.jsonl
"""

from __future__ import annotations

import argparse
import html.parser
import json
import math
from pathlib import Path

DOCS = Path("/usr/share/doc/python3.11/html")
BLOCKS = {"p", "pre", "li", "dt", "dd", "div", "br", "tr", "h3", "h4", "blockquote"}


class Sections(html.parser.HTMLParser):
    """Split a Sphinx page into (anchor, heading, text) at its ``h1``/``h2`` headings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # inside <div role="main"> (or class="body")
        self.skip = 0
        self.pre = 0
        self.heading: list[str] | None = None
        self.title = ""
        self.anchor = ""  # id of the latest <section>, the heading's anchor
        self.parts: list[str] = []
        self.sections: list[tuple[str, str, str]] = []  # (anchor, heading, text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if not self.depth:
            classes = (a.get("class") or "").split()
            if tag == "div" and (a.get("role") == "main" or "body" in classes):
                self.depth = 1
            return
        if tag == "div":
            self.depth += 1
        if tag == "section" and a.get("id"):
            self.anchor = a["id"] or ""
        if tag in ("script", "style") or (tag == "a" and "headerlink" in (a.get("class") or "")):
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in ("h1", "h2"):
            self.flush()
            self.heading = []
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag == "div":
            self.depth -= 1
            if not self.depth:
                self.flush()
                return
        if tag in ("script", "style", "a") and self.skip:
            self.skip -= 1
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in ("h1", "h2") and self.heading is not None:
            head = " ".join("".join(self.heading).split()).rstrip("¶").strip()
            self.title = self.title or head
            self.sections.append((self.anchor, head, ""))
            self.heading = None
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.depth and not self.skip:
            if not self.pre:  # HTML source line breaks are not paragraph breaks
                data = data.replace("\n", " ")
            (self.heading if self.heading is not None else self.parts).append(data)

    def flush(self) -> None:
        text = "".join(self.parts)
        self.parts = []
        if self.sections and text.strip():
            anchor, head, _ = self.sections[-1]
            self.sections[-1] = (anchor, head, text)


def tidy(text: str) -> str:
    """Strip lines, keep single blank lines between paragraphs."""
    out: list[str] = []
    for line in text.replace("\xb6", "").splitlines():
        line = line.rstrip()
        if line.strip():
            out.append(line if line.startswith("    ") else " ".join(line.split()))
        elif out and out[-1]:
            out.append("")
    return "\n".join(out).strip()


def quality(text: str) -> float:
    """A heuristic in 0..1, centred near 0.7 on these docs: prose scores higher than
    tables, signatures and code listings."""
    words = text.split()
    if not words:
        return 0.0
    letters = sum(c.isalpha() for c in text) / len(text)
    lines = [line for line in text.splitlines() if line.strip()]
    sentences = sum(line.rstrip()[-1] in ".:!?" for line in lines) / len(lines)
    unique = len(set(lines)) / len(lines)
    mean_word = sum(len(w) for w in words) / len(words)
    length = min(1.0, math.log10(len(words)) / 3)
    raw = 0.3 * length + 0.3 * min(1, letters / 0.8) + 0.2 * sentences + 0.1 * unique
    raw += 0.1 * (1.0 if 3.5 <= mean_word <= 7.5 else 0.5)
    # Raw values run from about 0.61 to 0.97 with median 0.83 here; stretch each half
    # so the scores spread over about 0.4..0.98 around a median of 0.7.
    slope = 2.0 if raw >= 0.83 else 1.4
    return round(min(0.98, max(0.3, 0.7 + (raw - 0.83) * slope)), 2)


def documents(root: Path, count: int) -> list[dict[str, object]]:
    found = []
    for page in sorted(root.glob("library/*.html")):
        parser = Sections()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        parser.close()
        rel = page.relative_to(root).as_posix()
        for number, (anchor, head, raw) in enumerate(parser.sections):
            text = tidy(raw)
            if 300 <= len(text) <= 6000:
                found.append((rel, anchor or str(number), head, text, parser.title))
    step = max(1, len(found) // count)
    docs = []
    for rel, anchor, head, text, title in found[::step][:count]:
        module = Path(rel).stem
        docs.append(
            {
                "id": f"{rel.removesuffix('.html')}#{anchor}",
                "text": text,
                "source": rel,
                "title": head or title,
                "language": "en",
                "topics": ["library", module],
                "quality_score": quality(text),
            }
        )
    return docs


def plant_edge_cases(docs: list[dict[str, object]]) -> list[dict[str, object]]:
    extra = []
    for i in (1, 2, 3):  # exact duplicates of earlier documents, under new ids
        extra.append({**docs[i * 10], "id": f"planted/exact-duplicate-{i}"})
    for i in (1, 2, 3):  # near duplicates: one sentence appended
        doc = docs[i * 10 + 5]
        extra.append(
            {
                **doc,
                "id": f"planted/near-duplicate-{i}",
                "text": f"{doc['text']}\n\nSee also the tutorial.",
            }
        )
    for i in (1, 2):  # no title
        doc = {k: v for k, v in docs[i * 20].items() if k != "title"}
        extra.append(
            {
                **doc,
                "id": f"planted/no-title-{i}",
                "text": f"{doc['text']}\n\n(This copy was saved without its title.)",
            }
        )
    for i in (1, 2):  # no quality score
        doc = {k: v for k, v in docs[i * 20 + 7].items() if k != "quality_score"}
        extra.append(
            {
                **doc,
                "id": f"planted/no-score-{i}",
                "text": f"{doc['text']}\n\n(This copy was saved without a score.)",
            }
        )
    extra.append(
        {
            "id": "planted/empty-text",
            "text": "",
            "source": "planted",
            "title": "Empty",
            "language": "en",
            "topics": ["planted"],
            "quality_score": 0.5,
        }
    )
    doc = docs[33]
    extra.append(
        {
            **doc,
            "id": "planted/non-ascii",
            "text": f"{doc['text']}\n\nCafé — 日本語 — עברית — emoji 🐍",
        }
    )
    extra.append(
        {
            **docs[44],
            "id": "planted/unknown-key",
            "license": "PSF-2.0",
            "text": f"{docs[44]['text']}\n\nLicensed under the PSF License Version 2.",
        }
    )
    return docs + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples/sample.jsonl")
    parser.add_argument("--docs-dir", default=str(DOCS))
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    root = Path(args.docs_dir)
    if not root.is_dir():
        raise SystemExit(f"{root}: not found (apt-get install python3.11-doc)")
    rows = plant_edge_cases(documents(root, args.count))
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(rows)} documents")


if __name__ == "__main__":
    main()
