"""A self-contained ``report.html`` for a packed dataset: summary tables and inline SVG charts.

No scripts, no network, no external CSS or fonts. Every string taken from the
data is escaped and the output is deterministic (no timestamps), so the same
data always renders to the same bytes.

Chart ids: ``chart-tokens-<format>-<split>``, ``chart-quality``,
``chart-dropped``, ``chart-sources``, for packed formats ``chart-fill-<format>-<split>``
and, when duplicates were looked for, ``chart-clusters`` (see :func:`chart_id`). A chart
that would have no data is left out, and one line (``<p class="no-chart">``) says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from qudata.export.report_style import CSS
from qudata.export.svg import ALT_COLOR, BAR_COLOR, Bar, bar_chart, column_chart

__all__ = ["ReportData", "chart_id", "packed_rows", "render_report"]


@dataclass
class ReportData:
    """Everything the report shows, as plain data.

    ``counts``: ``{"read": int, "accepted": int, "dropped": {reason: int}}``.
    ``formats``: per format ``{"documents", "records", "tokens" (int or None),
    "tokens_exact" (bool), "dropped" ({reason: int})}``.
    ``token_histograms``: per ``(format, split)``, ``(low, high, count)`` buckets of any
    width (e.g. only the non-empty ones); the charts re-bin them into powers of two.
    ``quality_histogram``: ``(low, high, count)`` bins over [0, 1].
    ``sources``: ``(source, documents)``, already ranked (top 20 plus "other").
    ``dedup``: the manifest's ``dedup`` section (``cluster_sizes``: size -> clusters).
    """

    title: str
    qudata_version: str
    counts: dict[str, Any]
    formats: dict[str, dict[str, Any]]
    token_histograms: dict[tuple[str, str], list[tuple[int, int, int]]] = field(
        default_factory=dict
    )
    quality_histogram: list[tuple[float, float, int]] = field(default_factory=list)
    quality_threshold: float | None = None
    mix: dict[str, Any] | None = None  # the manifest's ``mix`` section
    dedup: dict[str, Any] | None = None  # the manifest's ``dedup`` section
    decontamination: dict[str, Any] | None = None  # the manifest's ``decontamination``
    unscored: int = 0
    sources: list[tuple[str, int]] = field(default_factory=list)


def chart_id(*parts: str) -> str:
    """``chart_id("tokens", "chatml", "train")`` -> ``"chart-tokens-chatml-train"``."""
    slugs = (re.sub(r"[^a-z0-9_]+", "-", p.lower()).strip("-") or "x" for p in parts)
    return "-".join(["chart", *slugs])


def _reasons(value: object) -> list[tuple[str, int]]:
    """A ``{reason: count}`` mapping, largest first (ties by name)."""
    if not isinstance(value, Mapping):
        return []
    return sorted(((str(k), int(v)) for k, v in value.items()), key=lambda kv: (-kv[1], kv[0]))


def _figure(caption: str, svg: str, note: str = "") -> str:
    small = f" <small>{escape(note)}</small>" if note else ""
    return f"<figure><figcaption>{escape(caption)}{small}</figcaption>{svg}</figure>"


def _no_chart(why: str) -> str:
    """The one line that stands for a chart left out (it would have no data)."""
    return f'<p class="no-chart">{escape(why)}</p>'


def _common_folder(names: list[str]) -> str:
    """The folder every name (but ``other``) is in, ending with ``/``; "" if none."""
    paths = [n for n in names if n != "other"]
    if len(paths) < 2 or not all("/" in p for p in paths):
        return ""
    folders = [p.rsplit("/", 1)[0].split("/") for p in paths]
    common: list[str] = []
    for parts in zip(*folders, strict=False):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/".join(common) + "/" if common else ""


def _summary(data: ReportData) -> str:
    dropped = sum(n for _, n in _reasons(data.counts.get("dropped")))
    cards = [
        ("Read", int(data.counts.get("read", 0))),
        ("Accepted", int(data.counts.get("accepted", 0))),
        ("Dropped", dropped),
    ]
    if data.quality_histogram or data.unscored:
        cards.append(("Unscored", data.unscored))
    out = ['<div class="cards">']
    out += [f'<div class="card"><span>{k}</span><b>{v:,}</b></div>' for k, v in cards]
    out.append("</div>")
    out.append(
        "<table><thead><tr><th>Format</th><th>Documents</th><th>Records</th>"
        "<th>Tokens</th><th>Dropped</th></tr></thead><tbody>"
    )
    for name, stats in data.formats.items():
        tokens = stats.get("tokens")
        shown = "—" if tokens is None else f"{int(tokens):,}"
        if tokens is not None and not stats.get("tokens_exact", True):
            shown = f'<span title="estimate">≈ {shown}</span>'
        fmt_dropped = sum(n for _, n in _reasons(stats.get("dropped")))
        records = f"{int(stats.get('records', 0)):,}"
        rows = packed_rows(stats)
        if rows is not None:  # a packed format: the rows a user loads, of sequences
            records = f"{rows:,} rows of {records} sequences"
        out.append(
            f"<tr><td>{escape(name)}</td><td>{int(stats.get('documents', 0)):,}</td>"
            f"<td>{records}</td><td>{shown}</td><td>{fmt_dropped:,}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def packed_rows(stats: Mapping[str, Any]) -> int | None:
    """The rows of a packed format (``records`` counts its sequences); None otherwise."""
    packing = stats.get("packing")
    if not isinstance(packing, Mapping):
        return None
    return sum(int(split["rows"]) for split in packing.values())


def _tokens_label(n: int) -> str:
    """Powers of two as ``1``, ``512``, ``1k``, ``64k``, ``1M``."""
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}k" if n >= 1024 else str(n)


def _log2_bins(hists: Iterable[list[tuple[int, int, int]]]) -> range:
    """The power-of-two bins (``k`` for ``[2**k, 2**(k+1))``) every histogram shares."""
    ks = [max(0, lo.bit_length() - 1) for h in hists for lo, _, n in h if n]
    low, high = (min(ks), max(ks)) if ks else (0, 0)
    pad = max(0, 6 - (high - low + 1))  # at least six bins, so one spike is readable
    return range(max(0, low - pad // 2), high + 1 + (pad - pad // 2))


def _token_charts(data: ReportData) -> str:
    """Per (format, split) charts, re-binned by the bucket's low edge into shared log2 bins."""
    ks, figures = _log2_bins(data.token_histograms.values()), []
    edges = [_tokens_label(2**k) for k in ks] + [_tokens_label(2 ** (ks[-1] + 1))]
    for (fmt, split), buckets in data.token_histograms.items():
        counts = dict.fromkeys(ks, 0)
        for lo, _, n in buckets:
            counts[max(0, lo.bit_length() - 1)] += n
        bars = [Bar(f"{2**k if k else 0:,}-{2 ** (k + 1) - 1:,} tokens", counts[k]) for k in ks]
        svg = column_chart(
            chart_id("tokens", fmt, split),
            f"Token length distribution: {fmt}, {split}",
            bars,
            edges,
            x_label="tokens per record (log scale)",
            y_label="records",
        )
        figures.append(_figure(f"{fmt} · {split}", svg, f"{sum(counts.values()):,} records"))
    if not figures:
        tokenizers = {str(f.get("tokenizer", "none")) for f in data.formats.values()}
        why = "tokens were not counted (quality.tokenizer: none)"
        if tokenizers - {"none"}:
            why = "no record was written"
        return _no_chart(f"No token length chart: {why}.")
    return f'<div class="grid grid-3">{"".join(figures)}</div>'


