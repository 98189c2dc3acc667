"""Clip calibration: scan weight-clip values for the one where the NPLM null follows chi2.

The papers choose the clip so that null toys follow chi2 with dof = number of trainable
parameters at the chosen training length (D'Agnolo et al., arXiv:1912.12155). Every clip trains
the same null toys; the clip is a vmapped leaf, so all clips share one compiled program.
``experiments/nplm_clip_calibration.py`` prints the scan as a table. :func:`training_length_scan`
compares the null with chi2 at several training lengths (the symmetrized test's 12 dof:
``experiments/nplm_symmetrized_null.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.symmetrized import symmetrized_toy_statistics
from jaxws.methods.nplm.toy_statistics import (
    ToyStatistics,
    converged_only,
    fit_converged,
    nplm_toy_maker,
    nplm_toy_statistics,
    toy_progress,
)
from jaxws.simulate import nplm_toys as toys
from jaxws.stats import nplm


def clip_calibration(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    clips: tuple[float, ...],
    n_toys: int,
    significance_level: float = 0.01,
) -> list[dict[str, Any]]:
    """Scan weight-clip values: where does the NPLM null follow chi2(n_params)?

    The papers choose the clip so that null toys follow chi2 with dof = number of trainable
    parameters at the chosen training length (arXiv:1912.12155). Every clip value trains the
    same null toys (same data, reference and initial weights; clip is a vmapped leaf, so all
    clips share one compiled program).

    Args:
        key: typed key, consumed.
        data: toy configuration (simulated exponential).
        settings: method settings (everything but the clip).
        clips: clip values to scan.
        n_toys: null toys per clip.
        significance_level: a clip "follows chi2" when the KS p-value against chi2(dof) and the
            binomial p-values of the counts beyond chi2's 95% and 99% points all exceed it.

    Returns:
        One row per clip: ``clip``, ``follows_chi2`` and the numbers of
        :func:`jaxws.stats.nplm.compare_with_chi2`.
    """
    dof = nplm.n_parameters(settings.network())
    toy_key, fit_key, shared_key = jax.random.split(key, 3)
    make = nplm_toy_maker(data, settings, 0.0, shared_key)
    fit_keys = jax.random.split(fit_key, n_toys)
    t_by_clip = {clip: [] for clip in clips}
    toy_keys = jax.random.split(toy_key, n_toys)
    with toy_progress(settings, n_toys * len(clips), "clip calibration") as bar:
        for start in range(0, n_toys, settings.chunk_size):
            stop = min(start + settings.chunk_size, n_toys)
            x, data_weight, reference_weight, overflow = make(toy_keys[start:stop])
            toys.check_no_overflow(overflow, "NPLM toys")
            n = stop - start
            tile = lambda a: jnp.concatenate([a] * len(clips))
            hparams = nplm.NPLMHparams(
                jnp.full(n * len(clips), settings.learning_rate, jnp.float32),
                jnp.repeat(jnp.asarray(clips, jnp.float32), n),
            )
            fit = nplm.fit_toys(
                tile(fit_keys[start:stop]),
                tile(x),
                tile(data_weight),
                tile(reference_weight),
                hparams,
                settings.network(int(x.shape[-1])),
                settings.training(),
                chunk_size=settings.chunk_size * len(clips),
                schedule=settings.schedule,
            )
            for i, clip in enumerate(clips):
                part = slice(i * n, (i + 1) * n)
                t_by_clip[clip].append(
                    converged_only(
                        ToyStatistics(
                            fit.t[part],
                            fit.t_history[part],
                            fit_converged(fit, n * len(clips))[part],
                        ),
                        f"clip {clip:g} toys",
                    )[0]
                )
            bar.update(n * len(clips))
    rows = []
    for clip in clips:
        comparison = nplm.compare_with_chi2(np.concatenate(t_by_clip[clip]), dof)
        follows = nplm.follows_chi2(comparison, significance_level)
        rows.append({"clip": clip, "follows_chi2": follows, **comparison})
    return rows


def training_length_scan(
    key: jax.Array,
    data: ExponentialToyConfig,
    settings: NPLMConfig,
    lengths: tuple[int, ...],
    n_toys: int,
    significance_level: float = 0.01,
) -> list[dict[str, Any]]:
    """The null at several training lengths: does it follow chi2(dof) at each of them?

    The asymptotic chi2 holds only for a converged fit that has not yet learned the toys'
    fluctuations; an unclipped fit (the symmetrized test's) can drift above it with training.
    The same null toys are trained once for ``max(lengths)`` epochs (Newton iterations) with t
    recorded at every length inside the compiled loop, so the rows differ only in the training
    length. dof is the nominal one: trainable parameters of f for NPLM, that minus one for the
    symmetrized test (observed counts fix the normalisation, arXiv:2401.09530).

    Args:
        key: typed key, consumed.
        data: toy configuration (simulated exponential; n_a, n_b for the symmetrized test).
        settings: method settings (``test``, optimizer, clip; epochs and checkpoints are
            replaced by ``lengths``).
        lengths: training lengths, at least one.
        n_toys: null toys.
        significance_level: as in :func:`clip_calibration`.

    Returns:
        One row per length: ``epochs``, ``follows_chi2``, ``fitted_follows_chi2`` (the same
        criteria against chi2 at the fitted dof) and the numbers of
        :func:`jaxws.stats.nplm.compare_with_chi2`.
    """
    lengths = tuple(sorted({int(n) for n in lengths}))
    if not lengths or lengths[0] < 1:
        raise ValueError(f"training lengths must be positive, got {lengths}")
    settings = dataclasses.replace(settings, epochs=lengths[-1], checkpoints=lengths[:-1])
    if settings.test == "symmetrized":
        _, t_history, _ = converged_only(
            symmetrized_toy_statistics(key, data, settings, n_toys), "null toys"
        )
        dof = nplm.n_parameters(settings.network()) - 1
    else:
        _, t_history, _ = converged_only(
            nplm_toy_statistics(key, data, settings, n_toys), "null toys"
        )
        dof = nplm.n_parameters(settings.network())
    rows = []
    for column, epochs in enumerate(lengths):
        comparison = nplm.compare_with_chi2(t_history[:, column], dof)
        fitted = nplm.compare_with_chi2(t_history[:, column], comparison["fitted_dof"])
        rows.append(
            {
                "epochs": epochs,
                "follows_chi2": nplm.follows_chi2(comparison, significance_level),
                "fitted_follows_chi2": nplm.follows_chi2(fitted, significance_level),
                "fitted_excess_pvalue_q99": fitted["excess_pvalue_q99"],
                "fitted_n_beyond_q99": fitted["n_beyond_q99"],
                **comparison,
            }
        )
    return rows
