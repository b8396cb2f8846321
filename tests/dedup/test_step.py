"""The global dedup step on disk: the streaming deduplicators' verdicts, in bounded memory."""

from __future__ import annotations

import itertools
import pickle
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.config import DedupConfig
from qudata.dedup import DedupVerdict
from qudata.dedup.keys import band_keys
from qudata.dedup.step import DedupSummary, KeyWriter, read_verdicts, resolve
from qudata.engines.local import LocalExecutor
from qudata.errors import OutputError

pytest.importorskip("rensa")

from .oracle import ExactDeduplicator, NearDeduplicator, signatures

Docs = list[tuple[str, str]]


def corpus(n: int, seed: int, *, copies: float = 0.25) -> Docs:
    """Random 60-word texts, with exact copies (case and spacing changed) and near
    copies (one to three words replaced) of earlier ones."""
    rnd = random.Random(seed)
    vocab = ["".join(rnd.choices("abcdefghij", k=rnd.randint(2, 7))) for _ in range(3000)]
    docs: Docs = []
    for i in range(n):
        if docs and rnd.random() < copies:
            words = rnd.choice(docs)[1].split()
            if rnd.random() < 0.3:
                text = "  ".join(words).upper()
            else:
                for _ in range(rnd.randint(1, 3)):
                    words[rnd.randrange(len(words))] = rnd.choice(vocab)
                text = " ".join(words)
        else:
            text = " ".join(rnd.choices(vocab, k=60))
        docs.append((f"doc-{i}", text))
    return docs


def dedup_on_disk(
    directory: Path,
    docs: Docs,
    sizes: Sequence[int],
    config: DedupConfig,
    *,
    memory: int | str | None = None,
    batch: int = 64,
    workers: int = 1,
    executor: Any = None,
) -> tuple[list[DedupVerdict], DedupSummary]:
    """Partitions of ``sizes`` documents (positions with gaps), as the plan runs them."""
    start = 0
    for partition, size in enumerate(sizes):
        writer = KeyWriter(directory, partition, config, memory=memory)
        part = [(3 * j + 1, doc_id, text) for j, (doc_id, text) in enumerate(docs[start:][:size])]
        for at in range(0, len(part), batch):
            writer.add_batch(part[at : at + batch])
        writer.close()
        start += size
    assert start == len(docs)
    summary = resolve(
        directory, len(sizes), config, memory=memory, workers=workers, executor=executor
    )
    verdicts: list[DedupVerdict] = []
    for partition, size in enumerate(sizes):
        found = read_verdicts(directory, partition)
        assert list(found) == [3 * j + 1 for j in range(size)]
        verdicts += [found[3 * j + 1] for j in range(size)]
    return verdicts, summary


def test_exact_verdicts_are_the_streaming_ones_in_many_runs(tmp_path: Path) -> None:
    docs = corpus(1500, seed=1)
    expected = ExactDeduplicator().check_batch(docs)
    config = DedupConfig(method="exact")
    verdicts, summary = dedup_on_disk(tmp_path, docs, [700, 1, 799], config, memory=32_000)
    assert verdicts == expected
    assert summary.ranges > 1
    assert summary.duplicates == sum(v.duplicate_of is not None for v in expected)
    assert summary.duplicates > 50


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(
        st.sampled_from(["a b", "A  b", "c", "c d", " C ", "é", "e\u0301", "x"]), max_size=60
    ),
    cuts=st.lists(st.integers(0, 60), max_size=4),
    memory=st.sampled_from([4096, 20_000, "1GB"]),
)
def test_exact_verdicts_hold_for_any_partitioning(
    texts: list[str], cuts: list[int], memory: int | str
) -> None:
    docs = [(f"d{i}", t) for i, t in enumerate(texts)]
    bounds = sorted({min(c, len(docs)) for c in cuts} | {0, len(docs)})
    sizes = [b - a for a, b in itertools.pairwise(bounds)] or [0]
    with tempfile.TemporaryDirectory() as tmp:
        verdicts, _ = dedup_on_disk(Path(tmp), docs, sizes, DedupConfig(), memory=memory)
    assert verdicts == ExactDeduplicator().check_batch(docs)


def test_near_verdicts_are_the_streaming_ones_whatever_the_budget(tmp_path: Path) -> None:
    docs = corpus(2000, seed=2)
    expected = NearDeduplicator(0.8).check_batch(docs)
    assert sum(v.reason == "duplicate_near" for v in expected) > 100
    config = DedupConfig(method="near")
    small, summary = dedup_on_disk(tmp_path / "small", docs, [500, 900, 600], config, memory=40_000)
    large, _ = dedup_on_disk(tmp_path / "large", docs, [2000], config)
    assert small == expected
    assert large == expected
    # the small budget did force many runs and ranges
    assert summary.ranges > 10
    assert summary.near_duplicates == sum(v.reason == "duplicate_near" for v in expected)
    assert summary.exact_duplicates == sum(v.reason == "duplicate_exact" for v in expected)


