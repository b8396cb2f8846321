"""Publishing a packed dataset: card, report and manifest into the staging folder, the
manifest last, then the folder into place (see :mod:`qudata.io.output_dir`), or
uploaded to object storage (:mod:`qudata.io.remote_output`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from qudata.account import Observations, RunReport
from qudata.errors import IntegrityError
from qudata.export.card import card_formats, render_card, render_folder_card
from qudata.export.report import ReportData, render_report
from qudata.export.verify import LocalFileSystem, manifest_of, verify_dataset
from qudata.io.output_dir import publish
from qudata.io.remote_output import RemoteOutput
from qudata.io.writers import AtomicFile
from qudata.pause import pause_at

__all__ = ["publish_dataset"]


def publish_dataset(
    staging: Path,
    output_dir: Path,
    report: RunReport,
    *,
    seen: Observations,
    token_buckets: dict[tuple[str, str], list[tuple[int, int, int]]],
    quality_threshold: float | None,
    command: str | None,
    run: dict[str, Any] | None = None,
    mark: Callable[[], None] | None = None,
    remote: RemoteOutput | None = None,
    overwrite: bool = False,
) -> None:
    """Card and report, then the manifest last, the publish gate
    (:mod:`qudata.export.verify`), then the folder into place. ``run``:
    what ran it (engine, workers), the only part of the manifest that may differ
    between executors; the card never shows it. ``mark`` is called once the dataset
    is in place, before any signal held meanwhile is delivered. ``remote``: upload
    the verified folder there instead, ``manifest.json`` last (``overwrite``: it may
    replace a qudata dataset)."""
    manifest = report.as_manifest()
    features = {
        name: stats.features for name, stats in report.formats.items() if stats.features is not None
    }
    card = render_card(manifest, command=command, features=features, licenses=seen.licenses)
    _write_text(staging / "README.md", card)
    for name in card_formats(manifest, "folder"):
        _write_text(staging / name / "README.md", render_folder_card(manifest, name))
    data = _report_data(manifest, seen, token_buckets, quality_threshold)
    _write_text(staging / "report.html", render_report(data))
    if run is not None:
        manifest["run"] = run
    text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    _write_text(staging / "manifest.json", text.decode("utf-8"))
    fs = LocalFileSystem()
    written = manifest_of(fs, str(staging))
    if written != orjson.loads(text):
        raise IntegrityError("manifest.json: not the manifest the run wrote; nothing was published")
    pause_at("gate")
    verify_dataset(fs, str(staging), written)  # the publish gate
    pause_at("publish")
    if remote is not None:
        remote.publish(staging, overwrite=overwrite, mark=mark)
    else:
        publish(staging, output_dir, mark=mark)
    pause_at("published")


def _report_data(
    manifest: dict[str, Any],
    seen: Observations,
    token_buckets: dict[tuple[str, str], list[tuple[int, int, int]]],
    quality_threshold: float | None,
) -> ReportData:
    ranked = seen.sources.most_common()
    sources = ranked[:20]
    if len(ranked) > 20:
        sources.append(("other", sum(n for _, n in ranked[20:])))
    return ReportData(
        title="qudata dataset report",
        qudata_version=manifest["qudata_version"],
        counts=manifest["counts"],
        formats=manifest["formats"],
        token_histograms=token_buckets,
        quality_histogram=[(i / 20, (i + 1) / 20, n) for i, n in enumerate(seen.quality_bins)],
        quality_threshold=quality_threshold,
        mix=manifest.get("mix"),
        dedup=manifest.get("dedup"),
        decontamination=manifest.get("decontamination"),
        unscored=seen.unscored,
        sources=sources,
    )


def _write_text(path: Path, text: str) -> None:
    with AtomicFile(path) as out:
        out.write(text.encode("utf-8"))
