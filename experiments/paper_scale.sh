#!/usr/bin/env bash
# The paper-scale study (arXiv:2312.06152 Figs. 3-5) on Pythia events, for GPUs and a cluster:
# experiment=paper_pythia (25x25, Table 2 CNN, 25k SR background, 10 pseudo-experiments x 9
# injections, 20k + 20k test events, 250k + 250k pretraining). Not run by the project yet.
#   bash experiments/paper_scale.sh [overrides]            # generate what is missing, then run
#   DRY=1 bash experiments/paper_scale.sh [overrides]      # print the generation plan only
# 1. The events to generate are computed from the design (experiments/generation_plan.py, the
#    dry run's arithmetic): the pseudo-experiments draw 25k of the SR background pool each, so
#    the 250k source events they never draw need a pool of about 1.37M SR events: about 2.8M
#    stored QCD events in 56 shards, and 28.5k events for each of the 14 signal models. At the
#    measured 2.4k stored QCD events per minute on 2 cores (../shared/data/qcd-extra: 85,472
#    in 36 min) that is about 19 days on this CPU: use a cluster (hydra/launcher=slurm
#    with -m, one job per shard). Shards already there are verified and skipped.
# 2. The study's own dry run (data sizes included), then the three methods on the same
#    pseudo-experiments (GPU: the Table 2 CNN costs 1.73 s per step on 2 CPU cores).
set -euo pipefail  # run inside the project environment: . .venv/bin/activate (make venv)
out=${PYTHIA_PAPER:-data/pythia}
plan=$(python experiments/generation_plan.py experiment=paper_pythia "data.paths=[$out]" "$@")
if [ -n "${DRY:-}" ]; then echo "$plan"; exit 0; fi
while read -r args; do
  # shellcheck disable=SC2086  # the plan's arguments are split on purpose
  python -m jaxws.simulate.generate $args "out=$out"
done <<< "$plan"
python -m jaxws experiment=paper_pythia "data.paths=[$out]" dry_run=true "$@"
python -m jaxws experiment=paper_pythia "data.paths=[$out]" "$@"
