#!/usr/bin/env bash
# GPU benchmark and checks of issues 10 and 12, sized to finish within 9 minutes on one GPU
# (an H100/H200 class device). Prints markdown tables for bench/README.md:
#
# 1. float32 numerics on the GPU (TF32 or not): a matrix product and NPLM's t against the CPU
#    (bench/gpu_checks.py);
# 2. one paper-CNN training step, E = 1: `lax` (cuDNN convolutions, the library's choice off
#    CPU) against `im2col`, each at full float32 and at TF32, and PyTorch with cuDNN on the
#    same GPU;
# 3. paper CNN events/s per member at E = 1, 8, 32, vmapped and `lax.map`ped, with XLA memory
#    per member; smaller training steps (paper CNN at batch 100, slim CNN) at E = 1, 8, which
#    place `TrainConfig.member_map`'s threshold;
# 4. NPLM toys at N_R = 200k: 1 toy, vmapped and sequential chunks, the minimal-loop floor,
#    kernel NPLM;
# 5. the engine's equality tests (ensemble member == solo fit, conv forms == lax) on the GPU.
#
#   bash bench/gpu.sh 2>&1 | tee gpu-log.md
#
# Needs jax with CUDA. Python packages the tests need but the GPU image may lack (hydra-core,
# omegaconf, antlr4) are put on PYTHONPATH from $JAXWS_EXTRA_SITE when it is set. Each step
# has its own time limit so that one slow case cannot use up the budget.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${JAXWS_EXTRA_SITE:+:$JAXWS_EXTRA_SITE}${PYTHONPATH:+:$PYTHONPATH}"
export JAXWS_CACHE_DIR="${JAXWS_CACHE_DIR:-/tmp/jaxws-xla-gpu}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

echo "## GPU benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
JAX_PLATFORMS=cuda "$PY" -c "import jax, flax, optax; print('jax', jax.__version__, \
'flax', flax.__version__, 'optax', optax.__version__, jax.default_backend(), jax.devices())" \
  || { echo "no GPU backend: not run"; exit 1; }

echo; echo "### 1. float32 numerics on the GPU"
JAX_PLATFORMS=cuda,cpu timeout 60 "$PY" bench/gpu_checks.py --toys 8 --epochs 2000 \
  || echo "(numerics: failed or stopped at 60 s)"

export JAX_PLATFORMS=cuda
echo; echo "### 2. Paper CNN step, E = 1: full float32 (jaxws' default) and TF32, against PyTorch"
timeout 90 "$PY" bench/compare.py step --model paper --forms lax,im2col \
  --precisions highest,tensorfloat32 --torch --torch-device cuda --steps 10 --rounds 3 \
  || echo "(paper CNN step: stopped at 90 s)"

echo; echo "### 3. Paper CNN, E = 1, 8, 32 (batch 500, 5 steps per member per call)"
timeout 130 "$PY" bench/compare.py members --model paper --members 1,8,32 --modes vmap,map \
  --forms lax --steps 5 --rounds 3 || echo "(paper CNN members: stopped at 130 s)"

echo; echo "### 3b. Smaller steps: paper CNN at batch 100, slim CNN at batch 500 (E = 1, 8)"
timeout 75 "$PY" bench/compare.py members --model paper --batch-size 100 --members 1,8 \
  --modes vmap,map --forms lax --steps 5 --rounds 3 || echo "(stopped at 75 s)"
timeout 60 "$PY" bench/compare.py members --model slim --batch-size 500 --members 1,8 \
  --modes vmap,map --forms lax --steps 5 --rounds 3 || echo "(stopped at 60 s)"

echo; echo "### 4. NPLM toys at N_R = 200k"
timeout 70 "$PY" bench/nplm_toys.py --n-reference 200000 --epochs 200 --chunks 32 256 \
  --repetitions 3 || echo "(NPLM: stopped at 70 s)"

echo; echo "### 5. Equality tests on the GPU (ensemble member == solo fit, conv forms == lax)"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider --tb=line tests/models/test_layers.py \
  tests/models/test_precision.py tests/train/test_member_map.py tests/train/test_engine.py \
  tests/train/test_learner.py tests/stats/test_nplm.py \
  -k "conv or pool or precision or member_map or step_flops or equals_solo or ensemble_of_cnns \
or frozen_feature or compacted or queued_ensemble or ensemble_member_equals_single_fit" \
  || echo "(tests: rc $?)"
