"""Calibrate the toy TPC's yields to NEST (nestpy) and print the knot tables for
jaxws/simulate/tpc/yields.py.

    PYTHONPATH=. python experiments/tpc_nest_calibration.py

For electron recoils (NEST `beta`) and nuclear recoils at the toy's drift field, on a grid of
energies: the mean total quanta per keV, the mean charge fraction f_e = electrons / quanta,
and the recombination fluctuation sigma_R that makes the toy's electron-count variance
(Poisson quanta, binomial split, Gaussian recombination term sigma_R N_q) equal NEST's,
sigma_R^2 = (Var_NEST(N_e) - N_q f_e) / (N_q (N_q + 1)). Requires the `physics` extra (nestpy).
"""

from __future__ import annotations

import numpy as np

from jaxws.simulate import nest_reference

if __name__ == "__main__":
    table = nest_reference.calibration_table()
    for recoil, rows in table.items():
        print(f"# {recoil}: energy_kev, quanta_per_kev, charge_fraction, recombination_sigma")
        for name in ("energy_kev", "quanta_per_kev", "charge_fraction", "recombination_sigma"):
            values = ", ".join(f"{v:.4g}" for v in np.asarray(rows[name]))
            print(f"{recoil.upper()}_{name.upper()} = ({values})")
