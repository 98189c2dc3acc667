#!/usr/bin/env bash
# arXiv:2312.06152 Figs. 3-5 at the paper's luminosity on the 2-core CPU
# (conf/experiment/paper_luminosity.yaml: 25k SR background per pseudo-experiment, 20k + 20k
# test events, 5 pseudo-experiments per injection, 100k + 100k pretraining; 12x12, slim CNN).
#   bash experiments/paper_luminosity.sh simulator      # ID, Lambda_D = 10 (the paper's Fig. 3-5 top)
#   bash experiments/paper_luminosity.sh simulator_dd   # DD, Lambda_D = 10
# Extra arguments are Hydra overrides. The run goes to outputs/paper_luminosity/<name>/ and
# resumes there when rerun (finished chunks of 6 members are loaded, not retrained); at the end
# config, tables and figures are copied to docs/results/paper_luminosity/<name>/.
# Cost (ID, measured on the 2-core CPU, shared): see docs/results/paper_luminosity/README.md.
set -euo pipefail  # run inside the project environment: . .venv/bin/activate (make venv)
name=${1:?usage: bash experiments/paper_luminosity.sh simulator|simulator_dd [overrides]}
shift
case $name in
  simulator) args=(data.signal=id_lambda10) ;;
  simulator_dd) args=(data.signal=dd_lambda10) ;;
  *) echo "error: unknown benchmark '$name' (simulator or simulator_dd)" >&2; exit 2 ;;
esac
run=outputs/paper_luminosity/$name
python -m jaxws experiment=paper_luminosity "${args[@]}" dry_run=true "$@"
python -m jaxws experiment=paper_luminosity "${args[@]}" tracking=none "hydra.run.dir=$run" "$@"
dest=docs/results/paper_luminosity/$name
mkdir -p "$dest.tmp"
cp "$run"/{config.json,results.json,study.csv,thresholds.csv,sculpting.csv,working_points.csv} "$dest.tmp/"
cp "$run"/figures/*.png "$dest.tmp/"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "results copied to $dest"
