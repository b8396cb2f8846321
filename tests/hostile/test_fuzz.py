"""Fuzz: random bytes, random JSON lines and random configurations thrown at ``pack`` and
``validate``. Whatever comes in: no traceback, an exit code of 0, 1 or 2, the account
balanced when a dataset is published, and nothing published (nor left behind) otherwise.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .conftest import FAST, balanced, good_input, manifest, qudata_cli, qudata_process

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"text": st.one_of(st.text(max_size=60), json_values)},
        optional={
            "id": json_values,
            "quality_score": json_values,
            "title": json_values,
            "topics": json_values,
            "messages": json_values,
            "conversations": json_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {
                        "role": st.sampled_from(["system", "user", "assistant", "tool", "x"]),
                        "content": st.one_of(st.text(max_size=30), json_values),
                    }
                ),
                max_size=4,
            )
        }
    ),
)


def _json_lines(rows: list[Any]) -> bytes:
    # the standard library writes integers of any size, and NaN (not JSON: bad lines too)
    return b"".join(
        json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n" for row in rows
    )


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name and its bytes: random bytes or JSON lines, maybe compressed, maybe cut."""
    name = draw(
        st.sampled_from(
            ["in.jsonl", "in.json", "in.jsonl.gz", "in.jsonl.zst", "in.txt", "in.json.gz"]
        )
    )
    if draw(st.booleans()):
        data = draw(st.binary(max_size=600))
    elif name.startswith("in.json") and ".jsonl" not in name:
        rows = draw(st.lists(records, max_size=8))
        data = json.dumps(rows, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:
        data = _json_lines(draw(st.lists(records, max_size=12)))
    if draw(st.booleans()):
        data = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\n\n", b"\0"])) + data
    if name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    elif name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    cut = draw(st.integers(min_value=0, max_value=len(data)))
    if draw(st.integers(0, 3)) == 0:  # sometimes a truncated file
        data = data[:cut]
    return name, data


configs = st.fixed_dictionaries(
    {},
    optional={
        "on_error": st.sampled_from(["skip", "fail"]),
        "max_line_bytes": st.sampled_from([16, 200, "1KB", 1_000_000, "lots"]),
        "max_document_chars": st.sampled_from([1, 50, 10_000]),
        "dedup": st.sampled_from(["none", "exact"]),
        "split": st.sampled_from([{"train": 1.0}, {"train": 0.5, "test": 0.5}]),
        "formats": st.sampled_from([["chatml"], ["jsonl", "plain"], ["chatml", "jsonl", "plain"]]),
    },
)


def _config_file(folder: Path, choice: dict[str, Any]) -> Path:
    config: dict[str, Any] = {**FAST, "input": {}, "output": {}, "dedup": {}}
    for key in ("on_error", "max_line_bytes", "max_document_chars"):
        if key in choice:
            config["input"][key] = choice[key]
    if "dedup" in choice:
        config["dedup"]["method"] = choice["dedup"]
    if "split" in choice:
        config["output"]["split"] = choice["split"]
    if "formats" in choice:
        config["pack"] = {**config["pack"], "formats": choice["formats"]}
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _check_run(folder: Path, code: int, output: str) -> None:
    assert code in (0, 1, 2), output
    assert "Traceback" not in output and "Aborted!" not in output, output
    out = folder / "out"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".out.")]
    assert leftovers == [], leftovers  # no staging folder, no lock file
    if code == 0:
        assert balanced(manifest(out)), manifest(out)["counts"]
    else:
        assert not out.exists(), output
        assert output.startswith("Error: ") and output.count("\n") == 1, output


@SETTINGS
@given(files=st.lists(inputs(), min_size=1, max_size=3), choice=configs)
def test_pack_survives_anything(files: list[tuple[str, bytes]], choice: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = []
        for number, (name, data) in enumerate(files):
            path = folder / "data" / f"{number}-{name}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            names.append(str(path))
        config = _config_file(folder, choice)
        result = qudata_cli("pack", *names, "-o", str(folder / "out"), "-c", str(config), "-q")
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        _check_run(folder, result.exit_code, result.output)
        event(f"exit {result.exit_code}")


@SETTINGS
@given(file=inputs(), fmt=st.sampled_from(["chatml", "jsonl", "plain"]))
def test_validate_survives_anything(file: tuple[str, bytes], fmt: str) -> None:
    name, data = file
    if name.endswith((".txt", ".json", ".json.gz")):
        name = "in.jsonl" + name.rpartition(".json")[2].removeprefix("l")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        result = qudata_cli(
            "validate",
            str(path),
            "--format",
            fmt,
            "--tokenizer",
            "none" if fmt != "chatml" else "cl100k_base",
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output


def test_pack_in_a_real_process_with_random_bytes() -> None:
    """One subprocess case: what the CLI runner may hide (stderr, exit status, leftovers)."""
    import random

    rng = random.Random(15)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "data"
        data.mkdir()
        (data / "a.jsonl").write_bytes(rng.randbytes(5000))
        (data / "b.jsonl.gz").write_bytes(gzip.compress(rng.randbytes(5000))[:3000])
        (data / "c.json").write_bytes(rng.randbytes(300))
        good_input(data)  # a run that writes nothing fails: one good document
        done = qudata_process("pack", "data", "-o", "out", "--tokenizer", "none", "-q", cwd=folder)
        _check_run(folder, done.returncode, done.stderr.decode())
        assert done.returncode == 0
        counts = manifest(folder / "out")["counts"]
        assert counts["dropped"].get("truncated_input") == 1
