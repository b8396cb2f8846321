"""Media references: LLaMA-Factory ``images``/``videos``/``audios`` and OpenAI/TRL image
parts carried as paths or URLs, placeholders counted against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import qudata

MEDIA = Path(__file__).parents[1] / "data" / "shapes" / "media.jsonl"
CONFIG = {
    "quality": {"tokenizer": "none"},
    "pack": {"chatml": {"max_tokens_per_message": None}, "jsonl": {"fields": ["id", "images"]}},
}
EXPECTED = {
    "lf-image": {"images": ["mllm_demo_data/1.jpg", "mllm_demo_data/1b.jpg"]},
    "lf-video": {"videos": ["mllm_demo_data/4.mp4"]},
    "openai-image": {"images": ["https://example.com/cat.png"]},
    "trl-image": {"images": ["dog.png"]},
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("media") / "out"
    config = {**CONFIG, "output": {"add_metadata": []}}
    report = qudata.pack_dataset(MEDIA, out, config=config, formats=["chatml", "jsonl", "parquet"])
    assert report.balanced()
    return out, report


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_references_are_carried_and_placeholders_kept(packed: tuple[Path, Any]) -> None:
    out, _ = packed
    (path,) = sorted((out / "chatml").glob("*.jsonl"))
    got = lines(path)
    assert [{k: r[k] for k in ("images", "videos") if r.get(k)} for r in got] == list(
        EXPECTED.values()
    )
    users = [r["messages"][0]["content"] for r in got]
    assert users == ["<image>Who are they?", "<video>What happens?", "Describe <image>",
                     "<image>What is it?"]  # fmt: skip
    (jpath,) = sorted((out / "jsonl").glob("*.jsonl"))
    assert [(r["id"], r["images"]) for r in lines(jpath)] == [
        (key, value.get("images")) for key, value in EXPECTED.items()
    ]


def test_parquet_has_reference_columns(packed: tuple[Path, Any]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out, _ = packed
    (path,) = sorted((out / "parquet").glob("*.parquet"))
    table = pq.read_table(path).to_pylist()
    assert {r["id"]: r["images"] for r in table} == {
        key: value.get("images") for key, value in EXPECTED.items()
    }
    assert {r["id"]: r["videos"] for r in table}["lf-video"] == ["mllm_demo_data/4.mp4"]


def test_mismatches_and_bytes_are_rejected_with_the_key(packed: tuple[Path, Any]) -> None:
    out, report = packed
    assert report.dropped == {"media_mismatch": 1, "unsupported_content": 1, "bad_media": 1}
    rejects = {r["id"]: r for r in lines(out / "rejects.jsonl")}
    assert rejects["too-few"]["detail"].endswith(
        "field 'images' holds 1 reference(s) but the text has 2 <image> placeholder(s)"
    )
    assert "holds the media bytes (a data: URL)" in rejects["bytes"]["detail"]
    assert "field 'images' must be a list of paths or URLs" in rejects["not-strings"]["detail"]


def test_datasets_and_trls_vision_preparation_read_it(packed: tuple[Path, Any]) -> None:
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    out, _ = packed
    ds = datasets.load_dataset(str(out), "chatml", split="train")
    assert ds.features["images"].feature.dtype == "string"
    example = ds[0]
    assert example["images"] == EXPECTED["lf-image"]["images"]
    prepared = data_utils.prepare_multimodal_messages(example["messages"], example["images"])
    blocks = [b for m in prepared for b in m["content"] if b["type"] == "image"]
    assert [b["image"] for b in blocks] == example["images"]
