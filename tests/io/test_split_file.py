"""io.split_file: one atomically written file per split."""

from __future__ import annotations

from pathlib import Path

import pytest

from qudata.io.split_file import SplitFileWriter
from qudata.pack.base import Encoder


class Lines(Encoder):
    def encode(self, record: object) -> bytes:
        return str(record).encode("utf-8") + b"\n"

    def finish(self) -> bytes:
        return b"END\n"


def test_one_file_with_every_document_and_its_stats(tmp_path: Path) -> None:
    writer = SplitFileWriter(
        tmp_path / "fmt", "test", ".txt", relative_to=tmp_path, new_encoder=Lines
    )
    writer.write_document(["a", "b"], tokens=2)
    writer.write_document(["ü"], tokens=1)
    assert not (tmp_path / "fmt" / "test.txt").exists()  # a partial file is never final
    [stats] = writer.close()
    data = (tmp_path / "fmt" / "test.txt").read_bytes()
    assert data == "a\nb\nü\nEND\n".encode()
    assert (stats.path, stats.documents, stats.records, stats.tokens, stats.bytes) == (
        "fmt/test.txt",
        2,
        3,
        3,
        len(data),
    )
    assert [p.name for p in (tmp_path / "fmt").iterdir()] == ["test.txt"]


def test_a_record_the_encoder_refuses_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    writer = SplitFileWriter(tmp_path, "train", ".txt", relative_to=tmp_path, new_encoder=Lines)
    writer.write_document(["kept"])
    with pytest.raises(UnicodeEncodeError):
        writer.write_document(["fine", "lone \ud800 surrogate"])
    writer.close()
    assert (tmp_path / "train.txt").read_bytes() == b"kept\nEND\n"


def test_no_document_no_file_and_abort_leaves_nothing(tmp_path: Path) -> None:
    assert (
        SplitFileWriter(tmp_path, "a", ".txt", relative_to=tmp_path, new_encoder=Lines).close()
        == []
    )
    writer = SplitFileWriter(tmp_path, "b", ".txt", relative_to=tmp_path, new_encoder=Lines)
    writer.write_document(["x"])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
