#!/usr/bin/env bash
# The paper-scale study (arXiv:2312.06152 Figs. 3-5) on Pythia events, for a GPU.
# Not run by the project yet: no accelerator was available when it was written.
# 1. Generate the samples (hours on 2 cores; minutes on a cluster with the submitit launcher):
#      python -m jaxws.simulate.generate models=[qcd] events=60000 seeds=[1,2,3,4,5,6,7,8] out=data/pythia
#      python -m jaxws.simulate.generate models=[id_lambda1,...,dd_lambda50] events=25000 seeds=[1] out=data/pythia
# 2. Validate the whole configuration (data sizes included) before anything trains, then run
#    the three methods on the same pseudo-experiments:
set -euo pipefail
python -m jaxws experiment=paper_pythia data.resolution=${RESOLUTION:-25} dry_run=true "$@"
python -m jaxws experiment=paper_pythia data.resolution=${RESOLUTION:-25} "$@"
