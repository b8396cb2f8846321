"""Parquet shards from Arrow rows (map 2's parts) are the shards written from records."""

from __future__ import annotations

from pathlib import Path

import pytest

from qudata.io.parquet import ParquetShardWriter
from qudata.pack.parquet import ParquetFormatter, parquet_schema

pa = pytest.importorskip("pyarrow")


def _documents(count: int) -> list[list[dict[str, object]]]:
    """Each document's records (some documents have several: a document split by the
    budget is several rows), with text of varied sizes and metadata."""
    formatter = ParquetFormatter()
    docs = []
    for n in range(count):
        rows = list(
            formatter.iter_records(
                [
                    {
                        "id": f"d{n}-{part}",
                        "text": ("word " * (1 + n % 97)) + f"é{n}",
                        "metadata": {"title": f"t{n}", "n": n},
                    }
                    for part in range(1 + n % 3)
                ]
            )
        )
        docs.append(rows)
    return docs


@pytest.mark.parametrize("limits", [{}, {"max_records": 700}, {"max_bytes": 20_000}])
def test_rows_write_the_same_bytes_as_records(tmp_path: Path, limits: dict[str, int]) -> None:
    docs = _documents(2500)  # over one row group (2048 rows) and several shards
    schema = parquet_schema()
    a = ParquetShardWriter(tmp_path / "a", "train", schema=schema, relative_to=tmp_path, **limits)
    b = ParquetShardWriter(tmp_path / "b", "train", schema=schema, relative_to=tmp_path, **limits)
    batch = [r for rows in docs for r in rows]
    table = pa.Table.from_pylist(batch, schema=schema)  # one batch, sliced per document
    offset = 0
    for rows in docs:
        a.write_document(rows, tokens=len(rows))
        size = sum(len(str(r.get("text") or "")) for r in rows)
        b.write_rows(table.slice(offset, len(rows)), size=size, tokens=len(rows))
        offset += len(rows)
    files_a, files_b = a.close(), b.close()
    assert len(files_a) == len(files_b) >= (2 if limits else 1)
    for fa, fb in zip(files_a, files_b, strict=True):
        assert (fa.records, fa.documents, fa.tokens) == (fb.records, fb.documents, fb.tokens)
        assert (tmp_path / fa.path).read_bytes() == (tmp_path / fb.path).read_bytes()
        assert fa.sha256 == fb.sha256
