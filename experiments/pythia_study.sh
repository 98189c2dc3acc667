#!/usr/bin/env bash
# The demo's CWoLa / transfer / meta-transfer study on Pythia 8 events (CPU scale).
#   bash experiments/pythia_study.sh [overrides...]
# QCD and the Lambda_D = 10 signals come from ../shared/data/hv-reference; the 12 other
# benchmarks (the transfer and meta-learning sources) are generated here once, only if one of
# their shards is missing: 500 events per model, resumable (finished shards are verified and
# skipped), cached under ${PYTHIA_BENCHMARKS:-data/pythia-benchmarks}; generating needs the
# physics extra (pip install -e '.[physics]'). Your overrides are composed first (a wrong key
# or type is refused in seconds, before any generation); a dry run then validates the whole
# study, files included, before it runs.
set -euo pipefail  # run inside the project environment: . .venv/bin/activate (make venv)
out=${PYTHIA_BENCHMARKS:-data/pythia-benchmarks}
names=(id_lambda1 id_lambda5 id_lambda20 id_lambda30 id_lambda40 id_lambda50
       dd_lambda1 dd_lambda5 dd_lambda20 dd_lambda30 dd_lambda40 dd_lambda50)
python -m jaxws experiment=pythia "data.paths=[../shared/data/hv-reference,$out]" "$@" \
    --cfg job >/dev/null
missing=()
for name in "${names[@]}"; do
  [[ -f "$out/$name/${name}_seed1_n500.h5" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "pythia_study: ${#missing[@]} benchmark(s) missing in $out (${missing[*]}): generating"
  models=$(IFS=,; echo "[${names[*]}]")  # all 12: finished shards are verified and skipped
  python -m jaxws.simulate.generate "models=$models" 'seeds=[1]' events=500 "out=$out"
fi
python -m jaxws experiment=pythia "data.paths=[../shared/data/hv-reference,$out]" dry_run=true "$@"
python -m jaxws experiment=pythia "data.paths=[../shared/data/hv-reference,$out]" "$@"
