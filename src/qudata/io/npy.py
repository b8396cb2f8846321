"""A 1-D ``.npy`` file of token ids whose length is known only at the end, in bounded memory.

The ``.npy`` header holds the array's shape, so the ids are streamed to a temporary file
first; :meth:`NpyWriter.close` writes the header numpy's own ``np.save`` would write for
that length, then copies the ids after it (one sequential pass, 1 MiB at a time). The
file is the same, byte for byte, as ``np.save(path, np.asarray(ids, dtype))``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qudata.account import FileStats
from qudata.io.writers import AtomicFile

if TYPE_CHECKING:
    import numpy as np

__all__ = ["NPY_DTYPE", "NpyWriter", "npy_header"]

#: The ids' type unless told otherwise (LLMBuilder's ``TextDataset`` reads int32).
NPY_DTYPE = "<i4"

_CHUNK = 1 << 20


def npy_header(dtype: np.dtype[Any], length: int) -> bytes:
    """The header ``np.save`` writes for a 1-D C-order array of ``length`` ``dtype`` values."""
    import numpy as np

    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {**header, "shape": (length,)})
    return buffer.getvalue()


class NpyWriter:
    """Writes one split's token ids as ``<directory>/<split>.npy`` (one 1-D array).

    The writer interface of :class:`qudata.io.shards.ShardedWriter`: a document's records
    are lists of ids, appended in the order they come.

    Example::

        writer = NpyWriter(Path("out/llmbuilder"), "train", relative_to=Path("out"))
        writer.write_document([[17, 4, 3]], tokens=3)
        writer.close()   # [FileStats(path="llmbuilder/train.npy", tokens=3, ...)]
    """

    def __init__(
        self, directory: Path, split: str, *, relative_to: Path, dtype: str = NPY_DTYPE
    ) -> None:
        import numpy as np

        self.path = directory / f"{split}.npy"
        self.split, self.relative_to = split, relative_to
        self.dtype = np.dtype(dtype)
        self._ids_path = directory / f".{split}.npy.ids-{os.getpid()}"
        self._ids: Any = None
        self._stats = FileStats(path="", split=split)
        self._length = 0

    def write_document(self, records: Sequence[Sequence[int]], *, tokens: int = 0) -> None:
        """Append a document's ids (every record converted before any is written)."""
        import numpy as np

        data = [np.asarray(ids, dtype=self.dtype) for ids in records]
        if self._ids is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._ids = open(self._ids_path, "wb")  # noqa: SIM115 - closed in close()/abort()
        for array in data:
            self._ids.write(array.tobytes())
            self._length += len(array)
        self._stats.documents += 1
        self._stats.records += len(records)
        self._stats.tokens += tokens

    def write_encoded(self, data: bytes, *, tokens: Sequence[int]) -> None:
        """Append a document's ids already as bytes of the dtype (map 2's part);
        ``tokens``: each record's ids."""
        if sum(tokens) * self.dtype.itemsize != len(data):
            raise ValueError(f"{len(data)} bytes are not records of {sum(tokens)} ids")
        if self._ids is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._ids = open(self._ids_path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._ids.write(data)
        self._length += len(data) // self.dtype.itemsize
        self._stats.documents += 1
        self._stats.records += len(tokens)
        self._stats.tokens += sum(tokens)

    def abort(self) -> None:
        """Remove what was written (the run failed)."""
        if self._ids is not None:
            self._ids.close()
        self._ids_path.unlink(missing_ok=True)

    def close(self) -> list[FileStats]:
        """Write the ``.npy`` (header, then the ids) and give its statistics."""
        if self._ids is None:
            return []
        self._ids.close()
        with AtomicFile(self.path) as out, open(self._ids_path, "rb") as ids:
            out.write(npy_header(self.dtype, self._length))
            while chunk := ids.read(_CHUNK):
                out.write(chunk)
        self._ids_path.unlink()
        stats = self._stats
        stats.path = self.path.relative_to(self.relative_to).as_posix()
        stats.bytes, stats.sha256 = out.bytes_written, out.sha256
        return [stats]
