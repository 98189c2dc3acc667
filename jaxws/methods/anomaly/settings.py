"""Config sections of the anomaly-aware method: `method.vae`, `method.classifier`, `method.test`.

Each section becomes a frozen dataclass with its checks (`jaxws.config.from_section`); the
`data` section is `jaxws.simulate.tpc.TPCConfig`. Defaults live in conf/method/anomaly.yaml
and here; docs/anomaly.md describes every field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jaxws.config import ConfigError, check, from_section
from jaxws.simulate import tpc
from jaxws.stats.anomaly.density import TAIL_FRACTION


@dataclasses.dataclass(frozen=True)
class NetworkTraining:
    """Training fields shared by `method.vae` and `method.classifier` (`jaxws.train.fit`)."""

    learning_rate: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5
    validation_fraction: float = 0.2

    def check_training(self, section: str) -> None:
        """Refuse non-positive rates, sizes and epochs, and fractions outside (0, 1)."""
        check(self.learning_rate > 0, f"{section}.learning_rate must be > 0")
        check(self.batch_size >= 1, f"{section}.batch_size must be >= 1")
        check(self.max_epochs >= 1, f"{section}.max_epochs must be >= 1")
        check(self.patience >= 1, f"{section}.patience must be >= 1")
        check(
            0.0 < self.validation_fraction < 1.0,
            f"{section}.validation_fraction must lie in (0, 1)",
        )


@dataclasses.dataclass(frozen=True)
class VAEConfig(NetworkTraining):
    """Section `method.vae`: architecture and training of the background VAE."""

    latent_dim: int = 2
    hidden: tuple[int, ...] = (64, 64)
    beta: float = 1.0
    decoder_variance: str = "network"
    score_samples: int = 16

    def __post_init__(self) -> None:
        check(self.latent_dim >= 1, "method.vae.latent_dim must be >= 1")
        check(self.beta > 0, f"method.vae.beta must be > 0, got {self.beta}")
        check(
            self.decoder_variance in ("network", "feature"),
            f"method.vae.decoder_variance must be 'network' or 'feature', "
            f"got {self.decoder_variance!r}",
        )
        check(self.score_samples >= 1, "method.vae.score_samples must be >= 1")
        self.check_training("method.vae")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig(NetworkTraining):
    """Section `method.classifier`: the ER-vs-NR MLP."""

    feature_widths: tuple[int, ...] = (64, 64)
    head_widths: tuple[int, ...] = (32,)

    def __post_init__(self) -> None:
        self.check_training("method.classifier")


@dataclasses.dataclass(frozen=True)
class AnomalyTestConfig:
    """Section `method.test`: score weight, benchmarks, toys.

    Attributes:
      r: score weight R for the distributions and sensitivity curves.
      r_scan: R values of the scan.
      wimp_masses: WIMP-like masses (GeV) of the benchmarks (NR spectrum slopes).
      sensitivity_mass: benchmark used for the sensitivity curves (one of `wimp_masses`).
      expected_background: B, expected background events in a data set; None: computed from
        the exposure (`exposure_tonne_year` x the background rates in the energy window x the
        detected fraction of the simulated background, `steps.background_count`).
      signal_rates: expected signal counts s of the sensitivity curves.
      scan_signal_rate: s injected in the R scan; None: per benchmark the detected WIMP count
        of `cross_section_cm2` x `exposure_tonne_year` (the seed's Fig. 8).
      cross_section_cm2, exposure_tonne_year: the benchmark (6.5e-48 cm2, 200 t y): expected
        recoils in [energy_min, energy_max] (`jaxws.simulate.wimp`) times the detection
        efficiency of the simulated sample; always reported.
      n_null_toys, n_signal_toys: toys per hypothesis.
      f0_tail_fraction: probability in each exponential tail of f_0 and the templates (0: plain
        Gaussian KDE).
      mismatch_template_mass, mismatch_signal_mass: the model-dependent q0 with a template of
        the wrong mass (both in `wimp_masses`).
      null_check_r: R values at which fresh background-only data sets check the null.
      n_null_check_sets: fresh background-only data sets per R value (0: no check).
      ts_cut_quantile: the TS cut of the sensitivity curves, as the quantile of f_0's reference
        scores at which it sits (0: no cut; 0.99: only the 1% most anomalous background enters).
      r_scan_cut_quantiles: TS cuts (quantiles as above) scanned with R.
      null_check_cut_quantiles: TS cuts at which the fresh data sets are also tested.
    """

    r: float = 10.0
    r_scan: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    wimp_masses: tuple[float, ...] = (30.0, 50.0, 100.0)
    sensitivity_mass: float = 50.0
    expected_background: float | None = 2000.0
    signal_rates: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    scan_signal_rate: float | None = 16.0
    cross_section_cm2: float = 6.5e-48
    exposure_tonne_year: float = 200.0
    n_null_toys: int = 2000
    n_signal_toys: int = 200
    f0_tail_fraction: float = TAIL_FRACTION
    mismatch_template_mass: float = 30.0
    mismatch_signal_mass: float = 100.0
    null_check_r: tuple[float, ...] = (0.0, 10.0, 100.0)
    n_null_check_sets: int = 200
    ts_cut_quantile: float = 0.0
    r_scan_cut_quantiles: tuple[float, ...] = (0.0,)
    null_check_cut_quantiles: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        check(self.r >= 0, f"method.test.r must be >= 0, got {self.r}")
        check(
            len(self.r_scan) >= 1 and all(r >= 0 for r in self.r_scan),
            f"method.test.r_scan must be non-empty with values >= 0, got {self.r_scan}",
        )
        check(
            len(self.wimp_masses) >= 1 and all(m > 0 for m in self.wimp_masses),
            "method.test.wimp_masses must be positive",
        )
        check(
            self.sensitivity_mass in self.wimp_masses,
            f"method.test.sensitivity_mass {self.sensitivity_mass} is not in wimp_masses "
            f"{self.wimp_masses}",
        )
        check(
            self.expected_background is None or self.expected_background > 0,
            "method.test.expected_background must be > 0 or null (from the exposure)",
        )
        for name in ("r_scan_cut_quantiles", "null_check_cut_quantiles"):
            values = getattr(self, name)
            check(
                len(values) >= 1 and all(0 <= q < 1 for q in values),
                f"method.test.{name} must be non-empty with values in [0, 1), got {values}",
            )
        check(
            0 <= self.ts_cut_quantile < 1,
            f"method.test.ts_cut_quantile must lie in [0, 1), got {self.ts_cut_quantile}",
        )
        check(
            len(self.signal_rates) >= 1 and all(s >= 0 for s in self.signal_rates),
            "method.test.signal_rates must be non-empty with values >= 0",
        )
        check(
            self.scan_signal_rate is None or self.scan_signal_rate > 0,
            "method.test.scan_signal_rate must be > 0 or null (the benchmark counts)",
        )
        check(self.cross_section_cm2 > 0, "method.test.cross_section_cm2 must be > 0")
        check(self.exposure_tonne_year > 0, "method.test.exposure_tonne_year must be > 0")
        check(self.n_null_toys >= 10, "method.test.n_null_toys must be >= 10")
        check(self.n_signal_toys >= 10, "method.test.n_signal_toys must be >= 10")
        check(
            0.0 <= self.f0_tail_fraction < 0.5,
            f"method.test.f0_tail_fraction must lie in [0, 0.5), got {self.f0_tail_fraction}",
        )
        for name in ("mismatch_template_mass", "mismatch_signal_mass"):
            check(
                getattr(self, name) in self.wimp_masses,
                f"method.test.{name} {getattr(self, name)} is not in wimp_masses "
                f"{self.wimp_masses}",
            )
        check(
            all(r >= 0 for r in self.null_check_r),
            f"method.test.null_check_r must be >= 0, got {self.null_check_r}",
        )
        check(self.n_null_check_sets >= 0, "method.test.n_null_check_sets must be >= 0")


METHOD_KEYS = ("name", "vae", "classifier", "test")


def settings_from_config(
    cfg: Mapping[str, Any],
) -> tuple[tpc.TPCConfig, VAEConfig, ClassifierConfig, AnomalyTestConfig]:
    """The method's settings from the resolved config (sections `data` and `method`).

    Args:
      cfg: the resolved config.

    Returns:
      (TPCConfig, VAEConfig, ClassifierConfig, AnomalyTestConfig).

    Raises:
      ConfigError: an unknown key in `method` or a bad value (named with its path).
    """
    method = cfg.get("method") or {}
    unknown = sorted(set(method) - set(METHOD_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in config section 'method'; allowed: {list(METHOD_KEYS)}"
        )
    return (
        from_section(tpc.TPCConfig, cfg.get("data"), "data"),
        from_section(VAEConfig, method.get("vae"), "method.vae"),
        from_section(ClassifierConfig, method.get("classifier"), "method.classifier"),
        from_section(AnomalyTestConfig, method.get("test"), "method.test"),
    )


def check_memory(
    data: tpc.TPCConfig, test: AnomalyTestConfig, available: int | None = None
) -> list[str]:
    """Refuse samples or toys that cannot fit in memory, before anything is simulated.

    Estimates (float32) of the two large allocations: every simulated sample (training,
    reference, the toy bank `data.n_background_bank`, signal; per event the sensors' light
    pattern plus 8 numbers) and the toys of one compiled call (4 blocks of
    `method.test.n_signal_toys` toys of `max_toy_events(B)` event slots, about 8 numbers per
    slot for the drawn indices, the likelihood terms and the signal-count fit). The toys are
    not checked when B comes from the exposure (known only once the samples are simulated).

    Args:
      data: the data section.
      test: the `method.test` section.
      available: bytes free (default: measured now).

    Returns:
      Report lines.

    Raises:
      ConfigError: one line naming the sizes, when either estimate does not fit.
    """
    from jaxws.stats.anomaly.toys import max_toy_events
    from jaxws.train.memory import check_memory as check_bytes

    n_sensors = len(tpc.sensor_grid_for(data.params(), data.sensor_rings))
    names = ("n_background_train", "n_background_null", "n_background_bank", "n_signal_train")
    n_events = sum(getattr(data, name) for name in names)
    n_events += data.n_signal_benchmark * len(test.wimp_masses)
    sample_bytes = 4.0 * n_events * (n_sensors + 8)
    keys = f"data.n_background_bank={data.n_background_bank} (with the other data.n_* sizes)"
    lines = [check_bytes(sample_bytes, f"the {n_events} simulated events", keys, available)]
    if test.expected_background is not None:
        largest = max((*test.signal_rates, test.scan_signal_rate or 0.0))
        slots = max_toy_events(test.expected_background, largest)
        toy_bytes = 4.0 * 4 * test.n_signal_toys * slots * 8
        keys = (
            f"method.test.expected_background={test.expected_background:g} x "
            f"method.test.n_signal_toys={test.n_signal_toys}"
        )
        lines.append(check_bytes(toy_bytes, "the toys of one compiled call", keys, available))
    return lines


def validate(cfg: Mapping[str, Any]) -> list[str]:
    """`jaxws.methods.validate`'s hook, before anything is simulated.

    Args:
      cfg: the resolved config.

    Returns:
      Report lines for `dry_run=true` (the memory estimates).

    Raises:
      ConfigError: a bad section or a memory estimate that does not fit (one line).
    """
    data, _, _, test = settings_from_config(cfg)
    return check_memory(data, test)
