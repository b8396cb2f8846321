"""Split assignment (seeded hash of the duplicate cluster) and split-name safety."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import qudata
from qudata.cli import cli
from qudata.config import load_config
from qudata.dedup.text import exact_key
from qudata.errors import ConfigError
from qudata.export import splits as splits_module
from qudata.export.splits import SplitAssigner, parse_split

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample.jsonl"
FAST = {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": None}}}
KEYS = [exact_key(f"document number {i}").hex() for i in range(20_000)]


def test_parse_split() -> None:
    assert parse_split("train=0.98,validation=0.01,test=0.01") == {
        "train": 0.98,
        "validation": 0.01,
        "test": 0.01,
    }
    assert list(parse_split(" test = 0.5 , train=0.5")) == ["test", "train"]
    for bad in ("train", "train=x", "train=0.5,,"):
        with pytest.raises(ValueError):
            parse_split(bad)


def test_assignment_follows_the_fractions() -> None:
    splitter = SplitAssigner({"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0)
    counts = Counter(splitter.assign(k) for k in KEYS)
    assert abs(counts["train"] / len(KEYS) - 0.8) < 0.015
    assert abs(counts["validation"] / len(KEYS) - 0.1) < 0.01
    assert abs(counts["test"] / len(KEYS) - 0.1) < 0.01


def test_assignment_is_stable_and_seeded() -> None:
    fractions = {"train": 0.5, "test": 0.5}
    a, b = SplitAssigner(fractions, seed=0), SplitAssigner(fractions, seed=0)
    assert [a.assign(k) for k in KEYS[:500]] == [b.assign(k) for k in KEYS[:500]]
    other = SplitAssigner(fractions, seed=1)
    moved = sum(a.assign(k) != other.assign(k) for k in KEYS[:2000])
    assert 800 < moved < 1200  # another seed reshuffles about half


def test_single_split_needs_no_hash() -> None:
    splitter = SplitAssigner({"all_data": 1.0}, seed=5)
    assert splitter.single and {splitter.assign(k) for k in KEYS[:100]} == {"all_data"}


@settings(max_examples=50, deadline=None)
@given(
    weights=st.lists(st.integers(1, 100), min_size=2, max_size=6),
    seed=st.integers(0, 2**32),
    key=st.text(max_size=40),
)
def test_assign_always_returns_a_configured_split(weights: list[int], seed: int, key: str) -> None:
    total = sum(weights)
    fractions = {f"s{i}": w / total for i, w in enumerate(weights)}
    assert SplitAssigner(fractions, seed=seed).assign(key) in fractions


def test_a_hash_at_the_top_of_the_range_still_gets_a_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """``digest / 2.0**64`` rounds to 1.0 for digests within 2**10 of 2**64 (float has 53
    bits), and ``bisect_right(bounds, 1.0)`` is then one past the last split: IndexError.
    About one document in 2**54 hits it; integer bounds avoid it."""
    splitter = SplitAssigner({"train": 0.5, "test": 0.5}, seed=0)
    monkeypatch.setattr(splits_module.xxhash, "xxh3_64_intdigest", lambda *a, **k: 2**64 - 1)
    assert splitter.assign("any") == "test"


def test_cluster_key_makes_normalised_duplicates_share_a_split() -> None:
    splitter = SplitAssigner({"train": 0.34, "validation": 0.33, "test": 0.33}, seed=0)
    for i in range(200):
        text = f"The quick brown fox number {i} jumps over the lazy dog."
        variants = [text, text.upper(), "  " + text.replace(" ", " \n\t "), text + "\n"]
        assert len({splitter.assign(exact_key(v).hex()) for v in variants}) == 1


# ---------------------------------------------------------------- split names (path safety)

UNSAFE = ["a/b", "..", "../evil", ".hidden", "/abs", "a\\b", "sp ace", "", "x" * 65, "tr\u0430in"]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_split_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        load_config(None, overrides={"output": {"split": {name: 0.5, "ok": 0.5}}})


@pytest.mark.parametrize("name", ["a/b", "..", "../../evil", ".hidden"])
def test_unsafe_split_names_on_the_command_line(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["pack", str(SAMPLE), "-o", str(out), "--split", f"{name}=0.5,train=0.5", "-q"]
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["held-out", "all"])
def test_an_accepted_split_name_loads_with_datasets(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A split name the configuration accepts must be one ``datasets`` can load: it wants
    ``\\w+(\\.\\w+)*`` (no ``-``) and reserves ``all``. Otherwise the card names a split
    that ``load_dataset(OUT_DIR, "jsonl")`` refuses; the name should be a config error."""
    out = tmp_path / "out"
    config: dict[str, Any] = {**FAST, "output": {"split": {"train": 0.5, name: 0.5}}}
    try:
        qudata.pack_dataset(SAMPLE, out, formats=["jsonl"], config=config)
    except ConfigError:
        return
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(str(out), "jsonl", cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", name}
