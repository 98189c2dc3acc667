#!/usr/bin/env bash
# Two prepared calls for a lent GPU (one H100/H200), each sized for one device call:
#   bash experiments/paper_gpu.sh cwola   # experiment=paper_gpu: 25x25, Table 2 CNN, ID Lambda_D = 10,
#                                          # CWoLa and transfer, 5 pseudo-experiments (budget 8 min)
#   bash experiments/paper_gpu.sh nplm    # the NPLM null at the papers' size: N_R = 200k, N(R) = 2k,
#                                          # 1-4-1, clip 9, Adam 1e-3 x 300k epochs, 200 toys in one
#                                          # vmapped chunk (about 5 min at the H200's rate, bench/README.md)
#   bash experiments/paper_gpu.sh dry      # both dry runs (what the test suite runs on a CPU)
# Neither has run on a GPU yet: no device was lent to the session that wrote them. Each call
# prints its tables; copy the run directory (outputs/paper_gpu/<call>) back with the device
# tool's $OUT. Needs jax with CUDA (README, "Installation": the gpu extra).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
cwola=(experiment=paper_gpu tracking=none)
nplm=(experiment=nplm tracking=none method.chunk_size=200 method.n_toys=200
      'method.signal_fractions=[]' method.n_history_toys=0)
case ${1:?usage: bash experiments/paper_gpu.sh cwola|nplm|dry} in
  cwola) $PY -m jaxws "${cwola[@]}" hydra.run.dir=outputs/paper_gpu/cwola "${@:2}"
         cat outputs/paper_gpu/cwola/{thresholds.csv,study.csv} ;;
  nplm) $PY -m jaxws "${nplm[@]}" hydra.run.dir=outputs/paper_gpu/nplm "${@:2}" ;;
  dry) $PY -m jaxws "${cwola[@]}" dry_run=true "${@:2}"
       $PY -m jaxws "${nplm[@]}" dry_run=true "${@:2}" ;;
  *) echo "error: unknown call '$1' (cwola, nplm or dry)" >&2; exit 2 ;;
esac
