#!/usr/bin/env bash
# arXiv:2312.06152 Figs. 3-5 at the paper's luminosity on the 2-core CPU
# (conf/experiment/paper_luminosity.yaml: 25k SR background per pseudo-experiment, 20k + 20k
# test events, 5 pseudo-experiments per injection, 100k + 100k pretraining; 12x12, slim CNN).
#   bash experiments/paper_luminosity.sh simulator      # ID, Lambda_D = 10 (the paper's Fig. 3-5 top)
#   bash experiments/paper_luminosity.sh simulator_dd   # DD, Lambda_D = 10
#   bash experiments/paper_luminosity.sh simulator_count  # ID with the constituent-count channel
#       (data.channels=[pt,count]: the multiplicity that 25x25-75x75 pixels resolve and 12x12 merges)
#   bash experiments/paper_luminosity.sh pythia         # ID on Pythia 8 (experiment=paper_luminosity_pythia):
#       QCD from ../shared/data/{hv-reference,qcd-extra}; the signals it lacks are generated once
#       into ${PYTHIA_PAPER_LUMINOSITY:-data/pythia-paper-luminosity} (about 45k events, 10-15 min
#       on 2 cores; finished shards are verified and skipped)
# Extra arguments are Hydra overrides. The run goes to outputs/paper_luminosity/<name>/ and
# resumes there when rerun (finished chunks of 6 members are loaded, not retrained); at the end
# config, tables and figures are copied to docs/results/paper_luminosity/<name>/.
# Cost (ID, measured on the 2-core CPU, shared): see docs/results/paper_luminosity/README.md.
set -euo pipefail  # run inside the project environment: . .venv/bin/activate (make venv)
name=${1:?usage: bash experiments/paper_luminosity.sh simulator|simulator_dd [overrides]}
shift
experiment=paper_luminosity
case $name in
  simulator) args=(data.signal=id_lambda10) ;;
  simulator_dd) args=(data.signal=dd_lambda10) ;;
  simulator_count) args=(data.signal=id_lambda10 'data.channels=[pt,count]') ;;
  pythia)
    experiment=paper_luminosity_pythia
    out=${PYTHIA_PAPER_LUMINOSITY:-data/pythia-paper-luminosity}
    args=("data.paths=[../shared/data/hv-reference,../shared/data/qcd-extra,$out]")
    # hv-reference holds 4,239 SR events of the target: 11k + 11k more cover the 20k test
    # events and the largest injection; 1.9k of each source model give 1.4k SR events each.
    python -m jaxws.simulate.generate 'models=[id_lambda10]' events=11000 'seeds=[1,2]' "out=$out"
    python -m jaxws.simulate.generate \
      'models=[id_lambda1,id_lambda5,id_lambda20,id_lambda30,id_lambda40,id_lambda50,dd_lambda1,dd_lambda5,dd_lambda20,dd_lambda30,dd_lambda40,dd_lambda50]' \
      events=1900 'seeds=[1]' "out=$out" ;;
  *) echo "error: unknown benchmark '$name' (simulator, simulator_dd, simulator_count or pythia)" >&2; exit 2 ;;
esac
run=outputs/paper_luminosity/$name
python -m jaxws "experiment=$experiment" "${args[@]}" dry_run=true "$@"
python -m jaxws "experiment=$experiment" "${args[@]}" tracking=none "hydra.run.dir=$run" "$@"
dest=docs/results/paper_luminosity/$name
mkdir -p "$dest.tmp"
cp "$run"/{config.json,results.json,study.csv,thresholds.csv,sculpting.csv,working_points.csv} "$dest.tmp/"
cp "$run"/figures/*.png "$dest.tmp/"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "results copied to $dest"
