#!/usr/bin/env bash
# The demo's CWoLa / transfer / meta-transfer study on Pythia 8 events (CPU scale).
# QCD and the Lambda_D = 10 signals come from ../shared/data/hv-reference; the 12 other
# benchmarks (the transfer and meta-learning sources) are generated here once: 500 events per
# model, resumable (finished shards are verified and skipped), cached under
# ${PYTHIA_BENCHMARKS:-data/pythia-benchmarks}. Generating them took 2 min 40 s on the 2-core CPU
# (one process, machine shared with other jobs); the study takes about as long as `make demo`.
set -euo pipefail  # run inside the project environment: . .venv/bin/activate (make venv)
out=${PYTHIA_BENCHMARKS:-data/pythia-benchmarks}
models='[id_lambda1,id_lambda5,id_lambda20,id_lambda30,id_lambda40,id_lambda50,dd_lambda1,dd_lambda5,dd_lambda20,dd_lambda30,dd_lambda40,dd_lambda50]'
python -m jaxws experiment=pythia "data.paths=[../shared/data/hv-reference,$out]" dry_run=true "$@" \
  || python -m jaxws.simulate.generate "models=$models" 'seeds=[1]' events=500 "out=$out"
python -m jaxws experiment=pythia "data.paths=[../shared/data/hv-reference,$out]" "$@"