def _packing_charts(data: ReportData) -> str:
    """Per packed format and split: rows by how full they are (``formats.<f>.packing``)."""
    figures = []
    for fmt, stats in data.formats.items():
        for split, packing in (stats.get("packing") or {}).items():
            fill, seq_len = packing["fill"], packing["seq_len"]
            step = 100 // len(fill)
            bars = [
                Bar(f"{i * step}-{(i + 1) * step}% of {seq_len:,}", n) for i, n in enumerate(fill)
            ]
            svg = column_chart(
                chart_id("fill", fmt, split),
                f"Row fill: {fmt}, {split}",
                bars,
                [f"{i * step}%" for i in range(len(fill) + 1)],
                x_label=f"tokens per row / seq_len {seq_len:,}",
                y_label="rows",
            )
            efficiency = packing["packing_efficiency"]
            note = (
                f"{packing['rows']:,} rows, lower bound {packing['lower_bound']:,} "
                f"(no packing fewer than {packing.get('lower_bound_l2', 0):,}), "
                f"efficiency {efficiency:.2%}"
                if efficiency is not None
                else "no rows"
            )
            figures.append(_figure(f"{fmt} · {split}", svg, note))
    if not figures:
        return ""
    return f'<section><h2>Packing</h2><div class="grid grid-3">{"".join(figures)}</div></section>'


