"""Write ``docs/report.png``: the report of a real run, as headless Chromium shows it.

The run is the one the report's browser test checks (``tests/export/sample_run.py``:
the bundled sample plus contaminated, duplicated and deep-path documents), rendered
and measured the same way (``tests/export/browser.py``); the picture is refused if a
label is cut or a chart is empty. Needs Chromium (``apt-get install chromium``).

    python docs/make_report_png.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.export import sample_run  # noqa: E402
from tests.export.browser import measure, screenshot  # noqa: E402

TARGET = Path(__file__).with_name("report.png")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="qudata-report-") as folder:
        out = sample_run.pack(Path(folder))
        page = out / "report.html"
        seen = measure(page.read_text(encoding="utf-8"))
        problems = seen["cut"] + seen["overflow"] + seen["overlap"]
        if problems:
            sys.exit(f"not written: the report has layout problems: {problems}")
        screenshot(page, TARGET, "1200,1390")  # the top: summary, tokens, drops
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
