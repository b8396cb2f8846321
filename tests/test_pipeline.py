"""pack_dataset: folder layout, manifest, account identities, rejects, safety, determinism."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.errors import InputError, OutputError

EXT = {"chatml": ".jsonl", "jsonl": ".jsonl", "plain": ".txt"}
CARD = {"README.md", "report.html"}  # the dataset card and the report, allowed extras
REJECT_KEYS = ["format", "source", "line", "id", "reason", "detail"]


def manifest(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "manifest.json").read_bytes())


def rejects(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (out / "rejects.jsonl").read_bytes().splitlines()]


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def merged(base: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``sections`` merged in, two levels deep."""
    out = {k: dict(v) for k, v in base.items()}
    for name, values in sections.items():
        section = out.setdefault(name, {})
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(section.get(key), dict):
                section[key] = {**section[key], **value}
            else:
                section[key] = value
    return out


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_layout_and_manifest(docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]) -> None:
    out = tmp_path / "out"
    report = qudata.pack_dataset(docs_file, out, config=fast_config)
    assert report.balanced()
    files = set(tree(out))
    assert {p for p in files if "/" in p} == {f"{f}/train-00000-of-00001{EXT[f]}" for f in EXT}
    top = {p for p in files if "/" not in p}
    assert {"manifest.json", "rejects.jsonl"} <= top <= {"manifest.json", "rejects.jsonl", *CARD}
    m = manifest(out)
    assert {"qudata_version", "config", "counts", "formats"} <= set(m)
    assert m["qudata_version"] == qudata.__version__
    assert m["config"]["quality"]["tokenizer"] == "none"
    assert {"read", "accepted", "dropped"} <= set(m["counts"])
    assert (m["counts"]["read"], m["counts"]["accepted"]) == (5, 5)
    assert set(m["formats"]) == {"chatml", "jsonl", "plain"}
    for name, stats in m["formats"].items():
        assert {"documents", "records", "bytes", "dropped", "files"} <= set(stats)
        (entry,) = stats["files"]
        assert {"path", "split", "documents", "records", "bytes", "sha256"} <= set(entry)
        assert entry["path"] == f"{name}/train-00000-of-00001{EXT[name]}"
        assert entry["split"] == "train"
        assert entry["documents"] == stats["documents"] == 5


def test_manifest_hashes_and_sizes_match_disk(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config)
    m = manifest(out)
    for stats in m["formats"].values():
        total = 0
        for entry in stats["files"]:
            data = (out / entry["path"]).read_bytes()
            assert entry["bytes"] == len(data)
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            total += len(data)
        assert stats["bytes"] == total


def test_records_count_lines(docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config, formats=["chatml", "jsonl"])
    m = manifest(out)
    for name in ("chatml", "jsonl"):
        (entry,) = m["formats"][name]["files"]
        assert entry["records"] == len((out / entry["path"]).read_bytes().splitlines())


def test_output_equals_formatter_golden(
    docs_file: Path, data_dir: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    """The pipeline writes the same bytes as the formatters with the same options."""
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config, formats=["jsonl", "plain"])
    golden = data_dir / "golden"
    assert (out / "jsonl/train-00000-of-00001.jsonl").read_bytes() == (
        golden / "jsonl.jsonl"
    ).read_bytes()
    assert (out / "plain/train-00000-of-00001.txt").read_bytes() == (
        golden / "plain.txt"
    ).read_bytes()


