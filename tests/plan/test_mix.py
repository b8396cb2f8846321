"""Mixing by token share: shares within 1% (or a document), seeded, accounted, split-stable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import qudata
from qudata.cli import cli
from qudata.errors import ConfigError
from qudata.plan.mix import MixPlanner

WORDS = ["river", "stone", "cloud", "field", "light", "metal", "paper", "water"]


def write_source(folder: Path, name: str, docs: int, words: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    rows = [
        {"id": f"{name}-{n}", "text": " ".join(WORDS[(n + k) % 8] for k in range(words)) + f" {n}"}
        for n in range(docs)
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def mixed(tmp_path: Path, **mix: Any) -> tuple[dict[str, Any], Path]:
    web = write_source(tmp_path / "web", "web", 300, 12)
    code = write_source(tmp_path / "code", "code", 200, 40)
    config = {
        "mix": {"sources": [{"path": str(web), "weight": 0.5}, {"path": str(code), "weight": 0.5}],
                **mix},
        "output": {"split": {"train": 0.8, "validation": 0.2}},
    }  # fmt: skip
    out = tmp_path / "out"
    report = qudata.pack_dataset([], out, config=config, formats=["jsonl"])
    assert report.balanced()
    return orjson.loads((out / "manifest.json").read_bytes()), out


def close_enough(source: dict[str, Any], total: int, largest: int) -> bool:
    """Within 1% of its weight, or within one document's tokens."""
    return abs(source["share"] - source["weight"]) <= max(0.01, largest / total)


def test_without_a_target_the_scarcest_source_is_kept_whole(tmp_path: Path) -> None:
    manifest, _ = mixed(tmp_path)
    web, code = manifest["mix"]["sources"]
    assert web["tokens"] == web["available_tokens"] and web["repeated"] == 0
    assert code["tokens"] < code["available_tokens"] and code["downsampled"] > 0
    assert manifest["counts"]["dropped"]["mix_downsampled"] == code["downsampled"]
    for source in (web, code):
        assert close_enough(source, manifest["mix"]["tokens"], 45)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Mix" in card and "web.jsonl" in card
    assert "<h2>Mix</h2>" in (tmp_path / "out" / "report.html").read_text()


def test_a_target_repeats_the_scarce_source_and_keeps_its_split(tmp_path: Path) -> None:
    manifest, out = mixed(tmp_path, target_tokens=12_000, seed=3)
    web, code = manifest["mix"]["sources"]
    assert web["available_tokens"] < 6_000 < code["available_tokens"]
    assert web["repeated"] > 0 and web["epochs"] == 1 and web["downsampled"] == 0
    assert code["repeated"] == 0 and code["downsampled"] > 0
    assert abs(manifest["mix"]["tokens"] - 12_000) <= 45
    for source in (web, code):
        assert close_enough(source, manifest["mix"]["tokens"], 45)
    # every copy of a repeated document is in the same split
    split_of: dict[str, set[str]] = {}
    for path in sorted((out / "jsonl").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            text = orjson.loads(line)["text"]
            split_of.setdefault(text, set()).add(path.name.split("-")[0])
    assert all(len(s) == 1 for s in split_of.values())
    records = manifest["formats"]["jsonl"]["records"]
    assert records == manifest["formats"]["jsonl"]["documents"] + web["repeated"] + code["repeated"]


def test_the_mix_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    first, out1 = mixed(tmp_path / "a", target_tokens=15_000, seed=7)
    second, out2 = mixed(tmp_path / "b", target_tokens=15_000, seed=7)
    _, out3 = mixed(tmp_path / "c", target_tokens=15_000, seed=8)
    files = sorted(p.name for p in (out1 / "jsonl").iterdir())
    for name in files:
        assert (out1 / "jsonl" / name).read_bytes() == (out2 / "jsonl" / name).read_bytes()

    def shares(m: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in s.items() if k != "path"} for s in m["mix"]["sources"]]

    assert shares(first) == shares(second)
    # another seed samples other documents
    assert any(
        (out1 / "jsonl" / n).read_bytes() != (out3 / "jsonl" / n).read_bytes() for n in files
    )


def test_planner_shares_to_the_token() -> None:
    planner = MixPlanner([0.7, 0.3], seed=0, target_tokens=10_000)
    for n in range(5000):
        planner.observe(0, f"a{n}", 3)
        planner.observe(1, f"b{n}", 5)
    plan = planner.plan()
    for source, size in ((0, 3), (1, 5)):
        for n in range(5000):
            plan.record(source, size, plan.copies(source, f"{'ab'[source]}{n}"))
    a, b = (s.written_tokens for s in plan.sources)
    assert abs(a - 7000) <= 3 * 3 and abs(b - 3000) <= 3 * 5


def test_mix_needs_tokens_and_no_other_inputs(tmp_path: Path) -> None:
    web = write_source(tmp_path, "web", 3, 5)
    mix = {"sources": [{"path": str(web), "weight": 1.0}]}
    with pytest.raises(ConfigError, match="tokenizer"):
        qudata.pack_dataset(
            [], tmp_path / "o", config={"mix": mix, "quality": {"tokenizer": "none"}}
        )
    with pytest.raises(ConfigError, match="either"):
        qudata.pack_dataset([str(web)], tmp_path / "o", config={"mix": mix})


def test_cli_mix(tmp_path: Path) -> None:
    web = write_source(tmp_path / "web", "web", 50, 12)
    code = write_source(tmp_path / "code", "code", 50, 40)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["pack", "--mix", f"{web}=0.6", "--mix", f"{code}=0.4", "--target-tokens", "2K",
              "-o", str(out), "-f", "jsonl", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert manifest["mix"]["target_tokens"] == 2000
    assert [s["weight"] for s in manifest["mix"]["sources"]] == [0.6, 0.4]
    bad = CliRunner().invoke(cli, ["pack", "--mix", "nowhere", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "PATH=WEIGHT" in bad.output
    none = CliRunner().invoke(cli, ["pack", "-o", str(tmp_path / "y")])
    assert none.exit_code == 2 and "give INPUTS" in none.output


def test_cli_mix_sources_from_the_config(tmp_path: Path) -> None:
    """``mix.sources`` in a configuration replaces the INPUT arguments, as documented."""
    web = write_source(tmp_path / "web", "web", 50, 12)
    code = write_source(tmp_path / "code", "code", 50, 40)
    config = tmp_path / "mix.yaml"
    config.write_text(
        f"mix:\n  target_tokens: 2K\n  sources:\n    - {{path: '{web}', weight: 0.6}}\n"
        f"    - {{path: '{code}', weight: 0.4}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["pack", "--config", str(config), "-o", str(out), "-f", "jsonl", "-q"]
    )
    assert result.exit_code == 0, result.output
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert [s["weight"] for s in manifest["mix"]["sources"]] == [0.6, 0.4]
    both = CliRunner().invoke(
        cli, ["pack", str(web), "--config", str(config), "-o", str(tmp_path / "z")]
    )
    assert both.exit_code == 2
    assert "either as INPUT arguments or as mix.sources" in both.output
