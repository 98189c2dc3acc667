"""A stylised dual-phase xenon TPC: electron- and nuclear-recoil events -> S1, S2, S2 hit pattern.

A *toy*, written for the anomaly-aware search of Scaffidi and Trotta (DARWIN, arXiv:2410.00755),
whose network input is x = [S1 total, S2 total, S2 pattern]; its microphysics is calibrated to
NEST (nestpy 2.1.3 / NEST 2.4, 200 V/cm, 2.9 g/cm3; experiments/tpc_nest_calibration.py):

* recoil energies: flat for electron recoils (ER, the background) over [E_min, E_max]; nuclear
  recoils (NR) from a tabulated spectrum (`RecoilSpectrum`): flat (classifier training),
  exponential (neutron-like), solar 8B CEvNS (`jaxws.simulate.cevns`) or the spin-independent
  WIMP spectrum of the standard halo with a Helm form factor (`jaxws.simulate.wimp`), sampled
  by inverse CDF; the background's optional CEvNS and neutron NR share follows their rates per
  tonne-year against the ER rate (`backgrounds`);
* quanta: N_q ~ Poisson(Q(E) E) with NEST's mean quanta per keV Q(E) (ER: 1 / 13.4 eV; NR:
  NEST's Lindhard-like quenching), electrons N_e = Binomial(N_q, f_e(E)) + sigma_R(E) N_q
  N(0, 1) (recombination fluctuations; anti-correlated with the photons N_q - N_e), with f_e
  and sigma_R interpolated in log E from knot tables computed with NEST, so the ER and NR
  bands and their widths follow NEST's energy dependence;
* S1: detected photons ~ Binomial(N_gamma, g1), smeared by the photosensor single-photoelectron
  resolution (Gaussian, sigma = spe_resolution * sqrt(n));
* S2: electrons surviving the drift ~ Binomial(N_e, eps_extraction * exp(-z / lambda)), each
  giving a Gaussian number of photoelectrons (mean g2, sigma g2_resolution * g2);
* S2 pattern: the interaction position (uniform in a cylinder) is seen by a hexagonal grid of
  photosensors (1, 7, 19, 37, ... sensors) through a solid-angle-like light response
  h / (r^2 + h^2)^(3/2); sensor counts ~ Poisson(S2 * share) and the pattern is normalised to
  sum to one.

Detector numbers are loosely XENONnT/DARWIN-like (g1 = 0.12, g2 = 20 PE per electron); no
claim of realism beyond the NEST yields is made (no accidentals, wall events, multiple
scatters, field non-uniformity). Everything is pure JAX: fixed shapes, `jit` and `vmap`
friendly; events below threshold are kept and flagged in `detected` so shapes stay fixed.
"""

from __future__ import annotations

from jaxws.simulate.tpc.backgrounds import background_nr_law, background_recoils
from jaxws.simulate.tpc.counts import (
    _inverse_cdf_count as _inverse_cdf_count,
)
from jaxws.simulate.tpc.counts import (
    binomial_counts,
    poisson_counts,
)
from jaxws.simulate.tpc.detector import (
    TPCConfig,
    TPCParams,
    hexagonal_sensor_grid,
    light_response,
    sensor_grid_for,
)
from jaxws.simulate.tpc.events import (
    detect,
    detector_response,
    event_features,
    quanta,
    select_detected,
    simulate_detected,
    simulate_detected_count,
    simulate_events,
    simulate_events_jit,
)
from jaxws.simulate.tpc.spectra import (
    RecoilSpectrum,
    cevns_spectrum,
    exponential_spectrum,
    flat_spectrum,
    mixture_spectrum,
    sample_recoil_energy,
    wimp_spectrum,
)
from jaxws.simulate.tpc.spectra import (
    _spectrum_grid as _spectrum_grid,
)
from jaxws.simulate.tpc.yields import (
    _MAX_SMALL_COUNT as _MAX_SMALL_COUNT,
)
from jaxws.simulate.tpc.yields import (
    ELECTRON_RECOIL,
    ER_CHARGE_FRACTION,
    ER_QUANTA_PER_KEV,
    ER_RECOMBINATION_SIGMA,
    HALO_V0_OVER_C,
    NR_CHARGE_FRACTION,
    NR_QUANTA_PER_KEV,
    NR_RECOMBINATION_SIGMA,
    NUCLEAR_RECOIL,
    SMALL_MEAN,
    SPECTRUM_TABLE_SIZE,
    XENON_NUCLEUS_MASS_GEV,
    YIELD_ENERGIES_KEV,
    nr_spectrum_slope,
    yield_curves,
)

__all__ = [
    "ELECTRON_RECOIL",
    "ER_CHARGE_FRACTION",
    "ER_QUANTA_PER_KEV",
    "ER_RECOMBINATION_SIGMA",
    "HALO_V0_OVER_C",
    "NR_CHARGE_FRACTION",
    "NR_QUANTA_PER_KEV",
    "NR_RECOMBINATION_SIGMA",
    "NUCLEAR_RECOIL",
    "SMALL_MEAN",
    "SPECTRUM_TABLE_SIZE",
    "XENON_NUCLEUS_MASS_GEV",
    "YIELD_ENERGIES_KEV",
    "RecoilSpectrum",
    "TPCConfig",
    "TPCParams",
    "background_nr_law",
    "background_recoils",
    "binomial_counts",
    "cevns_spectrum",
    "detect",
    "detector_response",
    "event_features",
    "exponential_spectrum",
    "flat_spectrum",
    "hexagonal_sensor_grid",
    "light_response",
    "mixture_spectrum",
    "nr_spectrum_slope",
    "poisson_counts",
    "quanta",
    "sample_recoil_energy",
    "select_detected",
    "sensor_grid_for",
    "simulate_detected",
    "simulate_detected_count",
    "simulate_events",
    "simulate_events_jit",
    "wimp_spectrum",
    "yield_curves",
]