def _threshold_position(bins: list[tuple[float, float, int]], t: float) -> float:
    """Where ``t`` falls, in bar units (bin index plus the fraction into the bin)."""
    for i, (lo, hi, _) in enumerate(bins):
        if lo <= t <= hi and hi > lo:
            return i + (t - lo) / (hi - lo)
    return 0.0 if t < bins[0][0] else float(len(bins))


def _quality_chart(data: ReportData) -> str:
    bins = data.quality_histogram
    if not any(n for _, _, n in bins):
        return _no_chart(
            f"No quality chart: no document had a quality_score ({data.unscored:,} "
            "unscored; quality.missing_score: score computes one)."
        )
    bars = [Bar(f"{lo:g}-{hi:g}", n) for lo, hi, n in bins]
    edges = [f"{lo:g}" for lo, _, _ in bins] + [f"{bins[-1][1]:g}"]
    marker = None
    if data.quality_threshold is not None:
        t = data.quality_threshold
        marker = (_threshold_position(bins, t), f"min_quality_score {t:g}")
    svg = column_chart(
        chart_id("quality"),
        "Quality score distribution",
        bars,
        edges,
        x_label="quality_score",
        y_label="documents",
        width=540,
        height=300,
        marker=marker,
    )
    return _figure("Quality score", svg, f"{data.unscored:,} unscored")


def _drop_bars(data: ReportData) -> list[Bar]:
    """The pipeline's drops by reason; ``contaminated`` split by benchmark file when the
    files' counts add up to it (one bar per drop, never the same drops twice)."""
    reasons = _reasons(data.counts.get("dropped"))
    per_file = _reasons(data.counts.get("contaminated"))
    total = dict(reasons).get("contaminated", 0)
    bars = []
    for reason, n in reasons:
        if reason == "contaminated" and per_file and sum(c for _, c in per_file) == n == total:
            bars += [Bar(_benchmark_label(data, path), c) for path, c in per_file]
        else:
            bars.append(Bar(reason, n))
    return bars


def _benchmark_label(data: ReportData, path: str) -> str:
    """``contaminated: FILE (N items)``: the items matched, from the manifest."""
    found = (data.decontamination or {}).get(path)
    n = found["items"] if found else 0
    items = f" ({n:,} item{'' if n == 1 else 's'})" if found else ""
    return f"contaminated: {path.rsplit('/', 1)[-1]}{items}"


def _dropped_chart(data: ReportData, width: int = 540) -> str:
    bars = _drop_bars(data)
    for fmt, stats in data.formats.items():
        bars += [Bar(f"{fmt}: {r}", n, ALT_COLOR) for r, n in _reasons(stats.get("dropped"))]
    if not bars:
        return _no_chart("No drop chart: no document was dropped.")
    two = any(b.color == ALT_COLOR for b in bars) and any(b.color != ALT_COLOR for b in bars)
    svg = bar_chart(
        chart_id("dropped"),
        "Documents dropped by reason",
        bars,
        x_label="documents",
        y_label="reason",
        width=width,
        legend=[(BAR_COLOR, "pipeline (all formats)"), (ALT_COLOR, "one format")] if two else [],
    )
    note = f"{sum(b.value for b in bars if b.color != ALT_COLOR):,} before formatting"
    return _figure("Documents dropped by reason", svg, note)