def test_formats_selects_folders(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    report = qudata.pack_dataset(docs_file, out, config=fast_config, formats=["plain"])
    names = {p.name for p in out.iterdir()} - CARD
    assert names == {"manifest.json", "plain", "rejects.jsonl"}
    assert list(report.formats) == ["plain"]


def test_bad_lines_are_rejected_and_both_identities_hold(
    bad_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    report = qudata.pack_dataset(bad_file, out, config=fast_config)
    m = manifest(out)
    counts = m["counts"]
    assert counts["read"] == 7
    assert counts["accepted"] == 2
    assert counts["dropped"] == {"invalid": 4, "unknown_shape": 1}
    assert counts["read"] == counts["accepted"] + sum(counts["dropped"].values())
    for stats in m["formats"].values():
        assert counts["accepted"] == stats["documents"] + sum(stats["dropped"].values())
    assert report.balanced()

    entries = rejects(out)
    assert all(list(e)[:6] == REJECT_KEYS for e in entries)
    by_line = {e["line"]: e for e in entries}
    assert sorted(by_line) == [2, 3, 4, 5, 7]
    for entry in entries:
        assert entry["source"] == str(bad_file)
        assert entry["reason"] == ("unknown_shape" if entry["line"] == 4 else "invalid")
        assert entry["format"] is None
    assert "invalid JSON" in by_line[2]["detail"]
    assert "JSON object" in by_line[3]["detail"]
    assert "keys: body, id" in by_line[4]["detail"] and by_line[4]["id"] == "no-text"
    assert "must be a string" in by_line[5]["detail"] and by_line[5]["id"] == "num-text"
    assert "UTF-8" in by_line[7]["detail"]


def test_format_drops_keep_the_account(
    tmp_path: Path, write_jsonl: Callable[[Path, list[Any]], Path], fast_config: dict[str, Any]
) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": "Good text.", "quality_score": 0.9},
            {"id": "b", "text": "", "quality_score": 0.9},
            {"id": "c", "text": "Low quality text.", "quality_score": 0.1},
            {"id": "d", "text": "Very low.", "quality_score": 0.05},
        ],
    )
    config = merged(
        fast_config,
        quality={"min_quality_score": 0.08},
        pack={"jsonl": {"filter_low_quality": True, "min_quality_score": 0.5}},
    )
    out = tmp_path / "out"
    report = qudata.pack_dataset(src, out, config=config)
    assert report.balanced()
    m = manifest(out)
    assert m["counts"]["dropped"] == {"low_quality": 1}
    assert m["counts"]["accepted"] == 3
    assert m["formats"]["jsonl"]["dropped"] == {"low_quality": 1}
    assert m["formats"]["jsonl"]["documents"] == 2  # "a" and the empty "b"
    assert m["formats"]["chatml"]["dropped"] == {"empty_text": 1}
    assert m["formats"]["plain"]["dropped"] == {"empty_text": 1}
    entries = rejects(out)
    assert {(e["format"], e["id"], e["reason"]) for e in entries} == {
        (None, "d", "low_quality"),
        ("jsonl", "c", "low_quality"),
        ("chatml", "b", "empty_text"),
        ("plain", "b", "empty_text"),
    }
    assert all(list(e)[:6] == REJECT_KEYS for e in entries)


def test_exact_duplicates_keep_the_account(
    tmp_path: Path, write_jsonl: Callable[[Path, list[Any]], Path], fast_config: dict[str, Any]
) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"text": "Same words."}, {"text": "Same words."}, {"text": "Other."}],
    )
    out = tmp_path / "out"
    report = qudata.pack_dataset(src, out, config=fast_config, formats=["jsonl"])
    assert report.balanced()
    m = manifest(out)
    assert m["counts"]["read"] == 3
    assert m["counts"]["accepted"] == 2
    assert sum(m["counts"]["dropped"].values()) == 1
    (dup,) = rejects(out)
    assert dup["line"] == 2


def test_custom_text_key(
    tmp_path: Path, write_jsonl: Callable[[Path, list[Any]], Path], fast_config: dict[str, Any]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"uid": "u1", "raw_content": "Raw text."}])
    out = tmp_path / "out"
    config = merged(
        fast_config,
        input={"text_key": "raw_content", "id_key": "uid"},
        pack={"jsonl": {"fields": ["id", "text"]}},
    )
    qudata.pack_dataset(src, out, config=config, formats=["jsonl"])
    assert (out / "jsonl/train-00000-of-00001.jsonl").read_bytes() == (
        b'{"id":"u1","text":"Raw text."}\n'
    )


