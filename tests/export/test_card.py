"""The dataset card (README.md) and the Parquet card, as written by a run."""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.export.card import render_card

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
FORMATS = ["chatml", "jsonl", "plain", "parquet", "llmbuilder"]
COMMAND = "qudata pack examples/sample.jsonl -o out --split train=0.8,validation=0.1,test=0.1"


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (parsed) and the body of a card."""
    assert text.startswith("---\n")
    front, sep, body = text[4:].partition("\n---\n")
    assert sep
    return yaml.safe_load(front), body


def manifest(out: Path) -> dict[str, Any]:
    return orjson.loads((out / "manifest.json").read_bytes())


def files_by_split(fmt: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    result: dict[str, list[str]] = defaultdict(list)
    for file in fmt["files"]:
        result[file["split"]].append(file["path"].removeprefix(prefix))
    return dict(result)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("card") / "out"
    config = {
        **FAST,
        "output": {"split": {"train": 0.8, "validation": 0.1, "test": 0.1}, "shard_records": 100},
    }
    qudata.pack_dataset(SAMPLE, out, formats=FORMATS, config=config, command=COMMAND)
    return out


def test_front_matter_lists_only_the_json_configs_with_their_split_files(run: Path) -> None:
    front, _ = split_card((run / "README.md").read_text(encoding="utf-8"))
    data = manifest(run)
    assert [c["config_name"] for c in front["configs"]] == ["chatml", "jsonl"]
    for config in front["configs"]:
        listed = {d["split"]: d["path"] for d in config["data_files"]}
        assert listed == files_by_split(data["formats"][config["config_name"]])
        assert [d["split"] for d in config["data_files"]] == ["train", "validation", "test"]
        for paths in listed.values():
            for path in paths:
                assert (run / path).is_file()
                assert not Path(path).is_absolute() and ".." not in Path(path).parts


def test_parquet_has_its_own_card(run: Path) -> None:
    front, _ = split_card((run / "parquet" / "README.md").read_text(encoding="utf-8"))
    assert [c["config_name"] for c in front["configs"]] == ["parquet"]
    listed = {d["split"]: d["path"] for d in front["configs"][0]["data_files"]}
    assert listed == files_by_split(manifest(run)["formats"]["parquet"], prefix="parquet/")
    for paths in listed.values():
        for path in paths:
            assert (run / "parquet" / path).is_file()


def test_no_parquet_card_without_parquet(tmp_path: Path) -> None:
    out = tmp_path / "out"
    qudata.pack_dataset(SAMPLE, out, formats=["jsonl"], config=FAST)
    assert not (out / "parquet").exists()
    assert "parquet" not in (out / "README.md").read_text(encoding="utf-8")


def test_body_states_sizes_for_every_format_and_split(run: Path) -> None:
    _, body = split_card((run / "README.md").read_text(encoding="utf-8"))
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] in FORMATS:
            rows[(cells[0], cells[1])] = cells
    for name, fmt in manifest(run)["formats"].items():
        totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for file in fmt["files"]:
            for key in ("documents", "records", "bytes"):
                totals[file["split"]][key] += file[key]
            totals[file["split"]]["files"] += 1
        for split, total in totals.items():
            cells = rows[(name, split)]
            assert int(cells[2]) == total["files"]
            assert int(cells[3].replace(",", "")) == total["documents"]
            assert int(cells[4].replace(",", "")) == total["records"]
            assert int(cells[6].replace(",", "")) == total["bytes"]
    assert len(rows) == len(FORMATS) * 3


def test_body_states_filters_dedup_and_the_command(run: Path) -> None:
    _, body = split_card((run / "README.md").read_text(encoding="utf-8"))
    assert "Read 313 documents" in body and "accepted 310" in body
    assert "duplicate_exact 3" in body
    assert "`exact`" in body
    assert "near duplicates can" in body
    assert f"```\n{COMMAND}\n```" in body
    assert "`chatml` dropped: empty_text 1" in body
    found = manifest(run)["dedup"]
    assert found["documents"] == 313 and found["exact_duplicates"] == 3
    clusters = found["clusters"]
    assert f"- 313 documents in {clusters:,} clusters; " in body
    assert "MinHash" not in body


def test_card_under_near_dedup_says_near_duplicates_never_cross(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = {**FAST, "dedup": {"method": "near"}, "output": {"split": {"a": 0.5, "b": 0.5}}}
    qudata.pack_dataset(SAMPLE, out, formats=["jsonl"], config=config)
    _, body = split_card((out / "README.md").read_text(encoding="utf-8"))
    assert "exact and near duplicates never cross splits" in body
    assert "near duplicates can" not in body
    assert "Jaccard >= 0.8" in body
    lines = [line for line in body.splitlines() if "clusters;" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "; MinHash LSH with 128 permutations, 16 bands x 8 rows, 5-word shingles, seed 1."
    )


def test_render_card_describes_the_clusters_found() -> None:
    data = {
        "qudata_version": "0.1.0",
        "config": {
            "quality": {"min_quality_score": None, "missing_score": "keep", "tokenizer": "none"},
            "dedup": {"method": "near", "threshold": 0.7},
        },
        "counts": {"read": 133, "accepted": 120, "dropped": {"duplicate_exact": 13}},
        "formats": {},
        "dedup": {
            "method": "near", "threshold": 0.7, "permutations": 64, "bands": 8, "rows": 8,
            "shingle_size": 3, "seed": 1, "documents": 133, "clusters": 120,
            "cluster_sizes": {"1": 110, "2": 6, "3": 2, "9": 1, "40": 1},
        },
    }  # fmt: skip
    card = render_card(data)
    assert (
        "- 133 documents in 120 clusters; 10 with copies (the largest: 40 documents); "
        "MinHash LSH with 64 permutations, 8 bands x 8 rows, 3-word shingles, seed 1.\n"
    ) in card


def test_card_shows_no_python_reprs(run: Path) -> None:
    """Values are written for readers: no ``None`` (an unset ``min_quality_score`` reads
    '`min_quality_score` None' today)."""
    _, body = split_card((run / "README.md").read_text(encoding="utf-8"))
    assert not re.search(r"\bNone\b", body), [x for x in body.splitlines() if "None" in x]


def test_card_never_advertises_a_config_it_does_not_define(tmp_path: Path) -> None:
    """Every JSON format JSONL-filtered to nothing: the front matter has no ``jsonl``
    config, so the card must not tell readers to ``load_dataset(..., "jsonl")``."""
    out = tmp_path / "out"
    rows = [{"id": str(i), "text": f"Document {i}.", "quality_score": 0.2} for i in range(5)]
    source = tmp_path / "low.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = {
        **FAST,
        "pack": {**FAST["pack"], "jsonl": {"filter_low_quality": True, "min_quality_score": 0.5}},
    }
    qudata.pack_dataset(source, out, formats=["chatml", "jsonl"], config=config)
    assert manifest(out)["formats"]["jsonl"]["files"] == []
    front, body = split_card((out / "README.md").read_text(encoding="utf-8"))
    names = {c["config_name"] for c in front["configs"]}
    assert names == {"chatml"}
    advertised = set(re.findall(r'load_dataset\("path/to/this/folder", "(\w+)"\)', body))
    assert advertised <= names, advertised


def test_render_card_without_json_formats_has_no_front_matter() -> None:
    data = {
        "qudata_version": "0.1.0",
        "config": {
            "quality": {"min_quality_score": 0.5, "missing_score": "keep", "tokenizer": "none"},
            "dedup": {"method": "exact", "threshold": 0.8},
        },
        "counts": {"read": 1, "accepted": 1, "dropped": {}},
        "formats": {
            "plain": {
                "dropped": {},
                "tokens": None,
                "files": [
                    {"path": "plain/train-00000-of-00001.txt", "split": "train", "documents": 1,
                     "records": 1, "bytes": 5, "tokens": None}
                ],
            }
        },
    }  # fmt: skip
    card = render_card(data, command=None)
    assert not card.startswith("---")
    assert "| plain | train | 1 | 1 | 1 | - | 5 |" in card
    assert "load_dataset" in card and '"plain"' not in card


def test_cli_card_records_the_command_it_was_given(tmp_path: Path) -> None:
    """Invoked in-process (``CliRunner``, ``cli.main(args)``, any wrapper), the card's
    command is built from ``sys.argv`` and so shows the host program's arguments (here
    pytest's) instead of the pack command."""
    out = tmp_path / "out"
    args = ["pack", str(SAMPLE), "-o", "out", "--split", "train=0.9,test=0.1"]
    args += ["-f", "jsonl", "--tokenizer", "none", "-q"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    _, body = split_card((out / "README.md").read_text(encoding="utf-8"))
    assert "--split train=0.9,test=0.1" in body, body.split("## Sizes")[0]
    assert " ".join(sys.argv[1:]) not in body or not sys.argv[1:]


@pytest.mark.parametrize(("codec", "noted"), [("zstd", True), ("gzip", False), ("none", False)])
def test_card_says_zst_files_need_zstandard(tmp_path: Path, codec: str, noted: bool) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "text": "One."}\n')
    config = {**FAST, "output": {"compression": codec}}
    qudata.pack_dataset(source, tmp_path / "out", formats=["jsonl"], config=config)
    _, body = split_card((tmp_path / "out" / "README.md").read_text(encoding="utf-8"))
    assert ("`zstandard`" in body) is noted


