"""Clip calibration: scan weight-clip values for the one where the NPLM null follows chi2.

The papers choose the clip so that null toys follow chi2 with dof = number of trainable
parameters at the chosen training length (D'Agnolo et al., arXiv:1912.12155). Every clip trains
the same null toys; the clip is a vmapped leaf, so all clips share one compiled program.
``experiments/nplm_clip_calibration.py`` prints the scan as a table.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.nplm.toy_statistics import nplm_toy_maker, toy_progress
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
                t_by_clip[clip].append(fit.t[i * n : (i + 1) * n])
            bar.update(n * len(clips))
    rows = []
    for clip in clips:
        comparison = nplm.compare_with_chi2(np.concatenate(t_by_clip[clip]), dof)
        follows = nplm.follows_chi2(comparison, significance_level)
        rows.append({"clip": clip, "follows_chi2": follows, **comparison})
    return rows
