"""A report as a user sees it: rendered by headless Chromium, screenshot and measured.

:func:`measure` loads a copy of the page with a small script appended (the report
itself has none) that measures, after layout, every chart and every text: the
bounding box of each SVG text against its chart's box (a label that sticks out of it
is cut off on screen), elements whose text overflows their box (table cells, captions,
cards), the bars each chart draws. Chromium prints the DOM (``--dump-dom``) with the
results written into it as JSON. No network: the page is a local file with no
external resource, and the flags turn off Chromium's own background traffic.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["chromium", "measure", "screenshot"]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
]

_MEASURE = r"""
<script>
(() => {
  const inside = (r, box) => r.left >= box.left - 0.5 && r.right <= box.right + 0.5 &&
    r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
  const out = {charts: [], cut: [], overflow: [], overlap: [], notes: [],
               page: {width: document.documentElement.scrollWidth, view: innerWidth}};
  for (const svg of document.querySelectorAll("svg.chart")) {
    const box = svg.getBoundingClientRect();
    const bars = [...svg.querySelectorAll("rect.bar")];
    out.charts.push({
      id: svg.id,
      scale: box.width / svg.viewBox.baseVal.width,
      title: (svg.querySelector("title") || {}).textContent || "",
      width: box.width, height: box.height,
      tips: bars.map(b => (b.querySelector("title") || {}).textContent || ""),
      fills: bars.map(b => b.getAttribute("fill")),
      visible: bars.filter(b => b.getBoundingClientRect().width > 0.5 &&
                                b.getBoundingClientRect().height > 0.5).length,
    });
    const texts = [...svg.querySelectorAll("text")];
    const rects = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      const label = t.textContent;
      if (!inside(rects[i], box) || label.endsWith("…") || label.endsWith("..."))
        out.cut.push({chart: svg.id, text: label, cls: t.getAttribute("class")});
      for (let j = 0; j < i; j++) {
        const a = rects[i], b = rects[j];
        const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (x > 1 && y > 1 && label && texts[j].textContent)
          out.overlap.push({chart: svg.id, a: label, b: texts[j].textContent});
      }
    });
  }
  for (const el of document.querySelectorAll("td, th, figcaption, .card, h1, h2, p, li")) {
    if (el.scrollWidth > el.clientWidth + 1)
      out.overflow.push({tag: el.tagName, text: el.textContent.slice(0, 80)});
  }
  for (const el of document.querySelectorAll(".no-chart"))
    out.notes.push(el.textContent);
  const pre = document.createElement("pre");
  pre.id = "qudata-measure";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def chromium() -> str | None:
    """The Chromium binary, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    assert binary is not None, "chromium is not installed"
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


def screenshot(html_path: Path, png_path: Path, size: str = "1200,2000") -> None:
    """Render ``html_path`` into ``png_path`` (a ``size`` window: ``WIDTH,HEIGHT``)."""
    with tempfile.TemporaryDirectory(prefix="qudata-chromium-") as profile:
        _run(
            [f"--window-size={size}", f"--screenshot={png_path}", html_path.resolve().as_uri()],
            Path(profile),
        )


def measure(html: str, width: int = 1200) -> dict[str, Any]:
    """The page's charts, cut labels, overflowing elements and overlapping texts, as
    laid out by Chromium in a window ``width`` pixels wide."""
    assert "</body>" in html
    with tempfile.TemporaryDirectory(prefix="qudata-chromium-") as folder:
        page = Path(folder) / "measure.html"
        page.write_text(html.replace("</body>", _MEASURE + "</body>", 1), encoding="utf-8")
        done = _run(
            [
                f"--window-size={width},2000",
                "--virtual-time-budget=5000",
                "--dump-dom",
                page.as_uri(),
            ],
            Path(folder) / "profile",
        )
    found = re.search(r'<pre id="qudata-measure">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:] + done.stderr[-2000:]
    text = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    result: dict[str, Any] = json.loads(text.replace("&amp;", "&"))
    return result
