#!/usr/bin/env bash
# GPU benchmark of issue 10, sized to finish within 8 minutes on one GPU (an H100/H200 class
# device): paper CNN events/s per member at E = 1, 8, 32 (vmapped members; `lax` = cuDNN
# convolutions, the library's choice off CPU, against `im2col`), XLA memory per member, and
# NPLM toys per hour (/ 3600 = toys/s) at N_R = 200k. Prints markdown tables for bench/README.md.
#
#   bash bench/gpu.sh > gpu-table.md
#
# Needs jax with CUDA (`pip install -U "jax[cuda12]"`); each step has its own time limit so
# that one slow case cannot use up the budget.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export JAXWS_CACHE_DIR="${JAXWS_CACHE_DIR:-/tmp/jaxws-xla-gpu}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY="${PYTHON:-python}"

echo "## GPU benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())"
if [ "$("$PY" -c 'import jax; print(jax.default_backend())')" != "gpu" ]; then
  echo "no GPU backend: not run"; exit 1
fi

echo; echo "### Paper CNN, E = 1, 8, 32 (batch 500, 5 steps per call)"
timeout 270 "$PY" bench/compare.py members --model paper --members 1,8,32 --modes vmap \
  --forms lax,im2col --steps 5 --rounds 3 || echo "(paper CNN members: stopped at 270 s)"

echo; echo "### Paper CNN step against the other forms, E = 1"
timeout 60 "$PY" bench/compare.py step --model paper --forms lax,im2col,shift --steps 5 \
  --rounds 3 || echo "(paper CNN step: stopped at 60 s)"

echo; echo "### NPLM toys at N_R = 200k"
timeout 120 "$PY" bench/nplm_toys.py --n-reference 200000 --epochs 200 --chunks 1 32 128 \
  --newton-iterations 20 || echo "(NPLM: stopped at 120 s)"
