"""Exact and near duplicate detection: normalisation, first copy kept, clusters, errors."""

from __future__ import annotations

import builtins
import json
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from qudata.config import DedupConfig
from qudata.dedup import DedupVerdict
from qudata.dedup.files import lsh_bands
from qudata.dedup.keys import KeyWriter
from qudata.dedup.text import exact_key, normalize_text, shingles
from qudata.errors import MissingExtraError

from .oracle import ExactDeduplicator, NearDeduplicator

VOCAB = [f"{w}{i}" for w in ("alpha", "beta", "gamma", "delta", "omega") for i in range(60)]


def words(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [rnd.choice(VOCAB) for _ in range(n)]


TEXT = " ".join(words(200, 1))
ONE_EDIT = TEXT.replace(TEXT.split()[100], "CHANGED", 1)
UNRELATED = " ".join(words(200, 2))


def ids(verdicts: list[DedupVerdict]) -> list[str | None]:
    return [v.duplicate_of for v in verdicts]


# --- normalisation and the exact key -------------------------------------------------


def test_normalize_text() -> None:
    assert normalize_text("  Hello\t\n  WORLD  ") == "hello world"
    assert normalize_text("Straße") == "strasse"  # casefold, not lower
    assert normalize_text("") == ""


def test_nfc_and_nfd_have_the_same_key() -> None:
    nfc = "Café crème brûlée"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert exact_key(nfc) == exact_key(nfd)


def test_case_and_whitespace_do_not_change_the_key() -> None:
    assert exact_key("Hello World") == exact_key("  hello \n\n WORLD\t")
    assert exact_key("hello world") != exact_key("hello  worlds")
    assert len(exact_key("x")) == 16


@given(st.lists(st.text(alphabet="abcXYZ éÉ", min_size=1, max_size=8), min_size=1, max_size=12))
def test_whitespace_and_case_permutations_keep_the_key(tokens: list[str]) -> None:
    base = " ".join(tokens)
    rnd = random.Random(len(base))
    spaced = "".join(t + rnd.choice([" ", "\t", "\n", "  \r\n "]) for t in tokens)
    recased = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in spaced)
    assert exact_key(recased) == exact_key(base)
    assert exact_key(f" \n{base.swapcase()}\t ") == exact_key(base)


# --- exact ---------------------------------------------------------------------------


def test_exact_keeps_first_and_names_it() -> None:
    dedup = ExactDeduplicator()
    verdicts = [
        dedup.check("a", "Hello World"),
        dedup.check("b", "hello   world"),
        dedup.check("c", "Something else"),
        dedup.check("d", "HELLO WORLD"),
    ]
    assert ids(verdicts) == [None, "a", None, "a"]
    assert [v.reason for v in verdicts] == [None, "duplicate_exact", None, "duplicate_exact"]
    assert verdicts[0].cluster_key == verdicts[1].cluster_key == verdicts[3].cluster_key
    assert verdicts[0].cluster_key == exact_key("hello world").hex()
    assert verdicts[2].cluster_key != verdicts[0].cluster_key


def test_exact_same_id_twice_is_still_a_duplicate() -> None:
    dedup = ExactDeduplicator()
    assert dedup.check("a", "text").duplicate_of is None
    assert dedup.check("a", "text").duplicate_of == "a"


def test_exact_batch_equals_one_by_one() -> None:
    items = [(f"d{i}", f"text {i % 7}") for i in range(40)]
    single = ExactDeduplicator()
    assert ExactDeduplicator().check_batch(items) == [single.check(i, t) for i, t in items]


def test_verdict_is_frozen() -> None:
    verdict = DedupVerdict(None, None, "00")
    with pytest.raises(AttributeError):
        verdict.reason = "x"  # type: ignore[misc]


# --- near ----------------------------------------------------------------------------


def test_lsh_bands_for_the_default() -> None:
    bands, rows = lsh_bands(0.8, 128)
    assert bands * rows == 128
    assert (bands, rows) == (16, 8)
    assert lsh_bands(1.0, 128) == (1, 128)


def test_shingles() -> None:
    assert shingles("a b c", 5) == ["a b c"]
    assert shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]


