"""Remote inputs on the simulated cluster (see ``conftest.py``): Ray's worker processes
outlive a run, and what one run's listing said of a file must not serve the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata

S3 = TwoNodes = Any  # the fixtures of conftest.py

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def _rows(count: int) -> bytes:
    return b"".join(orjson.dumps({"id": f"d{n}", "text": f"row {n}"}) + b"\n" for n in range(count))


def test_a_rewritten_object_is_read_whole_by_the_next_run(
    s3: S3, two_nodes: TwoNodes, tmp_path: Path
) -> None:
    """The same output folder twice (the same staging folder: the workers' cached
    context of the first run), the input rewritten longer in between: the second run
    reads the new object whole, from its own listing."""
    uri = f"s3://{s3.bucket}/rerun/in.jsonl"
    config = {
        "engine": {"name": "ray", "address": two_nodes.address},
        "storage": {"options": s3.options},
        "quality": {"tokenizer": "none"},
        "pack": {"formats": ["jsonl"]},
        "dedup": {"method": "none"},
    }
    out = tmp_path / "out"
    for rows in (50, 80):
        data = _rows(rows)
        s3.fs().pipe(uri, data)
        report = qudata.pack_dataset([uri], out, config=config, overwrite=True)
        assert report.read == rows
        [entry] = orjson.loads((out / "manifest.json").read_bytes())["inputs"]
        assert (entry["records"], entry["size"]) == (rows, len(data))
