"""io.npy: a 1-D .npy streamed in bounded memory, the same bytes as ``np.save``."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.io.npy import NpyWriter, npy_header

INT32 = st.integers(-(2**31), 2**31 - 1)
DOCUMENTS = st.lists(st.lists(st.lists(INT32, max_size=40), min_size=1, max_size=3), max_size=30)


@pytest.mark.parametrize("length", [0, 1, 9, 10**5, 2**40])
@pytest.mark.parametrize("dtype", ["<i4", "<u2", "<i8"])
def test_header_is_the_one_np_save_writes(length: int, dtype: str, tmp_path: Path) -> None:
    header = npy_header(np.dtype(dtype), length)
    assert len(header) % 64 == 0
    if length <= 10**5:  # np.save needs the array itself
        np.save(tmp_path / "a.npy", np.zeros(length, dtype=dtype))
        assert (tmp_path / "a.npy").read_bytes()[: len(header)] == header
    stream = io.BytesIO(header)
    assert np.lib.format.read_magic(stream) == (1, 0)
    assert np.lib.format.read_array_header_1_0(stream) == ((length,), False, np.dtype(dtype))
    assert stream.tell() == len(header)


@settings(max_examples=40, deadline=None)
@given(DOCUMENTS)
def test_written_file_is_np_save_of_all_ids(documents: list[list[list[int]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        writer = NpyWriter(root / "fmt", "train", relative_to=root)
        for records in documents:
            writer.write_document(records, tokens=sum(map(len, records)))
        files = writer.close()
        ids = [i for records in documents for ids in records for i in ids]
        if not documents:
            assert files == [] and not (root / "fmt").exists()
            return
        np.save(root / "same.npy", np.asarray(ids, dtype="<i4"))
        data = (root / "fmt" / "train.npy").read_bytes()
        assert data == (root / "same.npy").read_bytes()
        [stats] = files
        assert (stats.path, stats.split, stats.bytes) == ("fmt/train.npy", "train", len(data))
        assert (stats.documents, stats.records, stats.tokens) == (
            len(documents),
            sum(map(len, documents)),
            len(ids),
        )
        assert sorted(p.name for p in (root / "fmt").iterdir()) == ["train.npy"]  # no temp


def test_an_id_out_of_range_raises_before_the_document_is_written(tmp_path: Path) -> None:
    writer = NpyWriter(tmp_path, "train", relative_to=tmp_path)
    writer.write_document([[1, 2]], tokens=2)
    with pytest.raises(OverflowError):
        writer.write_document([[3], [2**31]], tokens=2)
    writer.close()
    assert np.load(tmp_path / "train.npy").tolist() == [1, 2]


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = NpyWriter(tmp_path, "train", relative_to=tmp_path)
    writer.write_document([[1, 2, 3]], tokens=3)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_ids_go_to_disk_as_they_come_not_to_memory(tmp_path: Path) -> None:
    writer = NpyWriter(tmp_path, "train", relative_to=tmp_path)
    for start in range(0, 200_000, 1000):
        writer.write_document([list(range(start, start + 1000))], tokens=1000)
    [spill] = [p for p in tmp_path.iterdir() if p.name.startswith(".train.npy")]
    assert spill.stat().st_size >= 4 * 200_000 - 64 * 1024  # at most a write buffer held
    writer.close()
    assert np.load(tmp_path / "train.npy").tolist() == list(range(200_000))