def test_sources_and_licence_from_the_inputs(tmp_path: Path) -> None:
    from tests.export import sample_run

    source = sample_run.write_input(tmp_path / "corpus.jsonl")
    out = tmp_path / "out"
    qudata.pack_dataset(source, out, config=FAST, formats=["jsonl"])
    data = manifest(out)
    assert "card" not in data["config"]["output"]  # no statement: the config as before
    text = (out / "README.md").read_text(encoding="utf-8")
    front, body = split_card(text)
    assert "license" not in front
    section = body[body.index("## Sources and licence") : body.index("## Sizes")]
    assert "No licence stated: set `output.card.license`" in section
    (entry,) = data["inputs"]
    assert entry["path"].endswith("corpus.jsonl")
    assert f"| `{entry['path']}` | {entry['records']:,} | `{entry['sha256'][:16]}` |" in section
    written = [
        orjson.loads(line)
        for path in (out / "jsonl").rglob("*.jsonl")
        for line in path.read_bytes().splitlines()
    ]
    found = Counter(r["metadata"]["license"] for r in written if r["metadata"].get("license"))
    assert found["cc-by-4.0"] > 0 and len(written) == data["counts"]["accepted"]
    shown = ", ".join(f"`{name}` {n:,}" for name, n in found.most_common())
    without = len(written) - sum(found.values())
    assert (
        f"The records' own `license` fields (documents accepted): {shown}; "
        f"without one: {without:,}." in section
    )


