"""CI check of a bare install (``pip install -e .``, no extras): every command gated by an
extra fails with one ``Error:`` line naming ``pip install 'qudata[EXTRA]'``, exit 2.

Run by ``.ci/run`` with the bare environment's Python; not collected by pytest (its name
does not start with ``test_``). Prints one line per case; exits 1 if any case fails.

    python tests/bare_install_check.py
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

__all__: list[str] = []

EXTRA_MODULES = {
    "near": "rensa",
    "parquet": "pyarrow",
    "tokenizers": "tokenizers",
    "ray": "ray",
    "s3": "s3fs",
    "language": "py3langid",
    "llmbuilder": "sentencepiece",
}


def _cases(folder: Path) -> list[tuple[str, str, list[str]]]:
    docs = folder / "docs.jsonl"
    docs.write_text('{"text": "hello world"}\n{"text": "another document"}\n')
    table = folder / "docs.parquet"
    table.write_bytes(b"PAR1 not read: pyarrow is imported first PAR1")
    tokenizer = folder / "tokenizer.json"
    tokenizer.write_text("{}")
    out = str(folder / "out")
    common = ["--tokenizer", "none", "-q"]
    language = folder / "language.yaml"
    language.write_text("quality:\n  languages: [en]\n")
    sentencepiece = folder / "sentencepiece.yaml"  # the model is not read: the import fails first
    sentencepiece.write_text(f"pack:\n  llmbuilder:\n    tokenizer: {folder / 'tokenizer.model'}\n")
    return [
        ("near", "pack --dedup near", ["pack", str(docs), "-o", out, "--dedup", "near", *common]),
        ("parquet", "pack docs.parquet", ["pack", str(table), "-o", out, *common]),
        ("parquet", "pack -f parquet", ["pack", str(docs), "-o", out, "-f", "parquet", *common]),
        ("parquet", "pack -f packed", ["pack", str(docs), "-o", out, "-f", "packed", *common]),
        ("parquet", "validate docs.parquet", ["validate", str(table), "--format", "jsonl"]),
        (
            "tokenizers",
            "pack --tokenizer tokenizer.json",
            ["pack", str(docs), "-o", out, "--tokenizer", str(tokenizer), "-q"],
        ),
        ("ray", "pack --engine ray", ["pack", str(docs), "-o", out, "--engine", "ray", *common]),
        (
            "s3",
            "pack s3://bucket/docs.jsonl",
            ["pack", "s3://bucket/docs.jsonl", "-o", out, *common],
        ),
        (
            "language",
            "pack with quality.languages",
            ["pack", str(docs), "-o", out, "-c", str(language), *common],
        ),
        (
            "llmbuilder",
            "pack -f llmbuilder with pack.llmbuilder.tokenizer",
            ["pack", str(docs), "-o", out, "-f", "llmbuilder", "-c", str(sentencepiece), *common],
        ),
    ]


def main() -> int:
    installed = [e for e, m in EXTRA_MODULES.items() if importlib.util.find_spec(m) is not None]
    if installed:
        print(f"not a bare install: {', '.join(installed)} importable", file=sys.stderr)
        return 1
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for extra, label, args in _cases(Path(tmp)):
            done = subprocess.run(
                [sys.executable, "-m", "qudata", *args], capture_output=True, text=True, timeout=120
            )
            lines = done.stderr.strip().splitlines()
            wanted = f"pip install 'qudata[{extra}]'"
            ok = (
                done.returncode == 2
                and len(lines) == 1
                and lines[0].startswith("Error: ")
                and lines[0].endswith(wanted)
                and not (Path(tmp) / "out").exists()
            )
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} [{extra}] qudata {label}: exit {done.returncode}")
            if not ok:
                print(done.stderr, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
