"""Built-in dijet simulator: a stylised toy of QCD dijets and dark-shower (Hidden Valley) jets.

This is the embedded default data source of every jaxws experiment. It imitates, in broad
shape only, the benchmark of Beauchesne, Chen and Chiang, "Improving the performance of weak
supervision searches using transfer and meta-learning" (arXiv:2312.06152), section 2:
pp -> Z'(5.5 TeV) -> q_D q_D-bar showering into dark jets, against QCD dijets, selected in the
window 4400 <= mjj < 5800 GeV with the signal region SR = [4700, 5500) and the sidebands
SB = [4400, 4700) U [5500, 5800) GeV. It is not a physics generator (that is Pythia, see
docs/simulator.md); it is a fast pure-JAX sampler whose signal family is continuous in two
parameters, a stand-in for the dark confinement scale Lambda_D (`scale`, GeV-like) and the
indirect/direct decay scenario (`direct_decay` in [0, 1]).

Model of one jet (all angles in the (deta, dphi) plane relative to the jet axis):
  * multiplicity n ~ Poisson(mu * g), g a log-logistic factor with log-variance 1/k
    (over-dispersed like real jets), at most 128;
  * prongs: 1 + Poisson(lambda_prong) (at most 6); secondary prongs sit at a log-logistic
    distance around `prong_spread` from the first; prong energy shares are log-logistic;
  * each constituent joins a prong with probability equal to its share, carries a
    log-logistic pT weight w (width `pt_hierarchy`) and sits at an exponential radial distance
    `core_width * Exp(1) * w^-collinearity` from its prong (hard constituents collinear);
  * positions are clipped to the jet radius 0.8, then translated so the pT-weighted centroid
    is the jet axis; the jet mass is the exact invariant mass of the massless constituents.
Only uniform variates are drawn (one threefry call per event, no rejection samplers), which
keeps compilation short; "log-logistic" stands in for log-normal.
The jet shape does not depend on mjj or on the jet pT (only pT and mass scale with them): with
no signal, the SR and the SB hold statistically identical jet substructure, so a CWoLa
classifier can only separate them through the overall pT scale of the constituents.

Event kinematics: mjj is drawn from its spectrum inside the window (inverse CDF on a grid),
the rapidity half-difference y* and the boost y_b (|eta| < 2 for both jets), an azimuthal
kink and a pT imbalance are drawn, and the common jet pT is solved so that the four-vectors of
the two massive jets reproduce the drawn mjj exactly.
"""

from __future__ import annotations

from jaxws.simulate.jets.events import (
    _draw_in_chunks as _draw_in_chunks,
)
from jaxws.simulate.jets.events import (
    simulate_background,
    simulate_events,
    simulate_signal,
)
from jaxws.simulate.jets.params import (
    _BENCHMARKS as _BENCHMARKS,
)
from jaxws.simulate.jets.params import (
    _GRID_POINTS as _GRID_POINTS,
)
from jaxws.simulate.jets.params import (
    _SIGNAL_SHAPES as _SIGNAL_SHAPES,
)
from jaxws.simulate.jets.params import (
    _SQRT_S as _SQRT_S,
)
from jaxws.simulate.jets.params import (
    DEFAULT_MAX_CONSTITUENTS,
    GENERATED_SLOTS,
    JET_RADIUS,
    LEAD_PT_MIN,
    MAX_ETA,
    MAX_PRONGS,
    MJJ_WINDOW,
    SHAPE_COLUMNS,
    SIGNAL_REGION_EDGES,
    WIDTH_SPREAD,
    BackgroundParams,
    JetShape,
    SignalParams,
    background_jet_shape,
    benchmark,
    signal_jet_shape,
)
from jaxws.simulate.jets.sampling import (
    _EVENT_UNIFORMS as _EVENT_UNIFORMS,
)
from jaxws.simulate.jets.sampling import (
    _JET_UNIFORMS as _JET_UNIFORMS,
)
from jaxws.simulate.jets.sampling import (
    _crystal_ball_log_density as _crystal_ball_log_density,
)
from jaxws.simulate.jets.sampling import (
    _dijet_kinematics as _dijet_kinematics,
)
from jaxws.simulate.jets.sampling import (
    _dijet_log_density as _dijet_log_density,
)
from jaxws.simulate.jets.sampling import (
    _event as _event,
)
from jaxws.simulate.jets.sampling import (
    _inverse_cdf_on_grid as _inverse_cdf_on_grid,
)
from jaxws.simulate.jets.sampling import (
    _jet_constituents as _jet_constituents,
)
from jaxws.simulate.jets.sampling import (
    _logistic as _logistic,
)
from jaxws.simulate.jets.sampling import (
    _poisson as _poisson,
)
from jaxws.simulate.jets.sampling import (
    _region as _region,
)
from jaxws.simulate.jets.sampling import (
    _simulate as _simulate,
)
from jaxws.simulate.jets.sampling import (
    _ystar_log_density as _ystar_log_density,
)

__all__ = [
    "DEFAULT_MAX_CONSTITUENTS",
    "GENERATED_SLOTS",
    "JET_RADIUS",
    "LEAD_PT_MIN",
    "MAX_ETA",
    "MAX_PRONGS",
    "MJJ_WINDOW",
    "SHAPE_COLUMNS",
    "SIGNAL_REGION_EDGES",
    "WIDTH_SPREAD",
    "BackgroundParams",
    "JetShape",
    "SignalParams",
    "background_jet_shape",
    "benchmark",
    "signal_jet_shape",
    "simulate_background",
    "simulate_events",
    "simulate_signal",
]
