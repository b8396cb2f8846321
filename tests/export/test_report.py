"""report.html: structure (parsed with html.parser), and as a user sees it: laid out by
headless Chromium, measured (see ``browser.py``) and screenshot."""

from __future__ import annotations

import bisect
import operator
import random
import struct
import zlib
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.export import sample_run
from tests.export.browser import chromium, measure, screenshot

from qudata.export.report import ReportData, render_report
from qudata.export.svg import BAR_COLOR

FORMATS = ("chatml", "jsonl", "plain")
SPLITS = ("train", "validation", "test")
# Fine buckets like qudata.quality.tokens.TokenHistogram: 0..63, then edges growing by 5%.
EDGES = list(range(64))
while EDGES[-1] < 2**20:
    EDGES.append(max(int(EDGES[-1] * 1.05), EDGES[-1] + 1))
EVIL = "<script>alert(1)</script>.html"


def realistic_data(seed: int = 7, *, hostile: bool = True) -> ReportData:
    """About 300 documents, 3 formats, 3 splits; ``hostile`` adds a source named ``EVIL``."""
    rng = random.Random(seed)
    hists: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for fmt in FORMATS:
        for split, n in zip(SPLITS, (270, 15, 15), strict=True):
            counts = [0] * (len(EDGES) - 1)
            for _ in range(n):
                tokens = int(rng.lognormvariate(6.3 + (fmt == "chatml") * 0.2, 1.0))
                counts[bisect.bisect_right(EDGES, tokens) - 1] += 1
            hists[(fmt, split)] = [  # only the non-empty buckets, as TokenHistogram gives
                (EDGES[i], EDGES[i + 1] - 1, c) for i, c in enumerate(counts) if c
            ]
    quality = [0] * 20
    for _ in range(290):
        quality[min(19, int(rng.betavariate(5, 2) * 20))] += 1
    pages = ["json", "re", "os.path", "asyncio-task", "datetime", "pathlib", "typing"]
    pages += ["collections", "itertools", "functools", "logging", "argparse", "sqlite3"]
    pages += ["subprocess", "unittest", "dataclasses", "csv", "zlib", "struct"]
    sources = sorted(
        ((f"library/{p}.html", rng.randint(2, 26)) for p in pages), key=lambda s: -s[1]
    )
    sources = [*sources, *([(EVIL, 2)] if hostile else [])]
    sources.append(("other", 312 - sum(n for _, n in sources)))  # sources sum to "read"
    return ReportData(
        title="qudata pack docs.jsonl -> out",
        qudata_version="0.1.0",
        counts={"read": 312, "accepted": 261, "dropped": {"low_quality": 31, "duplicate": 20}},
        formats={
            "chatml": {
                "documents": 258,
                "records": 412,
                "tokens": 598_113,
                "tokens_exact": True,
                "dropped": {"too_long": 3},
            },
            "jsonl": {"documents": 261, "records": 261, "tokens": 541_920, "tokens_exact": True},
            "plain": {
                "documents": 260,
                "records": 260,
                "tokens": 550_000,
                "tokens_exact": False,
                "dropped": {"empty_after_markup": 1},
            },
        },
        token_histograms=hists,
        quality_histogram=[(i / 20, (i + 1) / 20, c) for i, c in enumerate(quality)],
        quality_threshold=0.7,
        unscored=22,
        sources=sources,
    )


_VOID = {"meta", "link", "br", "hr", "img", "input"}


