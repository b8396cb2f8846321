"""Map 1's side of the global dedup step: one partition's keys, signatures and sorted runs.

Per batch, each text is normalised once (:mod:`qudata.dedup.text`): its exact key, and
for near dedup its rensa MinHash over the text's shingles and one key per LSH band.
Positions, keys, ids and signatures are appended to the partition's files at once; exact
and band records are buffered and written as a sorted run whenever they reach the
budget's share, so a partition's memory does not grow with its size.
"""

from __future__ import annotations

import gc
import itertools
import json
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from qudata.config import DedupConfig
from qudata.dedup.files import (
    BAND,
    BAND_HASH_BITS,
    EXACT,
    DedupParams,
    partition_file,
)
from qudata.dedup.runs import ref, write_run
from qudata.dedup.text import exact_key, normalized_key, text_shingles
from qudata.errors import MissingExtraError

__all__ = ["SHINGLES_PER_CALL", "KeyWriter", "band_keys"]

#: Shingles hashed per call of rensa: bounds the shingle lists held at once.
SHINGLES_PER_CALL = 200_000

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise (uint64 arithmetic wraps)."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    mixed: np.ndarray = h ^ (h >> np.uint64(31))
    return mixed


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """``(documents, bands)`` keys: the band number in the high bits, then a hash of
    the band's ``rows`` consecutive values (rensa's banding). Two documents share a
    key exactly when they agree on the band, up to a 2**-54 chance of collision
    (harmless: a candidate is verified on the whole signature)."""
    values = signatures.reshape(len(signatures), bands, rows).astype(np.uint64)
    h = np.broadcast_to(np.arange(bands, dtype=np.uint64) * _GOLDEN, values.shape[:2]).copy()
    with np.errstate(over="ignore"):
        for row in range(rows):
            h = _mix(h ^ values[:, :, row] ^ (np.uint64(row + 1) << np.uint64(32)))
    band = np.arange(bands, dtype=np.uint64) << np.uint64(BAND_HASH_BITS)
    return band | (h >> np.uint64(64 - BAND_HASH_BITS))


class KeyWriter:
    """The dedup keys of one partition's documents, in input order.

    ``memory`` (bytes or a size such as ``"256MB"``) overrides ``dedup.memory``.
    """

    def __init__(
        self,
        directory: Path,
        partition: int,
        dedup: DedupConfig,
        *,
        memory: int | str | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.params = DedupParams.of(dedup, memory)
        self.directory, self.partition = directory, partition
        if self.params.near:
            try:
                import rensa  # noqa: F401
            except ImportError:
                raise MissingExtraError(
                    "near", "rensa", feature="Near-duplicate detection"
                ) from None
        self._files: dict[str, IO[bytes]] = {}  # open across add_batch calls
        try:
            for suffix in (".pos", ".keys", ".ids", ".off") + (
                (".sig",) if self.params.near else ()
            ):
                path = partition_file(directory, partition, suffix)
                self._files[suffix] = open(path, "wb")  # noqa: SIM115 (closed by close, abort)
        except BaseException:
            self.abort()
            raise
        self._count = self._id_bytes = 0
        self._last = -1
        self._exact: list[np.ndarray] = []
        self._bands: list[np.ndarray] = []
        self._buffered = 0
        self._runs = {"exact": 0, "band": 0}

    def add_batch(self, items: Sequence[tuple[int, str, str]]) -> None:
        """``(position in the partition, document id, text compared)`` of each document."""
        if not items:
            return
        # the batch makes hundreds of thousands of short-lived lists and tuples and no
        # reference cycle: the collector's passes over the caller's heap would be waste
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._add(items)
        finally:
            if enabled:
                gc.enable()

    def _add(self, items: Sequence[tuple[int, str, str]]) -> None:
        positions = np.fromiter((p for p, _, _ in items), dtype=np.int64, count=len(items))
        if positions[0] <= self._last or (np.diff(positions) <= 0).any():
            raise ValueError(f"partition {self.partition}: positions must increase")
        self._last = int(positions[-1])
        words: list[list[str]] = []
        if self.params.near:  # the shingles need the words of every text
            words = [unicodedata.normalize("NFC", t).casefold().split() for _, _, t in items]
            keys = b"".join(normalized_key(" ".join(w)) for w in words)
        else:  # one text at a time: no batch of word lists held (a quarter faster)
            keys = b"".join(exact_key(t) for _, _, t in items)
        ids = [doc_id.encode("utf-8", "surrogatepass") for _, doc_id, _ in items]
        ends = self._id_bytes + np.cumsum([len(i) for i in ids], dtype=np.uint64)
        self._id_bytes = int(ends[-1])
        refs = ref(self.partition, np.arange(self._count, self._count + len(items)))
        self._count += len(items)
        positions.tofile(self._files[".pos"])
        self._files[".keys"].write(keys)
        self._files[".ids"].write(b"".join(ids))
        ends.tofile(self._files[".off"])
        halves = np.frombuffer(keys, dtype=">u8").reshape(-1, 2).astype("<u8")
        exact = np.empty(len(items), EXACT)
        exact["key"], exact["lo"], exact["ref"] = halves[:, 0], halves[:, 1], refs
        self._exact.append(exact)
        self._buffered += exact.nbytes
        if self.params.near:
            self._add_signatures(words, refs)
        if self._buffered >= self.params.run_bytes:
            self._flush()

    def _add_signatures(self, words: list[list[str]], refs: np.ndarray) -> None:
        p = self.params
        signatures = np.concatenate(list(self._minhashes(words)))
        signatures.tofile(self._files[".sig"])
        bands = np.empty((len(words), p.bands), BAND)
        bands["key"] = band_keys(signatures, p.bands, p.rows)
        bands["ref"] = refs[:, None]
        self._bands.append(bands.ravel())
        self._buffered += bands.nbytes

    def _minhashes(self, words: list[list[str]]) -> Iterator[np.ndarray]:
        """The MinHash signatures of the texts, ``SHINGLES_PER_CALL`` shingles at a time
        (a batch of Chinese text has about five times the shingles of one of English:
        one per character instead of one per word)."""
        import rensa

        p = self.params
        chunk: list[list[str]] = []
        size = 0
        for i, text in enumerate(words):
            chunk.append(text_shingles(text, p.ngram))
            size += len(chunk[-1])
            if size >= SHINGLES_PER_CALL or i == len(words) - 1:
                matrix = rensa.RMinHash.digest_matrix_from_token_sets(
                    chunk, num_perm=p.num_perm, seed=p.seed
                )
                values = itertools.chain.from_iterable(matrix.to_rows())
                count = len(chunk) * p.num_perm
                yield np.fromiter(values, np.uint32, count).reshape(len(chunk), p.num_perm)
                chunk, size = [], 0

    def _flush(self) -> None:
        for kind, buffer in (("exact", self._exact), ("band", self._bands)):
            if buffer:
                name = f"-{kind[0]}{self._runs[kind]:05d}.run"
                write_run(
                    partition_file(self.directory, self.partition, name),
                    np.concatenate(buffer),
                )
                self._runs[kind] += 1
                buffer.clear()
        self._buffered = 0

    def abort(self) -> None:
        """Close the files, with no summary: the partition failed, its keys are not used."""
        for handle in self._files.values():
            handle.close()

    def close(self) -> None:
        """Write the last runs and the partition's summary (read by ``resolve``)."""
        self._flush()
        for handle in self._files.values():
            handle.close()
        meta: dict[str, Any] = {"documents": self._count, "runs": self._runs}
        path = partition_file(self.directory, self.partition, ".meta.json")
        path.write_text(json.dumps(meta), encoding="utf-8")
