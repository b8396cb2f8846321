"""The report's style sheet (inline in ``report.html``: no external CSS or fonts).

Chart text is 11px (values 9.5px): :data:`qudata.export.svg.CHAR_W` sizes label
columns for it, and the report's browser test measures every label against its box.
"""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
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
.grid-1{grid-template-columns:minmax(0,1fr)}
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
.no-chart{color:var(--muted);font-style:italic;margin:6px 0}
@media (max-width:900px){.grid-3{grid-template-columns:repeat(2,minmax(0,1fr))}
.grid-2{grid-template-columns:1fr}}
"""
