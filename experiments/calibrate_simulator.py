"""Fit the built-in simulator's jet shapes to Pythia 8 events (docs/simulator.md).

For QCD and each of the 14 dark-shower benchmarks, matched in the signal region:
  1. multiplicity: `mean_multiplicity` and `multiplicity_shape` from the mean and variance of
     the constituent count (both jets pooled), by the closed form of the simulator's
     Poisson x log-logistic law;
  2. shape: `core_width` and `prong_spread` by Nelder-Mead on the relative differences of the
     mean jet mass / pT and the mean girth (both jets pooled), 1500 simulated events per
     evaluation with a fixed key (a deterministic objective);
  3. QCD kinematics: `ystar_tilt` by bisection on the mean leading-jet pT / mjj.
Prints the tables that jaxws/simulate/jets/params.py holds (`_SIGNAL_SHAPES`, `BackgroundParams`).

    python experiments/calibrate_simulator.py --reference ../shared/data/hv-reference \\
        --trends data/pythia-trends      # shards of `python -m jaxws.simulate.generate`, 14 models

Lambda_D = 10 uses hv-reference (5000 events per scenario); the other benchmarks use the
generated shards (300 events each here: their means have 3-4 % statistical errors).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import jax
import numpy as np
from scipy import optimize

from jaxws.data.observables import girth, jet_observables
from jaxws.data.samples import benchmark_names
from jaxws.data.shards import load_events
from jaxws.simulate import jets

LOGISTIC_SCALE = math.sqrt(3.0) / math.pi


def _moment_factor(order: float, spread: float) -> float:
    """E[g^order] for g = exp(spread * L - spread^2 / 2), L unit-variance logistic."""
    a = order * spread * LOGISTIC_SCALE
    if a >= 1.0:
        return math.inf
    mgf = 1.0 if a == 0 else math.pi * a / math.sin(math.pi * a)
    return math.exp(-order * spread**2 / 2) * mgf


def multiplicity_parameters(mean: float, variance: float) -> tuple[float, float]:
    """(mean_multiplicity, multiplicity_shape) giving this mean and variance of n.

    n ~ Poisson(mu g): E n = mu E g, Var n = mu E g + mu^2 Var g; spread = shape^-1/2.
    """

    def excess(spread):
        g1, g2 = _moment_factor(1, spread), _moment_factor(2, spread)
        mu = mean / g1
        return mu * g1 + mu**2 * (g2 - g1**2) - variance

    spread = optimize.brentq(excess, 1e-3, 0.99 / (2 * LOGISTIC_SCALE))
    return mean / _moment_factor(1, spread), 1.0 / spread**2


def targets(events) -> dict[str, float]:
    obs = jet_observables(events.take(events.region == 0))
    n = np.concatenate([obs["multiplicity_0"], obs["multiplicity_1"]])
    mass_over_pt = np.concatenate([obs["mass_0"] / obs["pt_0"], obs["mass_1"] / obs["pt_1"]])
    girth = np.concatenate([obs["girth_0"], obs["girth_1"]])
    return {
        "n_mean": float(n.mean()),
        "n_var": float(n.var()),
        "mass_over_pt": float(mass_over_pt.mean()),
        "girth": float(girth.mean()),
        "pt_over_mjj": float((obs["pt_0"] / obs["mjj"]).mean()),
        "events": len(obs["mjj"]),
    }


def _simulated(sample: str, shape_fields: dict, n: int = 1500, tilt: float | None = None):
    """Events with the given jet shape. The jet shape does not depend on the kinematics, so a
    signal's shape is simulated through the background path with the signal's other shape
    numbers (prongs, pT hierarchy, collinearity)."""
    key = jax.random.key(2024)
    fields = dict(shape_fields)
    if sample != "qcd":
        shape = jets.signal_jet_shape(jets.benchmark(sample))
        for name in ("extra_prongs", "pt_hierarchy", "collinearity"):
            fields[name] = float(getattr(shape, name))
    params = jets.BackgroundParams(**fields)
    if tilt is not None:
        params = params.replace(ystar_tilt=tilt)
    return jets.simulate_background(key, n, params)


def _summary(out) -> dict[str, float]:
    region = np.asarray(out["region"]) == 0
    j = np.asarray(out["jets"])[region]
    c = np.asarray(out["constituents"])[region]
    return {
        "mass_over_pt": float((j[..., 3] / j[..., 0]).mean()),
        "girth": float(girth(c, j[..., 0]).mean()),
        "pt_over_mjj": float((j[:, 0, 0] / np.asarray(out["mjj"])[region]).mean()),
    }


def fit_shape(sample: str, target: dict[str, float]) -> dict[str, float]:
    mu, shape = multiplicity_parameters(target["n_mean"], target["n_var"])

    def fields(x):
        return {
            "mean_multiplicity": mu,
            "multiplicity_shape": shape,
            "core_width": float(np.exp(x[0])),
            "prong_spread": float(np.exp(x[1])),
        }

    def loss(x):
        got = _summary(_simulated(sample, fields(x)))
        return (got["mass_over_pt"] / target["mass_over_pt"] - 1) ** 2 + (
            got["girth"] / target["girth"] - 1
        ) ** 2

    start = np.log([0.05, 0.22])
    best = optimize.minimize(
        loss, start, method="Nelder-Mead", options={"xatol": 0.02, "fatol": 1e-5, "maxfev": 60}
    )
    out = fields(best.x)
    got = _summary(_simulated(sample, out))
    out.update({f"sim_{k}": v for k, v in got.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default="../shared/data/hv-reference")
    parser.add_argument("--trends", default="data/pythia-trends")
    args = parser.parse_args()
    ref = Path(args.reference)
    samples = {"qcd": load_events([ref / "qcd.h5"], models=["qcd"])}
    for name in benchmark_names():
        if name in ("id_lambda10", "dd_lambda10"):
            samples[name] = load_events([ref / f"hv_{name}.h5"], models=[name])
        else:
            samples[name] = load_events([args.trends], models=[name])
    print("sample,events,n_mean,n_std,mass_over_pt,girth,fit")
    for name, events in samples.items():
        target = targets(events)
        fitted = fit_shape(name, target)
        if name == "qcd":
            fitted["ystar_tilt"] = fit_tilt(fitted, target["pt_over_mjj"])
        print(
            f"{name},{target['events']},{target['n_mean']:.1f},{math.sqrt(target['n_var']):.1f},"
            f"{target['mass_over_pt']:.4f},{target['girth']:.4f},"
            + " ".join(f"{k}={v:.4g}" for k, v in fitted.items()),
            flush=True,
        )


def fit_tilt(shape_fields: dict, pt_over_mjj: float) -> float:
    shape_fields = {k: v for k, v in shape_fields.items() if k in jets.SHAPE_COLUMNS}

    def excess(tilt):
        out = _simulated("qcd", shape_fields, tilt=tilt)
        return _summary(out)["pt_over_mjj"] - pt_over_mjj

    return float(optimize.brentq(excess, 0.0, 8.0, xtol=0.02))


if __name__ == "__main__":
    main()