class _Svgs(HTMLParser):
    """Collects, per top-level <svg id>, its bar count, <title>s and texts."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, list[str]]] = {}
        self.current: str | None = None
        self.stack: list[str] = []
        self.scripts = 0

    def close(self) -> None:
        super().close()
        assert self.stack == [], f"unclosed {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            assert self.current is None, "nested svg"
            self.current = a["id"] or ""
            assert a["role"] == "img"
            self.charts[self.current] = {"bars": [], "titles": [], "texts": [], "tips": []}
        elif self.current and tag == "rect" and a.get("class") == "bar":
            self.charts[self.current]["bars"].append(a["fill"] or "")
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack.pop() == tag, f"unbalanced </{tag}>"
        if tag == "svg":
            self.current = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self.current and self.stack[-2:] == ["rect", "title"]:
            self.charts[self.current]["tips"].append(data)  # "label: count"
        elif self.current and self.stack[-1] in ("title", "text"):
            self.charts[self.current][self.stack[-1] + "s"].append(data)


def _parse(html: str) -> _Svgs:
    parser = _Svgs()
    parser.feed(html)
    parser.close()
    return parser


def test_report_structure_ids_and_bar_counts() -> None:
    data = realistic_data()
    html = render_report(data)
    parsed = _parse(html)
    token_ids = [f"chart-tokens-{f}-{s}" for f in FORMATS for s in SPLITS]
    expected = [*token_ids, "chart-quality", "chart-dropped", "chart-sources"]
    assert list(parsed.charts) == expected
    assert parsed.scripts == 0
    # Fine buckets are re-binned into powers of two, the same bins in every chart.
    tips = [[t.split(" tokens: ") for t in parsed.charts[c]["tips"]] for c in token_ids]
    assert all([lo for lo, _ in t] == [lo for lo, _ in tips[0]] for t in tips)
    assert len(tips[0]) == len(parsed.charts[token_ids[0]]["bars"]) >= 6
    for (key, buckets), chart_tips in zip(data.token_histograms.items(), tips, strict=True):
        assert sum(int(n.replace(",", "")) for _, n in chart_tips) == sum(c for *_, c in buckets)
        low = min(lo for lo, _, _ in buckets)
        bin_low = [int(r.split("-")[0].replace(",", "")) for r, _ in chart_tips]
        assert min(bin_low) <= low, key
    quality = parsed.charts["chart-quality"]
    assert len(quality["bars"]) == 20
    assert "min_quality_score 0.7" in quality["texts"]
    assert {"quality_score", "documents"} <= set(quality["texts"])
    dropped = parsed.charts["chart-dropped"]
    assert dropped["bars"] == ["#3b6fd8", "#3b6fd8", "#e07b39", "#e07b39"]
    assert {"low_quality", "duplicate", "chatml: too_long", "31"} <= set(dropped["texts"])
    sources = parsed.charts["chart-sources"]
    assert len(sources["bars"]) == len(data.sources)
    assert {"library/json.html", "other"} <= set(sources["texts"])
    for chart in parsed.charts.values():
        assert chart["titles"], "every chart has a <title>"
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.html" in html
    assert render_report(realistic_data()) == html  # deterministic


def test_token_buckets_rebinned_by_power_of_two() -> None:
    data = ReportData(
        title="t",
        qudata_version="0",
        counts={"read": 12, "accepted": 12, "dropped": {}},
        formats={"jsonl": {"documents": 12, "records": 12, "tokens": 10, "tokens_exact": True}},
        token_histograms={
            ("jsonl", "train"): [(3, 3, 2), (70, 73, 5), (1000, 1049, 1), (5000, 5249, 4)]
        },
    )
    chart = _parse(render_report(data)).charts["chart-tokens-jsonl-train"]
    counts = {t.split(" tokens: ")[0]: int(t.split(": ")[1]) for t in chart["tips"]}
    assert list(counts) == [f"{2**k:,}-{2 ** (k + 1) - 1:,}" for k in range(1, 13)]
    assert counts["2-3"] == 2 and counts["64-127"] == 5 and counts["4,096-8,191"] == 4
    assert counts["512-1,023"] == 1 and sum(counts.values()) == 12
    assert {"2", "tokens per record (log scale)"} <= set(chart["texts"])


NEAR_SECTION = {
    "method": "near", "threshold": 0.8, "permutations": 128, "bands": 16, "rows": 8,
    "shingle_size": 5, "seed": 1, "documents": 133, "duplicates": 13,
    "exact_duplicates": 9, "near_duplicates": 4, "clusters": 120,
    "cluster_sizes": {"1": 110, "2": 6, "3": 2, "9": 1, "40": 1},
}  # fmt: skip


def test_report_shows_the_cluster_sizes_when_dedup_ran() -> None:
    data = realistic_data(hostile=False)
    data.dedup = NEAR_SECTION
    html = render_report(data)
    chart = _parse(html).charts["chart-clusters"]
    tips = [t.split(" documents: ") for t in chart["tips"]]
    # sizes to 8 as they are, larger ones in powers of two
    assert tips == [["1 document: 110"], ["2", "6"], ["3", "2"], ["9-16", "1"], ["33-64", "1"]]
    assert len(chart["bars"]) == 5
    assert "Duplicate clusters by size" in chart["titles"]
    assert "133 documents in 120 clusters; 9 exact and 4 near duplicates dropped" in html
    assert "128 permutations, 16 bands x 8 rows, 5-word shingles, seed 1" in html
    assert "chart-clusters" not in render_report(realistic_data(hostile=False))


def test_report_empty_data_and_escaped_title() -> None:
    data = ReportData(
        title='a "b" <c> & d',
        qudata_version="0.1.0",
        counts={"read": 0, "accepted": 0, "dropped": {}},
        formats={"jsonl": {"documents": 0, "records": 0, "tokens": None, "tokens_exact": False}},
    )
    html = render_report(data)
    parsed = _parse(html)
    assert list(parsed.charts) == []  # no chart without data: one line each says why
    assert html.count('class="no-chart"') == 4
    assert "No token length chart: tokens were not counted (quality.tokenizer: none)." in html
    assert "No quality chart: no document had a quality_score (0 unscored" in html
    assert "No drop chart: no document was dropped." in html
    assert "No source chart: no document was written." in html
    assert "<title>a &quot;b&quot; &lt;c&gt; &amp; d</title>" in html


def _png_pixels(png: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, unfiltered pixel rows) of an 8-bit RGB(A) PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, bytearray(), b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw, stride, mask = zlib.decompress(bytes(idat)), width * bpp, (255).__and__
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub: a running sum per channel
            for c in range(bpp):
                line[c::bpp] = bytes(map(mask, accumulate(line[c::bpp])))
        elif kind == 2:  # Up
            line = bytearray(map(mask, map(operator.add, line, prev)))
        elif kind in (3, 4):  # Average, Paeth: byte by byte
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                if kind == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                    continue
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return width, height, bpp, bytes(out)


needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium not installed")


def assert_seen_whole(html: str, counts: dict[str, Any]) -> dict[str, Any]:
    """What Chromium lays out: no label cut or overlapping, no chart empty, scaled out
    of its size or the same as another, no bar twice, the drops counted once."""
    seen = measure(html)
    assert seen["cut"] == [] and seen["overflow"] == [] and seen["overlap"] == []
    assert seen["page"]["width"] <= seen["page"]["view"]  # no sideways scrolling
    bars = []
    for chart in seen["charts"]:
        values = [int(t.rsplit(": ", 1)[1].replace(",", "")) for t in chart["tips"]]
        assert chart["visible"] >= 1 and any(values), chart["id"]  # not empty
        assert 0.6 <= chart["scale"] <= 1.3, chart["id"]  # labels stay their size
        labels = [t.rsplit(": ", 1)[0] for t in chart["tips"]]
        assert len(set(labels)) == len(labels), chart["id"]  # no bar twice
        bars.append((chart["id"], chart["title"]))
    assert len({i for i, _ in bars}) == len({t for _, t in bars}) == len(bars)  # none twice
    (dropped,) = [c for c in seen["charts"] if c["id"] == "chart-dropped"]
    pipeline = [
        int(t.rsplit(": ", 1)[1].replace(",", ""))
        for t, fill in zip(dropped["tips"], dropped["fills"], strict=True)
        if fill == BAR_COLOR
    ]
    assert sum(pipeline) == sum(counts["dropped"].values())  # every drop once
    return seen


@needs_chromium
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    html_path, png_path = tmp_path / "report.html", tmp_path / "report.png"
    data = realistic_data()
    html_path.write_text(render_report(data), encoding="utf-8")
    assert_seen_whole(html_path.read_text(encoding="utf-8"), data.counts)
    screenshot(html_path, png_path)
    width, height, bpp, pixels = _png_pixels(png_path.read_bytes())
    assert (width, height) == (1200, 2000)
    target = bytes.fromhex(BAR_COLOR.removeprefix("#"))
    channels = [pixels[c::bpp] for c in range(3)]
    colours = list(zip(*channels, strict=True))
    assert colours.count(tuple(target)) >= 20_000  # the bars were drawn
    assert len(set(colours)) >= 50  # text, lines and cards: not a blank page


@needs_chromium
def test_a_real_run_as_a_user_sees_it(tmp_path: Path) -> None:
    """Contaminated, duplicate and low-quality drops, deep source paths, packed rows."""
    out = sample_run.pack(tmp_path)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    counts = manifest["counts"]
    assert counts["dropped"]["contaminated"] > 0 and counts["dropped"]["low_quality"] > 0
    html = (out / "report.html").read_text(encoding="utf-8")
    seen = assert_seen_whole(html, counts)
    ids = [c["id"] for c in seen["charts"]]
    assert {"chart-quality", "chart-dropped", "chart-clusters", "chart-sources"} <= set(ids)
    assert "chart-fill-packed-train" in ids and seen["notes"] == []
    packed = manifest["formats"]["packed"]
    rows = sum(split["rows"] for split in packed["packing"].values())
    assert f"<td>{rows:,} rows of {packed['records']:,} sequences</td>" in html
    (dropped,) = [c for c in seen["charts"] if c["id"] == "chart-dropped"]
    contaminated = [t for t in dropped["tips"] if t.startswith("contaminated")]
    items = next(iter(manifest["decontamination"].values()))["items"]
    label = f"contaminated: gsm_like.jsonl.gz ({items} item{'' if items == 1 else 's'})"
    assert contaminated == [f"{label}: {counts['dropped']['contaminated']}"]
    (sources,) = [c for c in seen["charts"] if c["id"] == "chart-sources"]
    assert any(
        t.startswith("corpora/web/2024/crawl-segment-000000.warc.jsonl: ") for t in sources["tips"]
    )


@needs_chromium
def test_charts_without_data_are_left_out_with_a_line(tmp_path: Path) -> None:
    """Nothing scored, no tokens counted: no empty axes, one line each."""
    out = sample_run.pack(tmp_path, scored=False)
    counts = orjson.loads((out / "manifest.json").read_bytes())["counts"]
    seen = assert_seen_whole((out / "report.html").read_text(encoding="utf-8"), counts)
    ids = [c["id"] for c in seen["charts"]]
    assert "chart-quality" not in ids and not any(i.startswith("chart-tokens") for i in ids)
    tokens, quality = seen["notes"]
    assert tokens == "No token length chart: tokens were not counted (quality.tokenizer: none)."
    assert quality.startswith("No quality chart: no document had a quality_score (")
    assert quality.endswith(" unscored; quality.missing_score: score computes one).")


def test_sources_chart_falls_back_to_the_input_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qudata

    monkeypatch.chdir(tmp_path)
    Path("plain.jsonl").write_text('{"id": "a", "text": "A."}\n{"id": "b", "text": "B."}\n')
    Path("named.jsonl").write_text('{"id": "c", "text": "C.", "source": "c.pdf"}\n')
    config = {"quality": {"tokenizer": "none"}}
    qudata.pack_dataset(["plain.jsonl", "named.jsonl"], "out", config=config, formats=["jsonl"])
    html = Path("out/report.html").read_text(encoding="utf-8")
    chart = html[html.index('id="chart-sources"') :]
    assert "<title>plain.jsonl: 2</title>" in chart  # the bar's tooltip has the full name
    assert "<title>c.pdf: 1</title>" in chart
    assert "(no source)" not in chart