def test_a_partition_writes_runs_no_larger_than_its_share_of_the_budget(tmp_path: Path) -> None:
    docs = corpus(800, seed=6)
    writer = KeyWriter(tmp_path, 0, DedupConfig(method="near"), memory=80_000)
    for at in range(0, len(docs), 50):
        writer.add_batch([(i, d, t) for i, (d, t) in enumerate(docs[at : at + 50], at)])
    writer.close()
    runs = sorted(tmp_path.glob("000000-*.run"))
    # a run is written once the buffer reaches memory / 8: at most one batch more
    batch = 50 * (24 + 16 * 16)
    assert len(runs) > 10
    assert all(path.stat().st_size <= 80_000 // 8 + batch for path in runs)
    assert sum(path.stat().st_size for path in runs) == 800 * (24 + 16 * 16)


def test_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    docs = corpus(600, seed=3)
    config = DedupConfig(method="near")
    one, _ = dedup_on_disk(tmp_path / "one", docs, [200, 400], config, memory=20_000)
    two, summary = dedup_on_disk(
        tmp_path / "two", docs, [200, 400], config, memory=20_000, workers=2
    )
    assert one == two
    assert summary.workers == 2


class Recording:
    """An executor that runs calls here, records them and checks that they pickle."""

    name = "recording"
    workers = 3

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def map(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple[Any, ...]],
        on_done: Callable[[int], None] | None = None,
        consume: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        assert pickle.loads(pickle.dumps(function)) is function  # top-level, by name
        self.calls.append((f"{function.__module__}.{function.__qualname__}", len(calls)))
        return [function(*pickle.loads(pickle.dumps(args))) for args in calls]

    def close(self) -> None:
        raise AssertionError("resolve closes only an executor of its own")


def test_every_step_is_a_call_of_the_executor_given(tmp_path: Path) -> None:
    docs = corpus(300, seed=8)
    recording = Recording()
    config = DedupConfig(method="near")
    verdicts, summary = dedup_on_disk(
        tmp_path, docs, [100, 100, 100], config, memory=8192, executor=recording
    )
    assert verdicts == NearDeduplicator(0.8).check_batch(docs)
    assert summary.workers == 3
    steps = [(name.rsplit(".", 1)[1], n) for name, n in recording.calls]
    ranges = [n for name, n in steps if name in ("exact_range", "bucket_range")]
    assert sum(ranges) == summary.ranges and min(ranges) > 1
    assert [name for name, _ in steps] == [
        "exact_range", "exact_bits", "bucket_range", "first_kept", "assemble", "cluster_sizes"
    ]  # fmt: skip
    # the sequential steps are one call each; the others one per range or partition
    assert [n for _, n in steps][1::2] == [1, 1, 3]
    assert steps[4] == ("assemble", 3)


def test_the_run_s_pool_gives_the_same_verdicts(tmp_path: Path) -> None:
    docs = corpus(600, seed=3)
    config = DedupConfig(method="near")
    alone, _ = dedup_on_disk(tmp_path / "alone", docs, [200, 400], config, memory=20_000)
    pool = LocalExecutor(2)
    try:
        shared, summary = dedup_on_disk(
            tmp_path / "pool", docs, [200, 400], config, memory=20_000, executor=pool
        )
    finally:
        pool.close()
    assert shared == alone
    assert summary.workers == 2


def test_the_first_copy_in_input_order_is_kept_across_partitions(tmp_path: Path) -> None:
    text = "the same words in every copy of it " * 3
    docs = [("p0-a", "unique words one two three four five six"), ("p0-b", text)]
    docs += [("p1-a", text.upper()), ("p2-a", "  " + text)]
    verdicts, summary = dedup_on_disk(tmp_path, docs, [2, 1, 1], DedupConfig(method="near"))
    key = verdicts[1].cluster_key
    assert verdicts[1] == DedupVerdict(None, None, key)
    assert verdicts[2] == verdicts[3] == DedupVerdict("p0-b", "duplicate_exact", key)
    assert summary.cluster_sizes == {1: 1, 3: 1}


def chain(seed: int) -> tuple[str, str, str]:
    """A ~ B ~ C and A not ~ C: three windows of one word sequence, 8 words apart."""
    rnd = random.Random(seed)
    words = ["".join(rnd.choices("abcdefghij", k=6)) for _ in range(120)]
    return " ".join(words[0:100]), " ".join(words[8:108]), " ".join(words[16:116])


def estimated(a: str, b: str) -> float:
    (_, x), (_, y) = signatures([a, b], 128, 5, 1)
    return float(x.jaccard(y))


def test_a_chain_keeps_the_document_not_similar_to_a_kept_one(tmp_path: Path) -> None:
    near = NearDeduplicator(0.8)
    for seed in range(100):
        a, b, c = chain(seed)
        ab, bc, ac = estimated(a, b), estimated(b, c), estimated(a, c)
        if min(ab, bc) >= near.accept > ac:
            break
    else:
        pytest.fail("no chain found")
    docs = [("A", a), ("B", b), ("B-copy", b.upper()), ("C", c)]
    verdicts, summary = dedup_on_disk(tmp_path, docs, [1, 2, 1], DedupConfig(method="near"))
    key_a = verdicts[0].cluster_key
    assert verdicts[1] == DedupVerdict("A", "duplicate_near", key_a, ab)
    # an exact copy of a near duplicate repeats its verdict
    assert verdicts[2] == verdicts[1]
    # C is similar to B only, which is not kept: C is kept
    assert verdicts[3].duplicate_of is None
    assert verdicts == near.check_batch(docs)
    assert summary.cluster_sizes == {3: 1, 1: 1}


def test_spill_files_are_removed_and_counted(tmp_path: Path) -> None:
    docs = corpus(400, seed=4)
    directory = tmp_path / "dedup"
    _, summary = dedup_on_disk(directory, docs, [150, 250], DedupConfig(method="near"), memory=8192)
    left = sorted(p.name for p in directory.iterdir())
    assert left == [f"{p:06d}{s}" for p in (0, 1) for s in (".keys", ".pos", ".verdicts.npz")]
    # at least the signatures: 128 x 4 bytes per document
    assert summary.spill_bytes > 400 * 512 + sum(p.stat().st_size for p in directory.iterdir())


def test_summary_records_the_parameters_and_every_document(tmp_path: Path) -> None:
    docs = corpus(500, seed=5)
    config = DedupConfig(method="near", threshold=0.7, num_perm=64, ngram=3, memory="2MB")
    verdicts, summary = dedup_on_disk(tmp_path, docs, [500], config)
    assert (summary.threshold, summary.permutations, summary.shingle_size) == (0.7, 64, 3)
    assert summary.bands is not None and summary.rows is not None
    assert summary.bands * summary.rows == 64
    assert (summary.seed, summary.memory, summary.method) == (1, 2_000_000, "near")
    assert sum(size * n for size, n in summary.cluster_sizes.items()) == len(docs)
    assert summary.duplicates == sum(v.duplicate_of is not None for v in verdicts)
    near = NearDeduplicator(0.7, num_perm=64, ngram=3).check_batch(docs)
    assert verdicts == near


def test_method_none_keeps_everything(tmp_path: Path) -> None:
    docs = [("a", "x y"), ("b", "x y")]
    verdicts, summary = dedup_on_disk(tmp_path, docs, [2], DedupConfig(method="none"))
    assert [v.duplicate_of for v in verdicts] == [None, None]
    assert verdicts[0].cluster_key == verdicts[1].cluster_key
    assert summary.duplicates == 0 and summary.cluster_sizes == {1: 2}


def test_lookups_and_errors(tmp_path: Path) -> None:
    writer = KeyWriter(tmp_path, 0, DedupConfig())
    writer.add_batch([(5, "a", "x")])
    with pytest.raises(ValueError, match="positions must increase"):
        writer.add_batch([(5, "b", "y")])
    writer.close()
    with pytest.raises(OutputError, match=r"dedup: .*00001.* is missing: the staging folder"):
        resolve(tmp_path, 2, DedupConfig())
    resolve(tmp_path, 1, DedupConfig())
    verdicts = read_verdicts(tmp_path, 0)
    assert len(verdicts) == 1 and 5 in verdicts and 4 not in verdicts
    with pytest.raises(KeyError):
        verdicts[6]


def test_band_keys_are_equal_exactly_when_the_bands_are() -> None:
    rng = np.random.default_rng(0)
    signatures_ = rng.integers(0, 2**32, size=(200, 16), dtype=np.uint32)
    signatures_[1::2, :4] = signatures_[0::2, :4]  # band 0 shared by pairs
    keys = band_keys(signatures_, 4, 4)
    assert (keys[0::2, 0] == keys[1::2, 0]).all()
    assert len(np.unique(keys[:, 1:])) == 200 * 3
    assert len(np.unique(keys[:, 0])) == 100
    assert ((keys >> np.uint64(54)) == np.arange(4, dtype=np.uint64)).all()


def test_the_memory_option_is_a_size() -> None:
    assert DedupConfig(memory="256MB").memory == "256MB"
    with pytest.raises(ValueError, match="at least 1MiB"):
        DedupConfig(memory="100KB")
