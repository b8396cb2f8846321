"""Every consumer reads back exactly what was written: datasets (by card, by file, in
small blocks), pyarrow and pandas, values compared with their types, floats bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

import qudata

ROWS = 4200  # a key first seen after row 4150: past datasets' and pyarrow's first block
FLOATS = [0.7, 0.6, 0.1234567890123456, 1 / 3]


def rows() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(ROWS):
        row: dict[str, Any] = {"id": f"d{i}", "text": f"Doc {i}.", "quality_score": FLOATS[i % 4]}
        if i % 3 == 0:
            row["page_count"] = i
        if i % 5 == 0:
            row["ratio"] = -0.0 if i % 2 == 0 else 0.1 + i * 1e-17
        if i % 7 == 0:
            row["big"] = 2**53 + 1
        if i % 11 == 0:
            row["huge"] = 2**63 + i  # beyond int64: written as a string
        if i % 2 == 0:
            row["nested"] = {"a": {"b": i, "c": "x"}} if i % 4 == 0 else {"a": {"c": "y"}}
        if i % 13 == 0:
            row["entities"] = [{"text": "Paris", "weight": 0}, {"text": "x", "weight": 0.25}]
        if i % 17 == 0:
            row["mixed"] = "s" if i % 2 else 5
        if i >= 4150:
            row["late"] = "late value"
        if i % 19 == 0:
            row = {
                "id": f"c{i}",
                "page_count": i,
                "messages": [
                    {"role": "user", "content": "Weather?", "name": "ann"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "w", "arguments": '{"c": 1}'},
                            }
                        ],
                    },
                    {"role": "tool", "content": "21", "tool_call_id": "call_1"},
                    {"role": "assistant", "content": "21 C", "weight": 1},
                ],
            }
        out.append(row)
    return out


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("readback")
    src = tmp / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows()))
    out = tmp / "out"
    config = {
        "quality": {"tokenizer": "none"},
        "dedup": {"method": "none"},
        # OpenAI's string arguments: no Json feature, so datasets reads every value exactly
        # (the default object form: tests/pack/test_tool_arguments.py)
        "pack": {
            "chatml": {
                "include_metadata": True,
                "max_tokens_per_message": None,
                "tool_arguments": "string",
            }
        },
    }
    qudata.pack_dataset([src], out, config=config, formats=["chatml", "jsonl"])
    return out


def written(out: Path, name: str) -> list[Any]:
    return [orjson.loads(x) for x in file_of(out, name).read_bytes().splitlines()]


def file_of(out: Path, name: str) -> Path:
    return out / name / "train-00000-of-00001.jsonl"


def same(got: Any, want: Any, path: str = "$") -> None:
    """Equal, with the same types; floats bit for bit."""
    assert type(got) is type(want), (path, got, want)
    if isinstance(want, float):
        assert got.hex() == want.hex(), (path, got, want)
    elif isinstance(want, dict):
        assert list(got) == list(want), path
        for key in want:
            same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            same(a, b, f"{path}[{i}]")
    else:
        assert got == want, (path, got, want)


def key_sets(value: Any, path: str = "$") -> set[tuple[str, tuple[str, ...]]]:
    if isinstance(value, dict):
        found = {(path, tuple(value))}
        for key, item in value.items():
            found |= key_sets(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return set().union(*(key_sets(v, f"{path}[]") for v in value)) if value else set()
    return set()


@pytest.mark.parametrize("name", ["chatml", "jsonl"])
def test_file_holds_every_key_on_every_row_and_the_exact_values(packed: Path, name: str) -> None:
    records = written(packed, name)
    shapes: dict[str, set[tuple[str, ...]]] = {}
    for record in records:
        for path, keys in key_sets(record):
            shapes.setdefault(path, set()).add(keys)
    assert {p: len(k) for p, k in shapes.items() if len(k) > 1} == {}
    meta = [r["metadata"] for r in records]
    assert meta[2]["quality_score"].hex() == (0.1234567890123456).hex()
    assert str(meta[10]["ratio"]) == "-0.0" and meta[5]["ratio"] == 0.1 + 5e-17
    assert meta[7]["big"] == 2**53 + 1 and type(meta[7]["big"]) is int
    assert meta[11]["huge"] == str(2**63 + 11)
    assert meta[4150]["late"] == "late value" and meta[0]["late"] is None
    assert [e["weight"] for e in meta[13]["entities"]] == [0.0, 0.25]
    manifest = orjson.loads((packed / "manifest.json").read_bytes())
    warnings = manifest["formats"][name]["warnings"]
    assert warnings["metadata_int_out_of_range"] == len(range(0, ROWS, 11)) - len(
        [i for i in range(0, ROWS, 11) if i % 19 == 0]
    )


def card_features(out: Path, name: str) -> list[dict[str, Any]]:
    front = (out / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    info = yaml.safe_load(front)["dataset_info"]
    features: list[dict[str, Any]] = next(c["features"] for c in info if c["config_name"] == name)
    return features


@pytest.mark.parametrize("name", ["chatml", "jsonl"])
def test_card_declares_exact_features_and_no_json(packed: Path, name: str) -> None:
    text = yaml.safe_dump(card_features(packed, name))
    assert "json" not in text
    meta = next(f for f in card_features(packed, name) if f["name"] == "metadata")["struct"]
    dtypes = {f["name"]: f.get("dtype") for f in meta}
    assert dtypes["page_count"] == "int64" and dtypes["big"] == "int64"
    assert dtypes["ratio"] == "float64" and dtypes["huge"] == "string"
    assert dtypes["mixed"] == "string" and dtypes["late"] == "string"


LOADS = {
    "card": lambda ds, out, name: ds.load_dataset(str(out), name),
    "card_chunksize": lambda ds, out, name: ds.load_dataset(str(out), name, chunksize=4096),
    "file": lambda ds, out, name: ds.load_dataset("json", data_files=str(file_of(out, name))),
    # in small blocks a key null in the first block is typed null: give the card's features
    "file_chunksize": lambda ds, out, name: ds.load_dataset(
        "json",
        data_files=str(file_of(out, name)),
        chunksize=4096,
        features=ds.Features._from_yaml_list(card_features(out, name)),
    ),
}


@pytest.mark.parametrize("how", sorted(LOADS))
@pytest.mark.parametrize("name", ["chatml", "jsonl"])
def test_datasets_reads_back_exactly(
    packed: Path, name: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    train = LOADS[how](datasets, packed, name)["train"]
    assert "Json" not in repr(train.features)
    for number, (row, record) in enumerate(zip(train, written(packed, name), strict=True)):
        same(dict(row), record, f"row {number}")


@pytest.mark.parametrize("name", ["chatml", "jsonl"])
def test_pyarrow_and_pandas_read_back_exactly(packed: Path, name: str) -> None:
    pa_json = pytest.importorskip("pyarrow.json")
    pd = pytest.importorskip("pandas")
    records = written(packed, name)
    for number, (row, record) in enumerate(
        zip(pa_json.read_json(file_of(packed, name)).to_pylist(), records, strict=True)
    ):
        same(row, record, f"pyarrow row {number}")
    frame = pd.read_json(file_of(packed, name), lines=True, precise_float=True)
    for number, (row, record) in enumerate(
        zip(frame.to_dict(orient="records"), records, strict=True)
    ):
        same(row, record, f"pandas row {number}")


def test_stdin_is_read_twice_from_a_spooled_copy(tmp_path: Path) -> None:
    """Standard input cannot be read twice: it is copied beside the output first, the
    records are the same as from a file, and no copy is left behind."""
    from click.testing import CliRunner

    from qudata.cli import cli

    data = b'{"id": "a", "text": "One."}\n{"id": "b", "text": "Two.", "late": 1.5}\n'
    (tmp_path / "in.jsonl").write_bytes(data)
    args = ["-f", "jsonl", "--tokenizer", "none", "-q"]
    result = CliRunner().invoke(cli, ["pack", "-", "-o", str(tmp_path / "a"), *args], input=data)
    assert result.exit_code == 0, result.output
    file_run = ["pack", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "b"), *args]
    assert CliRunner().invoke(cli, file_run).exit_code == 0
    got, want = written(tmp_path / "a", "jsonl"), written(tmp_path / "b", "jsonl")
    assert got == want and got[0]["metadata"]["late"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "in.jsonl"]


def test_integer_beyond_int64_is_a_counted_string_end_to_end(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "text": "A.", "n": 1180591620717411303424}\n'
        '{"id": "b", "text": "B.", "n": 3}\n'
    )
    out = tmp_path / "out"
    qudata.pack_dataset(src, out, config={"quality": {"tokenizer": "none"}}, formats=["jsonl"])
    values = [r["metadata"]["n"] for r in written(out, "jsonl")]
    assert values == [str(2**70), "3"]  # one key, one type: the exact decimal text
    warnings = orjson.loads((out / "manifest.json").read_bytes())["formats"]["jsonl"]["warnings"]
    assert warnings == {"metadata_int_out_of_range": 1, "metadata_number_as_string": 1}


def test_parquet_reads_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parquet has its own declared schema: the same rows from datasets, pyarrow, pandas;
    unknown metadata as exact JSON text (integers beyond 64 bits too)."""
    datasets = pytest.importorskip("datasets")
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "text": "A.", "quality_score": 0.1234567890123456, '
        '"n": 1180591620717411303424}\n'
        '{"id": "b", "text": "B.", "quality_score": 1, "x": -0.0}\n'
    )
    out = tmp_path / "out"
    qudata.pack_dataset(src, out, config={"quality": {"tokenizer": "none"}}, formats=["parquet"])
    path = out / "parquet" / "train-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    assert rows[0]["quality_score"].hex() == (0.1234567890123456).hex()
    assert orjson.loads(rows[1]["metadata_json"]) == {"x": -0.0}
    assert rows[0]["metadata_json"] == '{"n":1180591620717411303424}'
    for number, row in enumerate(datasets.load_dataset(str(out / "parquet"))["train"]):
        same(dict(row), rows[number], f"datasets row {number}")
    for number, row in enumerate(pd.read_parquet(path).to_dict(orient="records")):
        assert row["quality_score"].hex() == rows[number]["quality_score"].hex()
        assert row["metadata_json"] == rows[number]["metadata_json"]


def test_lists_starting_with_null_read_back_through_datasets_and_declared_pyarrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow 26's JSON reader, left to infer, reads ``[null, false]`` as
    ``[false, false]``; datasets and pyarrow given the card's features read it exactly."""
    datasets = pytest.importorskip("datasets")
    pa_json = pytest.importorskip("pyarrow.json")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "text": "A.", "flags": [null, false], "tags": [null, "x"]}\n'
        '{"id": "b", "text": "B.", "flags": [true]}\n'
    )
    out = tmp_path / "out"
    qudata.pack_dataset(src, out, config={"quality": {"tokenizer": "none"}}, formats=["jsonl"])
    records = written(out, "jsonl")
    assert records[0]["metadata"]["flags"] == [None, False]
    for load in (LOADS["card"], LOADS["file"]):
        rows = list(load(datasets, out, "jsonl")["train"])
        same([dict(r) for r in rows], records)
    arrow = datasets.Features._from_yaml_list(card_features(out, "jsonl")).arrow_schema
    options = pa_json.ParseOptions(explicit_schema=arrow)
    same(pa_json.read_json(file_of(out, "jsonl"), parse_options=options).to_pylist(), records)