def test_on_error_fail_raises_and_leaves_nothing(
    bad_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    parent = tmp_path / "dest"
    parent.mkdir()
    out = parent / "out"
    config = merged(fast_config, input={"on_error": "fail"})
    with pytest.raises(InputError) as info:
        qudata.pack_dataset(bad_file, out, config=config)
    assert f"{bad_file}:2" in str(info.value)
    assert info.value.line == 2
    assert not out.exists()
    assert list(parent.iterdir()) == []  # no staging folder, no hidden leftovers


def test_on_error_fail_keeps_an_existing_dataset(
    docs_file: Path, bad_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config)
    before = tree(out)
    config = merged(fast_config, input={"on_error": "fail"})
    with pytest.raises(InputError):
        qudata.pack_dataset(bad_file, out, config=config, overwrite=True)
    assert tree(out) == before
    assert leftovers(tmp_path) == []


def test_non_empty_output_is_refused_without_overwrite(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="not empty"):
        qudata.pack_dataset(docs_file, out, config=fast_config)
    assert tree(out) == {"keep.txt": b"precious"}
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_a_dataset(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config)
    (out / "stale.txt").write_text("old")
    qudata.pack_dataset(docs_file, out, config=fast_config, overwrite=True)
    assert not (out / "stale.txt").exists()
    assert (out / "manifest.json").exists()
    assert leftovers(tmp_path) == []


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    with pytest.raises(OutputError, match="replaces only a qudata dataset"):
        qudata.pack_dataset(docs_file, out, config=fast_config, overwrite=True)
    assert tree(out) == {"precious.txt": b"mine"}
    assert leftovers(tmp_path) == []


def test_overwrite_from_config(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=fast_config)
    qudata.pack_dataset(docs_file, out, config=merged(fast_config, output={"overwrite": True}))
    assert manifest(out)["counts"]["read"] == 5


def test_empty_existing_folder_is_used(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    qudata.pack_dataset(docs_file, out, config=fast_config)
    assert (out / "manifest.json").exists()


def test_output_path_that_is_a_file_is_refused(
    docs_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(OutputError):
        qudata.pack_dataset(docs_file, out, config=fast_config, overwrite=True)
    assert out.read_text() == "a file"


def test_two_runs_are_byte_identical(
    docs_file: Path, bad_file: Path, tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        qudata.pack_dataset([docs_file, bad_file], out, config=fast_config)
        runs.append(tree(out))
    assert runs[0] == runs[1]
    assert "manifest.json" in runs[0] and "rejects.jsonl" in runs[0]


def test_two_runs_with_default_tokenizer_are_byte_identical(
    docs_file: Path, tmp_path: Path
) -> None:
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        qudata.pack_dataset(docs_file, out)
        runs.append(tree(out))
    assert runs[0] == runs[1]
    m = orjson.loads(runs[0]["manifest.json"])
    assert m["formats"]["chatml"]["documents"] == 5


def test_missing_input_is_an_input_error_and_nothing_is_written(
    tmp_path: Path, fast_config: dict[str, Any]
) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no such file"):
        qudata.pack_dataset(tmp_path / "nope.jsonl", out, config=fast_config)
    assert not out.exists()


def test_config_error_before_any_output(docs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(qudata.ConfigError, match=r"pack\.chatml\.sytem_message"):
        qudata.pack_dataset(docs_file, out, config={"pack": {"chatml": {"sytem_message": "x"}}})
    assert list(tmp_path.iterdir()) == []


def test_yaml_config_path(docs_file: Path, spec_yaml: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(docs_file, out, config=spec_yaml, formats=["jsonl"])
    m = manifest(out)
    assert m["config"]["pack"]["jsonl"]["fields"] == ["text", "labels", "metadata", "quality_score"]
    # spec filter: 0.4 < 0.7 dropped; the document without a score is kept
    assert m["formats"]["jsonl"]["dropped"] == {"low_quality": 1}
    assert m["formats"]["jsonl"]["documents"] == 4


def test_each_text_is_tokenized_once_per_run(tmp_path: Path, monkeypatch: Any) -> None:
    """The budget, every format's output, the manifest and add_metadata share counts."""
    from qudata.quality.tokens import get_token_counter
    from qudata.stages import context as stage_context

    real = get_token_counter("cl100k_base")
    seen: list[str] = []

    class Recording:
        name, exact = real.name, real.exact

        def count(self, text: str) -> int:
            seen.append(text)
            return real.count(text)

        def count_batch(self, texts: Any) -> list[int]:
            seen.extend(texts)
            return real.count_batch(texts)

        def encode_batch(self, texts: Any) -> list[list[int]]:
            seen.extend(texts)
            return real.encode_batch(texts)

        def token_ends(self, text: str, tokens: Any = None) -> list[int]:
            if tokens is None:  # tokenizes again
                seen.append(text)
            return real.token_ends(text, tokens)

    monkeypatch.setattr(stage_context, "get_token_counter", lambda *_: Recording())
    long = "\n\n".join(f"Paragraph {n} has a few plain words in it." for n in range(60))
    docs = [{"id": f"d{n}", "title": f"T{n}", "text": f"{long} {n}"} for n in range(5)]
    docs += [{"id": "s", "text": "short text"}]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    config = {
        "pack": {"chatml": {"max_tokens_per_message": 64}},
        "output": {"add_metadata": ["tokens"]},
    }
    report = qudata.pack_dataset(source, tmp_path / "out", config=config)
    assert report.balanced() and report.formats["chatml"].records > len(docs)
    repeated = {t[:30] for t in seen if seen.count(t) > 1}
    assert not repeated
    assert report.formats["jsonl"].tokens == sum(real.count(d["text"]) for d in docs)


def test_invalid_quality_score_is_rejected_before_formatting(tmp_path: Path) -> None:
    rows = [
        {"id": "ok", "text": "Fine.", "quality_score": 0.9},
        {"id": "high", "text": "Too high.", "quality_score": 1.7},
        {"id": "low", "text": "Negative.", "quality_score": -1},
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {"quality": {"tokenizer": "none"}}
    report = qudata.pack_dataset(src, tmp_path / "out", config=config, formats=["jsonl", "plain"])
    manifest = orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert manifest["counts"]["dropped"] == {"invalid_quality_score": 2}
    assert report.balanced() and manifest["formats"]["jsonl"]["documents"] == 1
    rejects = [orjson.loads(x) for x in (tmp_path / "out/rejects.jsonl").read_bytes().splitlines()]
    assert [(r["id"], r["reason"], r["format"]) for r in rejects] == [
        ("high", "invalid_quality_score", None),
        ("low", "invalid_quality_score", None),
    ]
