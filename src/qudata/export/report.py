"""A self-contained ``report.html`` for a packed dataset: summary tables and inline SVG charts.

No scripts, no network, no external CSS or fonts. Every string taken from the
data is escaped and the output is deterministic (no timestamps), so the same
data always renders to the same bytes.

Chart ids: ``chart-tokens-<format>-<split>``, ``chart-quality``,
``chart-dropped``, ``chart-sources``, for packed formats ``chart-fill-<format>-<split>``
and, when duplicates were looked for, ``chart-clusters`` (see :func:`chart_id`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from qudata.export.svg import ALT_COLOR, BAR_COLOR, Bar, bar_chart, column_chart

__all__ = ["ReportData", "chart_id", "render_report"]


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
        out.append(
            f"<tr><td>{escape(name)}</td><td>{int(stats.get('documents', 0)):,}</td>"
            f"<td>{int(stats.get('records', 0)):,}</td><td>{shown}</td>"
            f"<td>{fmt_dropped:,}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


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
        return '<p class="muted">No token counts.</p>'
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
    bars = [Bar(f"{lo:g}-{hi:g}", n) for lo, hi, n in bins]
    edges = [f"{lo:g}" for lo, _, _ in bins] + [f"{bins[-1][1]:g}"] if bins else []
    marker = None
    if bins and data.quality_threshold is not None:
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


def _dropped_chart(data: ReportData) -> str:
    bars = [Bar(r, n) for r, n in _reasons(data.counts.get("dropped"))]
    found = data.decontamination or {}
    for path, n in _reasons(data.counts.get("contaminated")):  # per benchmark file
        items = f" ({found[path]['items']:,} items)" if path in found else ""
        bars.append(Bar(f"contaminated: {path.rsplit('/', 1)[-1]}{items}", n))
    for fmt, stats in data.formats.items():
        bars += [Bar(f"{fmt}: {r}", n, ALT_COLOR) for r, n in _reasons(stats.get("dropped"))]
    svg = bar_chart(
        chart_id("dropped"),
        "Documents dropped by reason",
        bars,
        x_label="documents",
        y_label="reason",
        legend=[(BAR_COLOR, "pipeline (all formats)"), (ALT_COLOR, "one format")],
    )
    return _figure("Documents dropped by reason", svg)


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
    bars = [Bar(f"{label} documents", n) for label, n in _cluster_bins(dedup["cluster_sizes"])]
    svg = bar_chart(
        chart_id("clusters"),
        "Duplicate clusters by size",
        bars,
        x_label="clusters",
        y_label="documents per cluster",
        width=1100,
    )
    note = (
        f"{dedup['documents']:,} documents in {dedup['clusters']:,} clusters; "
        f"{dedup['exact_duplicates']:,} exact and {dedup['near_duplicates']:,} near "
        f"duplicates dropped ({dedup['method']}"
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
    svg = bar_chart(
        chart_id("sources"),
        "Documents per source",
        [Bar(name, n) for name, n in data.sources],
        x_label="documents",
        y_label="source",
        width=1100,
    )
    total = sum(n for _, n in data.sources)
    return _figure("Documents per source", svg, f"{total:,} documents")


_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9dee5;--bg:#f5f6f8;--card:#fff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 32px}
h1{font-size:22px;margin:0 0 2px}
h2{font-size:16px;margin:26px 0 10px}
.muted,footer{color:var(--muted)}
footer{font-size:12px;margin-top:24px}
.cards{display:flex;gap:12px;margin:16px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 18px;
min-width:150px}
.card span{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}
.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;background:var(--card);border:1px solid var(--line);
font-variant-numeric:tabular-nums}
th,td{padding:6px 16px;border-bottom:1px solid var(--line);text-align:right}
th{background:#eef1f5;font-weight:600}
th:first-child,td:first-child{text-align:left}
.grid{display:grid;gap:14px}
.grid-3{grid-template-columns:repeat(3,minmax(0,1fr))}
.grid-2{grid-template-columns:repeat(2,minmax(0,1fr));align-items:start}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:10px 12px}
figcaption{font-weight:600;margin-bottom:4px}
figcaption small{color:var(--muted);font-weight:400;margin-left:6px}
svg.chart{display:block;width:100%;height:auto}
.chart text{fill:#3e4c59;font-size:11px}
.chart .value{font-size:9.5px;fill:#1f2933}
.chart .axis-label{fill:var(--muted)}
.chart .empty{fill:var(--muted);font-style:italic}
.chart .gridline{stroke:#e6e9ee}
.chart .axis{stroke:#9aa5b1}
.chart .marker{stroke:#c62828;stroke-width:2;stroke-dasharray:5 3}
.chart .marker-label{fill:#c62828;font-weight:600}
@media (max-width:900px){.grid-3{grid-template-columns:repeat(2,minmax(0,1fr))}
.grid-2{grid-template-columns:1fr}}
"""


def render_report(data: ReportData) -> str:
    """The complete, self-contained HTML document for ``data``."""
    title, version = escape(data.title), escape(data.qudata_version)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body><main>"
        f'<header><h1>{title}</h1><p class="muted">qudata {version}</p></header>'
        f"<section><h2>Summary</h2>{_summary(data)}</section>"
        f"<section><h2>Token length distribution</h2>{_token_charts(data)}</section>"
        '<section><h2>Quality and drops</h2><div class="grid grid-2">'
        f"{_quality_chart(data)}{_dropped_chart(data)}</div></section>"
        f"{_dedup_section(data)}"
        f"{_packing_charts(data)}"
        f"{_mix_table(data)}"
        f"<section><h2>Sources</h2>{_sources_chart(data)}</section>"
        f"<footer>Generated by qudata {version}.</footer></main></body></html>\n"
    )