def _mix_table(data: ReportData) -> str:
    """The mix: weight asked and share achieved per source."""
    if not data.mix:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(s['path']))}</td><td>{s['weight']:.4g}</td>"
        f"<td>{s['share']:.4g}</td><td>{s['tokens']:,}</td><td>{s['documents']:,}</td>"
        f"<td>{s['repeated']:,}</td><td>{s['downsampled']:,}</td></tr>"
        for s in data.mix["sources"]
    )
    head = (
        "<tr><th>source</th><th>weight</th><th>share</th><th>tokens</th><th>documents</th>"
        "<th>repeated</th><th>down-sampled</th></tr>"
    )
    return f"<section><h2>Mix</h2><table>{head}{rows}</table></section>"


def _cluster_bins(sizes: Mapping[str, int]) -> list[tuple[str, int]]:
    """Cluster sizes 1 to 8 as they are, larger ones in powers of two (9-16, 17-32, ...)."""
    bins: dict[str, int] = {}
    for size, clusters in sorted((int(k), int(v)) for k, v in sizes.items()):
        top = size if size <= 8 else 1 << (size - 1).bit_length()
        label = str(size) if size <= 8 else f"{top // 2 + 1}-{top}"
        bins[label] = bins.get(label, 0) + clusters
    return list(bins.items())


def _dedup_section(data: ReportData) -> str:
    """Clusters by size: how many documents each kept document stood for."""
    dedup = data.dedup
    if not dedup:
        return ""
    bars = [
        Bar(f"{label} document{'' if label == '1' else 's'}", n)
        for label, n in _cluster_bins(dedup["cluster_sizes"])
    ]
    svg = bar_chart(
        chart_id("clusters"),
        "Duplicate clusters by size",
        bars,
        x_label="clusters",
        y_label="cluster size",
        width=1100,
    )
    dropped = f"{dedup['exact_duplicates']:,} exact"
    if dedup["method"] == "near":
        dropped += f" and {dedup['near_duplicates']:,} near"
    note = (
        f"{dedup['documents']:,} documents in {dedup['clusters']:,} clusters; "
        f"{dropped} duplicates dropped ({dedup['method']}"
    )
    if dedup.get("threshold") is not None:
        note += (
            f", Jaccard >= {dedup['threshold']:g}: {dedup['permutations']} permutations, "
            f"{dedup['bands']} bands x {dedup['rows']} rows, "
            f"{dedup['shingle_size']}-word shingles, seed {dedup['seed']}"
        )
    figure = _figure("Cluster sizes", svg, note + ")")
    return f"<section><h2>Duplicates</h2>{figure}</section>"


def _sources_chart(data: ReportData) -> str:
    if not data.sources:
        return _no_chart("No source chart: no document was written.")
    folder = _common_folder([name for name, _ in data.sources])
    svg = bar_chart(
        chart_id("sources"),
        "Documents per source",
        [Bar(name.removeprefix(folder), n) for name, n in data.sources],
        x_label="documents",
        y_label="source",
        width=1100,
    )
    total = sum(n for _, n in data.sources)
    where = f" (names under {folder})" if folder else ""
    return _figure("Documents per source", svg, f"{total:,} documents{where}")


def _quality_and_drops(data: ReportData) -> str:
    """The quality and drop charts side by side; one left out, the other full width."""
    quality = _quality_chart(data)
    return _grid(quality, _dropped_chart(data, 540 if quality.startswith("<figure") else 1100))


def _grid(*parts: str) -> str:
    """Figures side by side, then the lines of the charts left out."""
    figures = [p for p in parts if p.startswith("<figure")]
    lines = "".join(p for p in parts if not p.startswith("<figure"))
    grid = f'<div class="grid grid-{len(figures)}">{"".join(figures)}</div>' if figures else ""
    return grid + lines


def render_report(data: ReportData) -> str:
    """The complete, self-contained HTML document for ``data``."""
    title, version = escape(data.title), escape(data.qudata_version)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{title}</h1><p class="muted">qudata {version}</p></header>'
        f"<section><h2>Summary</h2>{_summary(data)}</section>"
        f"<section><h2>Token length distribution</h2>{_token_charts(data)}</section>"
        f"<section><h2>Quality and drops</h2>{_quality_and_drops(data)}</section>"
        f"{_dedup_section(data)}"
        f"{_packing_charts(data)}"
        f"{_mix_table(data)}"
        f"<section><h2>Sources</h2>{_sources_chart(data)}</section>"
        f"<footer>Generated by qudata {version}.</footer></main></body></html>\n"
    )
