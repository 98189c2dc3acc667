"""The toy TPC's background: ER, optional solar 8B CEvNS and radiogenic-neutron NR, by rate.

Rates per tonne-year in the energy window [energy_min, energy_max] (sources in
`jaxws.simulate.cevns`): ER flat at `er_rate_per_tonne_year_kev` (default 12.3 / (keV t y),
XENONnT's projection), 8B CEvNS from the flux and the cross-section when `cevns` is on, neutrons
at `neutron_rate_per_tonne_year` with an exponential spectrum (slope `neutron_slope_kev`). A
background event is an NR with probability (CEvNS + neutron rate) / total rate, its energy drawn
from the rate-weighted mixture of the two NR spectra; the NR go through the same NR yields and
detector as the signal. The composition is independent of exposure; the counts scale with it.
"""

from __future__ import annotations

from jaxws.simulate import cevns as cevns_physics
from jaxws.simulate.tpc.detector import TPCConfig
from jaxws.simulate.tpc.spectra import (
    RecoilSpectrum,
    cevns_spectrum,
    exponential_spectrum,
    flat_spectrum,
    mixture_spectrum,
)


def background_recoils(data: TPCConfig, exposure_tonne_year: float) -> dict[str, float]:
    """Expected background recoils in the energy window for the exposure (before detection).

    Args:
      data: the TPC config (window, rates, which NR components are on).
      exposure_tonne_year: exposure in tonne-years.

    Returns:
      {"er": ..., "cevns": ..., "neutron": ...} expected recoils (0 for components off).
    """
    width = data.energy_max - data.energy_min
    return {
        "er": data.er_rate_per_tonne_year_kev * width * exposure_tonne_year,
        "cevns": (
            cevns_physics.expected_events(exposure_tonne_year, data.energy_min, data.energy_max)
            if data.cevns
            else 0.0
        ),
        "neutron": data.neutron_rate_per_tonne_year * exposure_tonne_year,
    }


def background_nr_law(data: TPCConfig) -> tuple[float, RecoilSpectrum]:
    """(NR fraction of the background recoils, NR energy spectrum) of the background.

    The fraction is (CEvNS + neutron) / (ER + CEvNS + neutron) recoils in the window; the
    spectrum is their rate-weighted mixture (flat, and unused, when both are off).
    """
    params = data.params()
    recoils = background_recoils(data, 1.0)
    parts = [
        (spectrum(params), recoils[name])
        for name, spectrum in (
            ("cevns", cevns_spectrum),
            ("neutron", lambda p: exponential_spectrum(data.neutron_slope_kev, p)),
        )
        if recoils[name] > 0
    ]
    nr = sum(count for _, count in parts)
    if nr == 0:
        return 0.0, flat_spectrum(params)
    spectrum = mixture_spectrum([s for s, _ in parts], [count for _, count in parts])
    return nr / (nr + recoils["er"]), spectrum
