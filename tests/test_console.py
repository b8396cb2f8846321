"""What ``qudata pack`` prints under its table: --resume's reuse, every warning counter,
what a packed format wrote, and no "mostly rejected" note for a mix's down-sampling."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import orjson
from rich.console import Console
from tests.export import sample_run
from tests.stages.test_resume import CONFIG, _input, _killed_run

import qudata
from qudata.account import FormatStats, RunReport
from qudata.console import print_stats, print_summary
from qudata.stats import collect_stats

WORDS = ["river", "stone", "cloud", "field", "light", "metal", "paper", "water"]


def printed(report: RunReport) -> str:
    out = io.StringIO()
    print_summary(report, Console(file=out, width=200))
    return out.getvalue()


def test_every_warning_counter_is_printed_top_first() -> None:
    report = RunReport(qudata_version="0", config={}, read=3, accepted=3)
    report.warnings = Counter({f"kind_{n}": n for n in range(1, 8)})
    report.warnings["message_key_dropped"] = 40
    report.formats["chatml"] = FormatStats(documents=3, records=3)
    report.formats["chatml"].warnings = Counter({"system_message_moved": 2})
    text = printed(report)
    assert (
        "warnings: 68 (message_key_dropped 40, kind_7 7, kind_6 6, kind_5 5, kind_4 4 "
        "and 3 more; see manifest.json)" in text
    )
    assert "warnings in chatml: system_message_moved 2" in text
    assert "resume:" not in text  # not asked for


def test_packed_prints_rows_and_sequences(tmp_path: Path) -> None:
    report = qudata.pack_dataset(
        sample_run.write_input(tmp_path / "again.jsonl"),
        tmp_path / "again",
        config={"quality": {"tokenizer": "cl100k_base"}, "pack": {"packed": {"seq_len": 2048}}},
        formats=["packed"],
    )
    text = printed(report)
    packing = orjson.loads((tmp_path / "again" / "manifest.json").read_bytes())["formats"][
        "packed"
    ]["packing"]["train"]
    records = report.formats["packed"].records
    assert f"{packing['rows']:,} rows ({records:,} sequences)" in text
    assert (
        f"packed train: {packing['rows']:,} rows of up to 2,048 tokens hold "
        f"{packing['tokens']:,} tokens ({packing['packing_efficiency']:.1%} full)" in text
    )
    assert packing["rows"] < records  # sequences share rows


def test_resume_says_what_it_reused_and_recomputed(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    _killed_run(tmp_path, source, out)
    report = qudata.pack_dataset(source, out, config=CONFIG, resume=True)
    resumed = report.resumed
    assert resumed is not None and resumed["taken"] == 1 and resumed["write"] >= 3
    parts = resumed["partitions"]
    assert parts > resumed["write"]  # the killed run stopped before the others
    line = (
        f"resume: reused {resumed['scan']:,} of {parts:,} partitions' reading and "
        f"{resumed['write']:,} of {parts:,} partitions' writing (their files checked by "
        f"their digests); computed again: {parts - resumed['scan']:,} readings, "
        f"{parts - resumed['write']:,} writings, the dedup step and the commit"
    )
    assert line in printed(report)
    again = qudata.pack_dataset(source, tmp_path / "fresh", config=CONFIG, resume=True)
    assert "resume: no killed run of this job to take up" in printed(again)


def _source(folder: Path, name: str, docs: int, words: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    rows = [
        {"id": f"{name}-{n}", "text": " ".join(WORDS[(n + k) % 8] for k in range(words)) + f" {n}"}
        for n in range(docs)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_a_mix_downsample_is_not_a_high_rejection(tmp_path: Path) -> None:
    small = _source(tmp_path / "a", "small", 40, 12)
    large = _source(tmp_path / "b", "large", 400, 40)
    config = {"mix": {"sources": [{"path": str(small), "weight": 0.5},
                                  {"path": str(large), "weight": 0.5}]}}  # fmt: skip
    report = qudata.pack_dataset([], tmp_path / "out", config=config, formats=["jsonl"])
    assert report.dropped["mix_downsampled"] > 200  # most of the large source, on purpose
    assert not any("rejected" in note for note in report.notes)


def test_dry_run_says_what_its_tokens_count(tmp_path: Path) -> None:
    stats = collect_stats([sample_run.SAMPLE], config={"quality": {"tokenizer": "none"}})
    out = io.StringIO()
    print_stats(stats, Console(file=out, width=200))
    assert "tokens: of each kept document's text, as pack counts -f jsonl" in out.getvalue()