def test_the_users_statement_heads_the_card(tmp_path: Path) -> None:
    config = {
        **FAST,
        "output": {
            "card": {
                "license": "cc-by-sa-4.0",
                "pretty_name": "Python docs sections",
                "description": "Sections of the Python documentation, for **SFT**.",
            }
        },
    }
    out = tmp_path / "out"
    qudata.pack_dataset(SAMPLE, out, config=config, formats=["jsonl", "parquet"])
    front, body = split_card((out / "README.md").read_text(encoding="utf-8"))
    assert list(front)[:3] == ["license", "pretty_name", "configs"]  # the Hub's layout
    assert front["license"] == "cc-by-sa-4.0" and front["pretty_name"] == "Python docs sections"
    assert body.startswith(
        "\n# Python docs sections\n\nSections of the Python documentation, for **SFT**.\n"
    )
    assert "Licence: `cc-by-sa-4.0` (stated in `output.card.license`)." in body
    assert "The records' own `license` fields (documents accepted): `PSF-2.0` 1;" in body
    assert manifest(out)["config"]["output"]["card"]["license"] == "cc-by-sa-4.0"
    import datasets

    loaded = datasets.load_dataset(str(out), "jsonl", split="train")
    assert loaded.num_rows == manifest(out)["formats"]["jsonl"]["records"]


def test_the_card_lists_every_warning_counter() -> None:
    data = {
        "qudata_version": "0",
        "config": {
            "quality": {"min_quality_score": None, "missing_score": "keep", "tokenizer": "none"},
            "dedup": {"method": "none"},
            "output": {},
        },
        "counts": {"read": 2, "accepted": 2, "dropped": {}, "warnings": {"a_b": 1, "c": 5}},
        "inputs": [],
        "formats": {"jsonl": {"files": [], "dropped": {}, "warnings": {"message_key_dropped": 2}}},
    }
    card = render_card(data)
    assert "- Warnings (documents kept): `c` 5, `a_b` 1." in card
    assert "- Warnings in `jsonl` (documents kept): `message_key_dropped` 2." in card
