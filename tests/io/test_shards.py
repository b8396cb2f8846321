"""ShardedWriter: names, totals, rotation by records and bytes, codecs, abort."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qudata.io.shards import ShardedWriter
from qudata.pack.base import Encoder

NAME = re.compile(r"^train-(\d{5})-of-(\d{5})\.jsonl(\.gz|\.zst)?$")


class Tail(Encoder):
    """JSON Lines closed by a marker, to see that every shard gets its own encoder."""

    def finish(self) -> bytes:
        return b"#end\n"


def writer(tmp_path: Path, **options: Any) -> ShardedWriter:
    options.setdefault("new_encoder", Encoder)
    return ShardedWriter(tmp_path / "jsonl", "train", ".jsonl", relative_to=tmp_path, **options)


def read(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def test_rotation_by_records_names_every_shard_with_the_total(tmp_path: Path) -> None:
    w = writer(tmp_path, max_records=3)
    for i in range(10):
        w.write_document([{"i": i}], tokens=2)
    files = w.close()
    assert [f.path for f in files] == [f"jsonl/train-{i:05d}-of-00004.jsonl" for i in range(4)]
    assert [f.records for f in files] == [3, 3, 3, 1]
    assert [f.tokens for f in files] == [6, 6, 6, 2]
    lines = [orjson.loads(x) for f in files for x in (tmp_path / f.path).read_bytes().splitlines()]
    assert lines == [{"i": i} for i in range(10)]
    assert sorted(p.name for p in (tmp_path / "jsonl").iterdir()) == [
        Path(f.path).name for f in files
    ]


def test_a_document_is_never_split_across_shards(tmp_path: Path) -> None:
    w = writer(tmp_path, max_records=3)
    w.write_document([{"d": 0, "r": r} for r in range(2)])
    w.write_document([{"d": 1, "r": r} for r in range(5)])  # over the limit: stays whole
    w.write_document([{"d": 2, "r": 0}])
    files = w.close()
    per_file = [
        {orjson.loads(x)["d"] for x in (tmp_path / f.path).read_bytes().splitlines()} for f in files
    ]
    assert per_file == [{0, 1}, {2}]
    assert [f.documents for f in files] == [2, 1]
    assert [f.records for f in files] == [7, 1]


def test_rotation_by_uncompressed_bytes(tmp_path: Path) -> None:
    w = writer(tmp_path, max_bytes=1000, codec="gzip")
    record = {"text": "x" * 90}  # 102 bytes a line
    for _ in range(50):
        w.write_document([record])
    files = w.close()
    sizes = [len(read(tmp_path / f.path)) for f in files]
    assert len(files) == 5
    assert all(1000 <= s <= 1000 + 102 for s in sizes[:-1]), sizes
    assert sum(sizes) == 50 * 102


CODECS = [("gzip", ".gz", b"\x1f\x8b"), ("zstd", ".zst", b"\x28\xb5\x2f\xfd"), ("none", "", b'{"')]


@pytest.mark.parametrize(("codec", "ext", "magic"), CODECS)
def test_codec_extension_magic_and_stats(
    codec: str, ext: str, magic: bytes, tmp_path: Path
) -> None:
    w = writer(tmp_path, codec=codec, max_records=2, new_encoder=Tail)
    for i in range(3):
        w.write_document([{"i": i}])
    files = w.close()
    assert [f.path for f in files] == [f"jsonl/train-0000{i}-of-00002.jsonl{ext}" for i in (0, 1)]
    for file in files:
        path = tmp_path / file.path
        data = path.read_bytes()
        assert data.startswith(magic)
        assert file.bytes == len(data)
        assert file.sha256 == hashlib.sha256(data).hexdigest()
        assert read(path).endswith(b"#end\n")  # each shard closed by its own encoder
    assert read(tmp_path / files[0].path) == b'{"i":0}\n{"i":1}\n#end\n'


def test_shards_have_hidden_names_until_close(tmp_path: Path) -> None:
    w = writer(tmp_path, max_records=1)
    for i in range(3):
        w.write_document([{"i": i}])
        names = [p.name for p in (tmp_path / "jsonl").iterdir()]
        assert names and all(n.startswith(".") for n in names), names
        assert not any(NAME.match(n) for n in names)
    w.close()
    assert all(NAME.match(p.name) for p in (tmp_path / "jsonl").iterdir())


def test_abort_removes_every_shard(tmp_path: Path) -> None:
    w = writer(tmp_path, max_records=2, codec="zstd")
    for i in range(5):
        w.write_document([{"i": i}])
    w.abort()
    assert list((tmp_path / "jsonl").iterdir()) == []


def test_close_without_documents_writes_nothing(tmp_path: Path) -> None:
    w = writer(tmp_path)
    assert w.close() == []
    assert not (tmp_path / "jsonl").exists() or list((tmp_path / "jsonl").iterdir()) == []


def test_a_refused_record_leaves_the_shard_untouched(tmp_path: Path) -> None:
    w = writer(tmp_path, max_records=1)
    w.write_document([{"i": 0}])
    with pytest.raises(TypeError):
        w.write_document([{"i": 1}, {"bad": "\ud800"}])  # lone surrogate: orjson refuses
    w.write_document([{"i": 2}])
    files = w.close()
    lines = [orjson.loads(x) for f in files for x in (tmp_path / f.path).read_bytes().splitlines()]
    assert lines == [{"i": 0}, {"i": 2}]
    assert [f.path for f in files] == [f"jsonl/train-0000{i}-of-00002.jsonl" for i in (0, 1)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(st.integers(1, 4), min_size=0, max_size=40),
    max_records=st.one_of(st.none(), st.integers(1, 6)),
    max_bytes=st.one_of(st.none(), st.integers(1, 200)),
    codec=st.sampled_from(["none", "gzip", "zstd"]),
)
def test_shards_hold_every_record_in_order(
    docs: list[int],
    max_records: int | None,
    max_bytes: int | None,
    codec: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("h")
    w = writer(root, max_records=max_records, max_bytes=max_bytes, codec=codec)
    expected = []
    for d, n in enumerate(docs):
        recs = [{"d": d, "r": r} for r in range(n)]
        expected.extend(recs)
        w.write_document(recs)
    files = w.close()
    got = [orjson.loads(x) for f in files for x in read(root / f.path).splitlines()]
    assert got == expected
    total = len(files)
    for index, file in enumerate(files):
        match = NAME.match(Path(file.path).name)
        assert match and int(match[1]) == index and int(match[2]) == total
        if max_records is not None:  # cut once full: only the last document may go over
            rows = [orjson.loads(x) for x in read(root / file.path).splitlines()]
            before_last = [r for r in rows if r["d"] != rows[-1]["d"]]
            assert len(before_last) < max_records
    assert sum(f.documents for f in files) == len(docs)
    assert len(list((root / "jsonl").iterdir()) if docs else []) == total
