#!/usr/bin/env bash
# Issue 16's GPU check, one command on a fresh GPU machine (minutes): makes a venv, installs
# serving with EXTRA=gpu (onnxruntime-gpu) and training, trains dcgan for 300 steps on CUDA at
# fp32 and bf16 (and 50 on the CPU as the baseline), exports with fp16 graphs, serves the model
# with real `bentoml serve` processes (CUDA fp32, CUDA fp16, CPU), times GET /generate n=64 at
# concurrency 8, prints one JSON line and stops every server it started.
#
#   bash benchmarks/gpu_check.sh                              # the check; any flag goes to gpu_check.py
#   bash benchmarks/gpu_check.sh --device cpu --steps 3 --data digits --serve cpu_fp32   # dry run, no GPU
#
# Environment:
#   PYTHON=python3   interpreter the venv is made from. Its packages stay visible (also when it is
#                    itself a venv), so a preinstalled CUDA torch is used as it is, not reinstalled.
#   VENV=.venv-gpu   the venv made and installed into
#   WHEELS=DIR       install from the wheels in DIR only (machines with no package index)
#   NO_INSTALL=1     use $VENV as it is
#   JSON_OUT=FILE    also write the JSON line to FILE
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-gpu}
export PIP_DISABLE_PIP_VERSION_CHECK=1 BENTOML_DO_NOT_TRACK=True PYTHONUNBUFFERED=1

device=cuda
prev=
for arg in "$@"; do
  case "$arg" in
    --device=*) device=${arg#--device=} ;;
    *) [ "$prev" = "--device" ] && device=$arg ;;
  esac
  prev=$arg
done
case "$device" in cpu) extra=serve ;; *) extra=gpu ;; esac

if [ -z "${NO_INSTALL:-}" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
    # a venv made from a venv sees only the base interpreter's packages: add the parent venv's
    parent=$("$PYTHON" -c 'import site, sys; print(":".join(site.getsitepackages()) if sys.prefix != sys.base_prefix else "")')
    if [ -n "$parent" ]; then
      site=$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')
      tr ':' '\n' <<<"$parent" >"$site/_gpu_check_parent.pth"
    fi
  fi
  if [ -n "${WHEELS:-}" ]; then
    export PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELS
  fi
  # serving exactly as `make serve EXTRA=gpu` installs it (onnxruntime-gpu in place of onnxruntime)
  make --no-print-directory VENV="$VENV" EXTRA="$extra" "$VENV/.serve-installed"
  # training: keep a torch that already sees the GPU (a CUDA build matched to this driver); else install the pinned one
  if "$VENV/bin/python" -c "import sys, torch, torchvision; sys.exit(0 if '$device' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q onnx onnxscript tqdm scikit-learn scipy
  else
    "$VENV/bin/python" -m pip install -q -e ".[$extra,train]"
  fi
fi

args=("$@")
if [ -n "${JSON_OUT:-}" ]; then
  args+=(--json-out "$JSON_OUT")
fi
exec "$VENV/bin/python" benchmarks/gpu_check.py "${args[@]}"
