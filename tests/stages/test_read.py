"""One read loop (:class:`qudata.stages.read.PartitionReader`) for the scan, the write
and ``stats``' tally: positions, counts, the error that stops a file, the bytes read."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.config import load_config
from qudata.errors import InputError, IntegrityError
from qudata.io.sources import expand_inputs
from qudata.normalize.document import DocumentNormalizer
from qudata.plan.partitions import plan_partitions
from qudata.stages.read import PartitionReader, Unreadable
from qudata.stats import collect_stats

FAST = {"quality": {"tokenizer": "none"}}


def _lines(bad: set[int], count: int = 30, words: int = 1) -> bytes:
    rows = [
        b'{"id": "x", "text": '
        if n in bad
        else orjson.dumps({"id": f"d{n}", "text": f"doc {n} " + "word " * (words - 1)})
        for n in range(count)
    ]
    return b"\n".join(rows) + b"\n"


def _reader(path: Path, **options: object) -> PartitionReader:
    cfg = load_config({**FAST, "input": {"on_error": options.pop("on_error", "skip")}})
    (partition,) = plan_partitions(expand_inputs([path]), None)
    normalize = DocumentNormalizer.from_input(cfg.input)
    return PartitionReader(cfg, partition, normalize, **options)  # type: ignore[arg-type]


def test_positions_count_documents_and_read_counts_every_record(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines({3, 7, 8}))
    reader = _reader(path, hash_bytes=True)
    items = list(reader)
    docs = [(n, item.id) for n, item in items if not isinstance(item, Unreadable)]
    assert docs == [(n, f"d{m}") for n, m in enumerate(sorted(set(range(30)) - {3, 7, 8}))]
    bad = [item.line for _, item in items if isinstance(item, Unreadable)]
    assert bad == [4, 8, 9]
    assert (reader.read, reader.documents, reader.error) == (30, 27, None)
    (read,) = reader.files
    assert (read.records, read.error) == (30, None)
    assert read.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_error_that_stops_a_file_is_one_record_or_raised(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(_lines(set(), 3000), mtime=0)[:6000])
    reader = _reader(path)
    *_, (position, last) = list(reader)
    assert isinstance(last, Unreadable) and last.stopped is reader.error
    assert reader.error is not None and last.reason == reader.error.reason
    assert position == reader.documents and reader.read == reader.documents + 1
    assert reader.files[0].error is reader.error and reader.files[0].records == reader.read
    with pytest.raises(InputError):
        list(_reader(path, fail=True))


def test_other_bytes_than_the_scan_read_fail(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines(set()))
    assert len(list(_reader(path, expect=[hashlib.sha256(path.read_bytes()).hexdigest()]))) == 30
    with pytest.raises(IntegrityError, match="changed while the run read it"):
        list(_reader(path, expect=["0" * 64]))


@pytest.mark.parametrize(
    ("lines", "bad", "words", "size"), [(3000, 2900, 1, 16384), (6000, 4500, 100, 2 << 20)]
)
def test_a_bad_line_in_a_later_piece_names_its_line_in_the_file(
    tmp_path: Path, lines: int, bad: int, words: int, size: int
) -> None:
    """Under on_error fail, pack and stats (one driver) name the line in the file, not
    in its piece, and do not take the stopped piece (its bytes read in part: pieces of
    more than 1 MiB) for a changed file."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines({bad}, lines, words))
    config = {**FAST, "input": {"on_error": "fail"}, "engine": {"partition_size": size}}
    (_, *rest) = plan_partitions(expand_inputs([path]), size)
    assert len(rest) >= 1  # the bad line is pieces away from the start
    with pytest.raises(InputError) as stats_error:
        collect_stats(path, config=config)
    with pytest.raises(InputError) as pack_error:
        qudata.pack_dataset(path, tmp_path / "out", config=config)
    for error in (stats_error.value, pack_error.value):
        assert (error.line, str(error).split(": ")[0]) == (bad + 1, f"{path}:{bad + 1}")
    (tmp_path / "config.yaml").write_bytes(orjson.dumps(config))
    for command in (["pack", "-o", str(tmp_path / "cli")], ["stats"]):
        args = [*command, str(path), "--config", str(tmp_path / "config.yaml")]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert result.output.strip().startswith(f"Error: {path}:{bad + 1}: invalid JSON"), (
            result.output
        )


def test_stats_agree_with_pack_on_every_partitioning(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(_lines({5, 700, 1999}, 3000) + _lines(set(), 40))  # ids repeat: duplicates
    config = {**FAST, "dedup": {"method": "exact"}}
    report = qudata.pack_dataset(path, tmp_path / "out", config=config, formats=["jsonl"])
    for size in (None, 16384):
        stats = collect_stats(path, config={**config, "engine": {"partition_size": size}})
        assert (stats.read, stats.invalid) == (report.read, report.dropped["invalid"])
        assert sum(stats.duplicates.values()) == sum(
            n for reason, n in report.dropped.items() if reason.startswith("duplicate")
        )
        assert stats.documents[0.0] == report.accepted


def test_the_pieces_of_a_split_local_file_are_tied_by_xxh3_and_the_file_by_sha256(
    tmp_path: Path,
) -> None:
    """A piece's digest as read (both passes) is its range's xxh3-128, the same the first
    piece's whole-file read gives it; the whole file is sha256 (the manifest's)."""
    import xxhash

    from qudata.stages.content import file_sums, spans_of

    path = tmp_path / "in.jsonl"
    data = _lines(set(), count=400, words=40)
    path.write_bytes(data)
    cfg = load_config(FAST)
    partitions = plan_partitions(expand_inputs([path]), 16 << 10)
    assert len(partitions) > 2
    digests = []
    for partition in partitions:
        reader = PartitionReader(
            cfg, partition, DocumentNormalizer.from_input(cfg.input), hash_bytes=True
        )
        list(reader)
        assert partition.span is not None
        start, end = partition.span
        assert reader.files[0].digest == xxhash.xxh3_128_hexdigest(data[start:end])
        digests.append(reader.files[0].digest)
    whole, pieces, size = file_sums(str(path), spans_of(partitions, partitions[0]))
    assert (whole, pieces, size) == (hashlib.sha256(data).hexdigest(), digests, len(data))
