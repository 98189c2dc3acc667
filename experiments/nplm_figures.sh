#!/usr/bin/env bash
# The NPLM figures of docs/nplm.md (docs/figures/nplm_*.png) from `experiment=nplm_cpu` (N_R = 2000,
# N(R) = 100, Adam lr 0.1 x 8000 epochs, 200 null toys; minutes on 2 cores). Extra arguments
# are Hydra overrides, e.g. `seed=1`. Run from the repository root:
#     bash experiments/nplm_figures.sh
set -euo pipefail
run_dir=$(mktemp -d)/nplm_cpu
python -m jaxws experiment=nplm_cpu tracking=none method.progress=false \
    hydra.run.dir="$run_dir" "$@"
for name in null_t_histogram t_against_epochs sensitivity; do
    cp "$run_dir/figures/$name.png" "docs/figures/nplm_$name.png"
done
python - "$run_dir" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/metrics.json"))
keys = ["null/mean", "null/variance", "null/fitted_dof", "null/ks_pvalue", "null/n_beyond_q95",
        "null/n_beyond_q99", "observed/t", "observed/p_toys", "observed/z_chi2"]
print("; ".join(f"{k} {m[k]:.3g}" for k in keys if k in m))
print("; ".join(f"{k} {v:.3g}" for k, v in m.items() if k.startswith("sensitivity/") and "bound" not in k))
PY
echo "nplm_figures: copied from $run_dir/figures into docs/figures/nplm_*.png"