def test_near_finds_a_one_word_edit_and_keeps_unrelated() -> None:
    dedup = NearDeduplicator()
    keep, edit, other = (dedup.check(*x) for x in [("a", TEXT), ("b", ONE_EDIT), ("c", UNRELATED)])
    assert keep.duplicate_of is None
    assert (edit.duplicate_of, edit.reason) == ("a", "duplicate_near")
    assert edit.cluster_key == keep.cluster_key == exact_key(TEXT).hex()
    assert other.duplicate_of is None and other.cluster_key != keep.cluster_key


def test_near_does_exact_first() -> None:
    dedup = NearDeduplicator()
    assert dedup.check("a", TEXT).duplicate_of is None
    verdict = dedup.check("b", TEXT.upper())
    assert (verdict.duplicate_of, verdict.reason) == ("a", "duplicate_exact")


def test_near_chain_maps_to_the_representative() -> None:
    second = ONE_EDIT.replace(TEXT.split()[20], "AGAIN", 1)
    items = [("a", TEXT), ("b", ONE_EDIT), ("c", second), ("d", ONE_EDIT), ("e", UNRELATED)]
    verdicts = NearDeduplicator().check_batch(items)
    assert ids(verdicts) == [None, "a", "a", "a", None]
    # "d" is an exact copy of a near duplicate: it names the kept document, joins its cluster
    assert verdicts[3].reason == "duplicate_near"
    assert len({v.cluster_key for v in verdicts[:4]}) == 1
    assert verdicts[4].cluster_key != verdicts[0].cluster_key


def test_near_batch_compares_within_the_batch_and_equals_one_by_one() -> None:
    items = [("a", TEXT), ("b", UNRELATED), ("c", ONE_EDIT), ("d", UNRELATED + " extra")]
    single = NearDeduplicator()
    batch = NearDeduplicator().check_batch(items)
    assert batch == [single.check(i, t) for i, t in items]
    assert ids(batch) == [None, None, "a", "b"]


def test_near_short_texts() -> None:
    dedup = NearDeduplicator()
    assert dedup.check("a", "two words").duplicate_of is None
    assert dedup.check("b", "two other").duplicate_of is None
    assert dedup.check("c", "").duplicate_of is None
    assert dedup.check("d", "  ").duplicate_of == "c"


def _corpus(n: int) -> list[tuple[str, str]]:
    rnd = random.Random(7)
    items: list[tuple[str, str]] = []
    for i in range(n):
        if items and rnd.random() < 0.3:
            base = rnd.choice(items)[1].split()
            base[rnd.randrange(len(base))] = "edit"
            items.append((f"d{i}", " ".join(base)))
        else:
            items.append((f"d{i}", " ".join(words(120, 1000 + i))))
    return items


def test_near_is_deterministic() -> None:
    items = _corpus(200)
    first = NearDeduplicator().check_batch(items)
    second = NearDeduplicator().check_batch(items)
    assert first == second
    assert sum(v.duplicate_of is not None for v in first) > 30


def test_near_is_deterministic_across_processes() -> None:
    items = _corpus(1200)
    code = (
        "import json, sys\n"
        "from dedup.oracle import NearDeduplicator\n"
        "items = [tuple(x) for x in json.load(sys.stdin)]\n"
        "d = NearDeduplicator()\n"
        "print(json.dumps([[v.duplicate_of, v.cluster_key] for v in d.check_batch(items)]))\n"
        "d.close()\n"
    )
    runs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env["PYTHONHASHSEED"] = hash_seed
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(items),
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    local = NearDeduplicator().check_batch(items)
    assert runs[0] == runs[1] == [[v.duplicate_of, v.cluster_key] for v in local]


def test_missing_rensa_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "rensa":
            raise ImportError("No module named 'rensa'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingExtraError, match=r"pip install 'qudata\[near\]'") as info:
        KeyWriter(tmp_path, 0, DedupConfig(method="near"))
    assert "rensa" in str(info.value)
    assert isinstance(info.value, ImportError)


# --- configuration -------------------------------------------------------------------


def test_unknown_method_lists_the_choices() -> None:
    with pytest.raises(ValidationError, match="'none', 'exact' or 'near'"):
        DedupConfig(method="fuzzy")  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, float("nan")])
def test_threshold_out_of_range(threshold: float) -> None:
    with pytest.raises(ValidationError, match="threshold"):
        DedupConfig(threshold=threshold)


def test_threshold_one_is_allowed() -> None:
    assert DedupConfig(method="near", threshold=1.0).threshold == 1.0
