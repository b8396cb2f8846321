"""Atomic, hashing writers and the compressing streams they use."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import zstandard

from qudata.io.writers import AtomicFile


def test_atomic_file_writes_and_reports_hash_and_size(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    with AtomicFile(path) as out:
        out.write(b'{"text": "hi"}\n')
        out.write("é👋\n".encode())
    data = path.read_bytes()
    assert data == b'{"text": "hi"}\n' + "é👋\n".encode()
    assert out.bytes_written == len(data)
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]


def test_atomic_file_is_invisible_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with AtomicFile(path) as out:
        out.write(b"partial")
        assert not path.exists()


def test_atomic_file_error_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), AtomicFile(path) as out:
        out.write(b"partial")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_error_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    with pytest.raises(RuntimeError), AtomicFile(path) as out:
        out.write(b"new")
        raise RuntimeError("crash")
    assert path.read_bytes() == b"old\n"
    assert list(tmp_path.iterdir()) == [path]


def test_atomic_file_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_bytes(b"old contents that are longer\n")
    with AtomicFile(path) as out:
        out.write(b"new\n")
    assert path.read_bytes() == b"new\n"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_output_roundtrips_and_hash_is_of_disk_bytes(tmp_path: Path, codec: str) -> None:
    payload = b"".join(b'{"n": %d}\n' % i for i in range(200))
    path = tmp_path / "out.bin"
    with AtomicFile(path, codec=codec) as out:
        out.write(payload)
    disk = path.read_bytes()
    assert disk != payload
    assert out.bytes_written == len(disk)
    assert out.sha256 == hashlib.sha256(disk).hexdigest()
    if codec == "gzip":
        assert gzip.decompress(disk) == payload
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(disk) == payload


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_output_is_reproducible(tmp_path: Path, codec: str) -> None:
    """Same bytes in, same bytes on disk: gzip carries no timestamp or file name."""
    digests = []
    for name in ("a.out", "b.out"):
        with AtomicFile(tmp_path / name, codec=codec) as out:
            out.write(b"same payload\n" * 50)
        digests.append(out.sha256)
    assert digests[0] == digests[1]
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "b.out").read_bytes()
