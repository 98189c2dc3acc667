"""NPLM and symmetrized NPLM two-sample tests: loss, test statistic, toy ensembles, p-values.

Follows D'Agnolo & Wulzer, "Learning New Physics from a Machine" (arXiv:1806.02350), its
multivariate follow-up (arXiv:1912.12155), and the symmetrized test of Bressler, Savoray &
Zurgil (arXiv:2401.09530).

Conventions (used throughout jaxws):

* **NPLM.** The *data* sample D (sample A in the slides) is tested against a much larger
  *reference* sample R (sample B in the slides). ``N_R`` (the slides' N-tilde_B) is the number
  of reference events; ``N(R)`` (the slides' N_A) is the number of data events *expected* under
  the reference hypothesis, so the observed data count is Poisson(N(R)) under the null. Each
  reference event carries the weight ``w = N(R) / N_R``. The alternative is
  ``n(x|H1) = exp(f(x)) n(x|R)`` with ``f`` a small network, and the loss is

      L[f] = sum_{x in R} w (exp(f(x)) - 1) - sum_{x in D} f(x),      t = -2 min_f L[f].

  Under the null t is asymptotically chi2 with as many degrees of freedom as ``f`` has
  trainable parameters (13 for the 1-4-1 network), inflated by about ``1 + N(R)/N_R`` when
  the reference is resampled per toy. Without weight clipping the loss is unbounded below for
  every data event that is not a reference event (the network can grow a spike there); data
  outside the range of the reference sample make that divergence reachable by a single
  monotone step, so :func:`check_nplm_inputs` refuses them.

* **Symmetrized test.** Two observed samples A and B with *observed* counts N_A, N_B; the
  common reference is the pooled sample A u B and

      t_{A+B}(A) = -2 min_f [ sum_{x in A u B} N_A/(N_A+N_B) (exp(f(x)) - 1) - sum_{x in A} f(x) ]

  (and the same for B with its own network g); the test statistic is
  ``t_{A+B}(A) + t_{A+B}(B)``. Every tested event is also a reference event, so the loss is
  bounded below and weight clipping is not needed. Because the weights use observed counts,
  the overall normalisation is not a free direction: the null is asymptotically chi2 with
  ``n_params - 1`` degrees of freedom (12 for 1-4-1); the permutation null of
  :func:`permutation_labels` needs no such assumption.

* **Both tests share one weighted form.** Every event i of a member carries a data weight d_i
  and a reference weight r_i, and ``L = sum_i r_i (exp(f_i) - 1) - sum_i d_i f_i``. Ragged
  toys (Poisson-fluctuated sizes) are padded to fixed shapes with d_i = r_i = 0.

* **p-values.** Larger t is more signal-like. Empirical p-value: ``(k + 1) / (n + 1)`` with k
  the number of null toys with ``t_null >= t_obs`` (never 0). Asymptotic p-value:
  ``chi2.sf(t_obs, dof)``. Significance: one-sided ``Z = Phi^-1(1 - p)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from scipy import stats as scipy_stats

_ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu}


# --------------------------------------------------------------------------------------------
# The test function f(x)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkSpec:
    """Static architecture of the test function f.

    Args:
        n_inputs: input dimension of x.
        hidden: widths of the hidden layers, (4,) for the paper's 1-4-1 network.
        activation: hidden activation, one of sigmoid, tanh, relu.
    """

    n_inputs: int = 1
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if not isinstance(self.n_inputs, int) or self.n_inputs < 1:
            raise ValueError(f"NetworkSpec.n_inputs must be a positive int, got {self.n_inputs!r}")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"NetworkSpec.hidden must be positive ints, got {self.hidden!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"NetworkSpec.activation must be one of {sorted(_ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )


def n_parameters(spec: NetworkSpec) -> int:
    """Number of trainable parameters of f (the chi2 degrees of freedom of NPLM).

    Args:
        spec: the architecture.

    Returns:
        Kernels plus biases of all layers (13 for 1-4-1).
    """
    widths = (spec.n_inputs, *spec.hidden, 1)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


class TestFunction(nn.Module):
    """Dense network x -> f(x), the log-ratio n(x|H1) / n(x|R).

    Attributes:
        hidden: widths of the hidden layers.
        activation: name of the hidden activation.
    """

    __test__ = False  # not a pytest class, despite the name
    hidden: tuple[int, ...] = (4,)
    activation: str = "sigmoid"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        h = x
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, name=f"hidden_{i}")(h))
        return nn.Dense(1, name="output")(h)[..., 0]


def _module(spec: NetworkSpec) -> TestFunction:
    return TestFunction(hidden=spec.hidden, activation=spec.activation)


def _dense(params: dict, h: jax.Array) -> jax.Array:
    # A matmul: XLA fuses it with the activation; a broadcast multiply-and-sum was 14x slower.
    return h @ params["kernel"] + params["bias"]


def apply_test_function(params: dict, x: jax.Array, spec: NetworkSpec) -> jax.Array:
    """f(x) for parameters from :func:`init_test_function` (same numbers as the flax module).

    Args:
        params: ``{"params": {"hidden_i": ..., "output": ...}}``.
        x: events, shape (n, n_inputs).
        spec: the architecture.

    Returns:
        f at each event, shape (n,).
    """
    act = _ACTIVATIONS[spec.activation]
    layers = params["params"]
    h = x
    for i in range(len(spec.hidden)):
        h = act(_dense(layers[f"hidden_{i}"], h))
    return _dense(layers["output"], h)[..., 0]


INITIALISATIONS = ("glorot", "lecun")
CLIP_SCOPES = ("all", "kernels")


def init_test_function(key: jax.Array, spec: NetworkSpec, init: str = "glorot") -> dict:
    """Initial parameters of f.

    Args:
        key: typed PRNG key, consumed.
        spec: the architecture.
        init: "glorot" (NPLM_package's Keras default: glorot-uniform kernels, limit
            ``sqrt(6 / (fan_in + fan_out))``, and glorot-uniform biases too, which Keras treats
            as a 1D tensor with ``fan_in = fan_out = width``, limit ``sqrt(3 / width)``) or
            "lecun" (flax's default: LeCun-normal kernels, zero biases).

    Returns:
        The parameter pytree (``{"params": {"hidden_i": ..., "output": ...}}``).
    """
    if init not in INITIALISATIONS:
        raise ValueError(f"init must be one of {INITIALISATIONS}, got {init!r}")
    params = _module(spec).init(key, jnp.zeros((1, spec.n_inputs)))
    if init == "lecun":
        return params
    widths = (spec.n_inputs, *spec.hidden, 1)
    names = [f"hidden_{i}" for i in range(len(spec.hidden))] + ["output"]
    keys = jax.random.split(key, 2 * len(names))
    layers = {}
    for i, (name, fan_in, fan_out) in enumerate(zip(names, widths[:-1], widths[1:], strict=True)):
        kernel_limit = math.sqrt(6.0 / (fan_in + fan_out))
        bias_limit = math.sqrt(3.0 / fan_out)
        layers[name] = {
            "kernel": jax.random.uniform(
                keys[2 * i], (fan_in, fan_out), jnp.float32, -kernel_limit, kernel_limit
            ),
            "bias": jax.random.uniform(
                keys[2 * i + 1], (fan_out,), jnp.float32, -bias_limit, bias_limit
            ),
        }
    return {"params": layers}


def clip_weights(params: Any, clip: jax.Array, scope: str = "all") -> Any:
    """Weight clipping into [-clip, clip] (NPLM_package clips every weight, biases included).

    Args:
        params: parameter pytree of f.
        clip: clipping value (``inf`` for none).
        scope: "all" (kernels and biases, the papers' statistic) or "kernels" (biases free).

    Returns:
        The clipped pytree.
    """
    if scope not in CLIP_SCOPES:
        raise ValueError(f"clip scope must be one of {CLIP_SCOPES}, got {scope!r}")

    def clip_leaf(path, leaf):
        name = getattr(path[-1], "key", None)
        clipped = scope == "all" or name == "kernel"
        return jnp.clip(leaf, -clip, clip) if clipped else leaf

    return jax.tree_util.tree_map_with_path(clip_leaf, params)


def clip_kernels(params: Any, clip: jax.Array) -> Any:
    """Weight clipping of the kernels only (``clip_weights(params, clip, "kernels")``)."""
    return clip_weights(params, clip, "kernels")


# --------------------------------------------------------------------------------------------
# Loss and training
# --------------------------------------------------------------------------------------------


def nplm_loss_terms(
    f_values: jax.Array, data_weight: jax.Array, reference_weight: jax.Array
) -> jax.Array:
    """Per-event NPLM loss terms ``r_i (exp(f_i) - 1) - d_i f_i``; the caller sums.

    Args:
        f_values: f at each event, shape (n,).
        data_weight: d_i, 1 for data events, 0 otherwise (padding, reference).
        reference_weight: r_i, ``N(R)/N_R`` for reference events, 0 otherwise.

    Returns:
        Shape (n,) loss terms; their sum is L and ``t = -2 min L``.
    """
    return reference_weight * jnp.expm1(f_values) - data_weight * f_values


class Hparams(NamedTuple):
    """Per-member training numbers (pytree leaves: sweeping them does not recompile).

    Attributes:
        learning_rate: Adam learning rate.
        clip: weight-clipping value for the kernels; ``inf`` means no clipping.
    """

    learning_rate: jax.Array
    clip: jax.Array


@dataclass(frozen=True)
class TrainSpec:
    """Static training schedule (full batch; Adam or damped Newton).

    Args:
        epochs: number of full-batch Adam steps (Newton iterations for "newton").
        checkpoints: epochs (ascending, the last one equal to ``epochs``) at which t is
            recorded inside the compiled loop ("t against epochs"); t at epoch c is
            ``-2 L`` after c steps.
        decay: learning-rate profile over the epochs, multiplying the per-member rate:
            "constant" (the papers' choice) or "cosine" (cosine decay to ``final_fraction``).
        final_fraction: last-epoch learning rate over the initial one for "cosine".
        optimizer: "adam" (full-batch Adam, the papers' choice; weights clipped after every
            step) or "newton" (damped saddle-free Newton on all parameters at once; clipped
            weights at the bound pushed outward are held, the others projected into the box; a
            step is kept only if it lowers the loss). Newton is an option only: it can stop in
            a local minimum that long Adam training leaves (tests/test_nplm.py compares them).
        clip_scope: "all" (every weight, biases included, as NPLM_package) or "kernels".
        init: "glorot" (NPLM_package's glorot-uniform kernels and biases) or "lecun".
    """

    epochs: int
    checkpoints: tuple[int, ...] = ()
    decay: str = "constant"
    final_fraction: float = 0.01
    optimizer: str = "adam"
    clip_scope: str = "all"
    init: str = "glorot"

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"TrainSpec.epochs must be a positive int, got {self.epochs!r}")
        points = tuple(int(c) for c in self.checkpoints) or (self.epochs,)
        if points[-1] != self.epochs:
            points = (*[c for c in points if c < self.epochs], self.epochs)
        if any(c < 1 for c in points) or list(points) != sorted(set(points)):
            raise ValueError(
                f"TrainSpec.checkpoints must be ascending positive epochs <= {self.epochs}, "
                f"got {self.checkpoints!r}"
            )
        object.__setattr__(self, "checkpoints", points)
        if self.optimizer not in ("adam", "newton"):
            raise ValueError(f"TrainSpec.optimizer must be adam or newton, got {self.optimizer!r}")
        if self.decay not in ("constant", "cosine"):
            raise ValueError(f"TrainSpec.decay must be constant or cosine, got {self.decay!r}")
        if not 0.0 < self.final_fraction <= 1.0:
            raise ValueError(
                f"TrainSpec.final_fraction must be in (0, 1], got {self.final_fraction!r}"
            )
        if self.clip_scope not in CLIP_SCOPES:
            raise ValueError(f"TrainSpec.clip_scope must be one of {CLIP_SCOPES}")
        if self.init not in INITIALISATIONS:
            raise ValueError(f"TrainSpec.init must be one of {INITIALISATIONS}")

    def rate_profile(self, step: jax.Array) -> jax.Array:
        """Learning-rate multiplier at a (0-based) step."""
        if self.decay == "constant":
            return jnp.ones_like(step, jnp.float32)
        progress = step.astype(jnp.float32) / max(self.epochs - 1, 1)
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
        return self.final_fraction + (1.0 - self.final_fraction) * cosine


class NPLMFit(NamedTuple):
    """Result of one fit (or of an ensemble, with a leading member axis).

    Attributes:
        t: test statistic ``-2 L`` after the last epoch.
        t_history: t at each of ``TrainSpec.checkpoints``.
        params: trained parameters of f.
    """

    t: jax.Array
    t_history: jax.Array
    params: Any


def fit_test_function(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: Hparams,
    spec: NetworkSpec,
    train: TrainSpec,
) -> NPLMFit:
    """Minimise the weighted NPLM loss for one member (full batch, Adam, clipping per step).

    Args:
        key: typed PRNG key for the initialisation, consumed.
        x: events, shape (n, n_inputs).
        data_weight: d_i, shape (n,).
        reference_weight: r_i, shape (n,).
        hparams: learning rate and clip value of this member.
        spec: the architecture (static).
        train: the schedule (static).

    Returns:
        The fit; ``t = -2 L`` at the final parameters.
    """
    if train.optimizer == "newton":
        return _fit_newton(key, x, data_weight, reference_weight, hparams, spec, train)
    # Adam scaled by the per-member rate (a leaf) times the static profile of the schedule.
    optimizer = optax.chain(
        optax.scale_by_adam(),
        optax.scale_by_schedule(lambda step: -hparams.learning_rate * train.rate_profile(step)),
    )
    checkpoints = jnp.asarray(train.checkpoints)

    def loss(params):
        f = apply_test_function(params, x, spec)
        return jnp.sum(nplm_loss_terms(f, data_weight, reference_weight))

    def step(carry, epoch):
        params, opt_state, history = carry
        value, grads = jax.value_and_grad(loss)(params)
        # value is L after `epoch` steps: record it where a checkpoint asks for that epoch.
        history = jnp.where(checkpoints == epoch, -2.0 * value, history)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = clip_weights(optax.apply_updates(params, updates), hparams.clip, train.clip_scope)
        return (params, opt_state, history), None

    params = clip_weights(init_test_function(key, spec, train.init), hparams.clip, train.clip_scope)
    history = jnp.zeros(len(train.checkpoints), jnp.float32)
    carry = (params, optimizer.init(params), history)
    (params, _, history), _ = jax.lax.scan(step, carry, jnp.arange(train.epochs))
    t = -2.0 * loss(params)
    t_history = history.at[-1].set(t)  # the last checkpoint is `epochs`: after the last step
    return NPLMFit(t=t, t_history=t_history, params=params)


def _fit_newton(
    key: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: Hparams,
    spec: NetworkSpec,
    train: TrainSpec,
) -> NPLMFit:
    """Damped saddle-free Newton: step -(|H| + lambda)^-1 g in the Hessian eigenbasis.

    Negative-curvature directions are followed downhill (|eigenvalue|, Dauphin et al. 2014);
    lambda shrinks after a step that lowers the loss and grows (the step is then rejected)
    otherwise, so the loss never increases.
    """
    params = clip_weights(init_test_function(key, spec, train.init), hparams.clip, train.clip_scope)
    flat, unravel = ravel_pytree(params)
    is_clipped = ravel_pytree(
        jax.tree_util.tree_map_with_path(
            lambda path, leaf: jnp.full(
                leaf.shape, train.clip_scope == "all" or getattr(path[-1], "key", None) == "kernel"
            ),
            params,
        )
    )[0]

    def loss(flat_params):
        f = apply_test_function(unravel(flat_params), x, spec)
        return jnp.sum(nplm_loss_terms(f, data_weight, reference_weight))

    if len(spec.hidden) == 1:
        derivatives = lambda p: _one_hidden_layer_derivatives(  # noqa: E731
            unravel(p), x, data_weight, reference_weight, spec
        )
    else:
        derivatives = lambda p: (jax.grad(loss)(p), jax.hessian(loss)(p))  # noqa: E731

    def step(carry, _):
        flat_params, damping, current = carry
        grad, hessian = derivatives(flat_params)
        # Projected Newton (Bertsekas 1982): clipped weights at the bound whose descent direction
        # points outward are held fixed; the step solves for the free parameters only.
        at_bound = jnp.abs(flat_params) >= hparams.clip * (1.0 - 1e-6)
        held = is_clipped & at_bound & (flat_params * grad < 0)
        free = ~held
        hessian = jnp.where(free[:, None] & free[None, :], hessian, 0.0) + jnp.diag(held * 1.0)
        grad = jnp.where(free, grad, 0.0)
        eigenvalues, eigenvectors = jnp.linalg.eigh(hessian)
        scale = jnp.abs(eigenvalues) + damping
        proposal = flat_params - eigenvectors @ ((eigenvectors.T @ grad) / scale)
        proposal = jnp.where(is_clipped, jnp.clip(proposal, -hparams.clip, hparams.clip), proposal)
        proposed = loss(proposal)
        better = proposed < current
        return (
            jnp.where(better, proposal, flat_params),
            jnp.where(better, jnp.maximum(damping * 0.3, 1e-6), damping * 10.0),
            jnp.where(better, proposed, current),
        ), None

    carry = (flat, jnp.float32(1.0), loss(flat))
    history = []
    done = 0
    for checkpoint in train.checkpoints:
        carry, _ = jax.lax.scan(step, carry, None, length=checkpoint - done)
        done = checkpoint
        history.append(-2.0 * carry[2])
    t_history = jnp.stack(history)
    return NPLMFit(t=t_history[-1], t_history=t_history, params=unravel(carry[0]))


_ACTIVATION_DERIVATIVES = {
    # (value, first, second derivative) from the activation's output or input
    "sigmoid": lambda z: (
        (a := jax.nn.sigmoid(z)),
        (d1 := a * (1.0 - a)),
        d1 * (1.0 - 2.0 * a),
    ),
    "tanh": lambda z: ((a := jnp.tanh(z)), (d1 := 1.0 - a * a), -2.0 * a * d1),
    "relu": lambda z: (jax.nn.relu(z), (z > 0).astype(z.dtype), jnp.zeros_like(z)),
}


def _one_hidden_layer_derivatives(
    params: dict,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    spec: NetworkSpec,
) -> tuple[jax.Array, jax.Array]:
    """Gradient and Hessian of the NPLM loss for f = a . act(x W + b) + c, in closed form.

    The loss is sum_i l_i(f_i) with l' = r e^f - d and l'' = r e^f, so
    H = J^T diag(l'') J + sum_i l'_i Hess(f_i); Hess(f_i) only couples parameters of the same
    hidden unit. Costs a few forward passes instead of one per parameter (jax.hessian). The
    ordering is that of ``ravel_pytree``: hidden bias, hidden kernel (row-major), output bias,
    output kernel.
    """
    n_inputs, width = spec.n_inputs, spec.hidden[0]
    kernel = params["params"]["hidden_0"]["kernel"]
    a = params["params"]["output"]["kernel"][:, 0]
    z = (
        x @ kernel + params["params"]["hidden_0"]["bias"]
        if n_inputs > 1
        else (x * kernel[0] + params["params"]["hidden_0"]["bias"])
    )
    s0, s1, s2 = _ACTIVATION_DERIVATIVES[spec.activation](z)
    f = s0 @ a + params["params"]["output"]["bias"][0]
    exp_term = reference_weight * jnp.exp(f)
    first = exp_term - data_weight  # dl/df
    u = jnp.concatenate([jnp.ones_like(x[:, :1]), x], axis=1)  # (n, 1 + d): d z / d(b, W)
    # Jacobian of f: columns [b_j (H), W_kj (d*H), c, a_j (H)]
    jac_zb = (s1 * a)[:, None, :] * u[:, :, None]  # (n, 1 + d, H)
    jac = jnp.concatenate(
        [jac_zb.reshape(len(x), -1), jnp.ones_like(f)[:, None], s0], axis=1
    )  # (b, W) flatten row-major over (1 + d, H) is exactly [b_j, W_kj]
    grad = first @ jac
    hessian = (jac * exp_term[:, None]).T @ jac
    # sum_i l'_i Hess(f_i): per hidden unit j, a (1+d)x(1+d) block over (b_j, W_.j) and
    # a cross term between a_j and (b_j, W_.j).
    block = jnp.einsum("nj,nk,nl->jkl", first[:, None] * s2, u, u) * a[:, None, None]
    cross = jnp.einsum("nj,nk->jk", first[:, None] * s1, u)  # (H, 1 + d)
    zb_index = np.arange((1 + n_inputs) * width).reshape(1 + n_inputs, width)  # [k, j]
    a_index = (1 + n_inputs) * width + 1 + np.arange(width)
    rows = zb_index.T[:, :, None]  # (H, 1 + d, 1)
    cols = zb_index.T[:, None, :]  # (H, 1, 1 + d)
    hessian = hessian.at[rows, cols].add(block)
    hessian = hessian.at[zb_index.T, a_index[:, None]].add(cross)
    hessian = hessian.at[a_index[:, None], zb_index.T].add(cross)
    return grad, hessian


def fit_ensemble(
    keys: jax.Array,
    x: jax.Array,
    data_weight: jax.Array,
    reference_weight: jax.Array,
    hparams: Hparams,
    spec: NetworkSpec,
    train: TrainSpec,
    chunk_size: int = 16,
    schedule: str = "auto",
) -> NPLMFit:
    """Train E members in chunks, each chunk one compiled program (vmap or lax.map).

    ``x``, ``data_weight`` and ``reference_weight`` either carry a leading member axis or are
    shared by all members (a permutation null shares the events and varies the weights).
    Member i equals ``fit_test_function(keys[i], ...)`` with member i's inputs. The last chunk
    is padded by repeating members so that every chunk has the same shape (one compilation).

    Args:
        keys: typed keys, shape (E,).
        x: (E, n, n_inputs) or shared (n, n_inputs).
        data_weight: (E, n) or shared (n,).
        reference_weight: (E, n) or shared (n,).
        hparams: leaves of shape (E,) or scalars (shared).
        spec: the architecture.
        train: the schedule.
        chunk_size: members trained by one compiled call; memory grows with chunk_size * n.
        schedule: "vmap" (members of a chunk vectorised), "sequential" (``lax.map``: one
            after the other, inside the same program) or "auto" (see :func:`resolve_schedule`).

    Returns:
        The fits with a leading member axis E (numpy arrays).
    """
    n_members = keys.shape[0]
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    x = jnp.asarray(x, jnp.float32)
    data_weight = jnp.asarray(data_weight, jnp.float32)
    reference_weight = jnp.asarray(reference_weight, jnp.float32)
    hparams = Hparams(
        *(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (n_members,)) for h in hparams)
    )
    per_member = (
        x.ndim == 3,
        data_weight.ndim == 2,
        reference_weight.ndim == 2,
    )
    in_axes = (0, *(0 if m else None for m in per_member), 0)
    schedule = resolve_schedule(schedule, int(x.shape[-2]))
    fit_chunk = _compiled_chunk_fit(spec, train, in_axes, schedule)

    chunk = min(chunk_size, n_members)
    results = []
    for start in range(0, n_members, chunk):
        index = np.arange(start, start + chunk)
        index = np.minimum(index, n_members - 1)  # pad the last chunk by repetition

        def take(a, member, index=index):
            return a[index] if member else a

        out = fit_chunk(
            keys[index],
            take(x, per_member[0]),
            take(data_weight, per_member[1]),
            take(reference_weight, per_member[2]),
            Hparams(*(h[index] for h in hparams)),
        )
        n_real = min(chunk, n_members - start)
        results.append(jax.tree.map(lambda a, n=n_real: np.asarray(a)[:n], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *results)


_CHUNK_CACHE: dict = {}
SCHEDULES = ("auto", "vmap", "sequential")
# "auto" vmaps the members of a chunk: bench/nplm_toys.py on 2 cores at N_R = 200k found
# vmapped chunks of 4 faster per toy-epoch than lax.map over them in 7 of 10 rounds.
AUTO_SCHEDULE = "vmap"


def resolve_schedule(schedule: str, n_events: int) -> str:
    """The concrete schedule of a chunk: "vmap" or "sequential" ("auto" decides by size).

    Args:
        schedule: "auto" (vmap, see AUTO_SCHEDULE), "vmap" or "sequential".
        n_events: events per member (data plus reference, padding included); unused today.

    Returns:
        "vmap" or "sequential".
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    del n_events  # kept in the signature for a size-dependent rule
    return AUTO_SCHEDULE if schedule == "auto" else schedule


def _compiled_chunk_fit(
    spec: NetworkSpec, train: TrainSpec, in_axes: tuple, schedule: str = "vmap"
) -> Any:
    cache_key = (spec, train, in_axes, schedule)
    if cache_key not in _CHUNK_CACHE:
        fit = lambda k, x, d, r, h: fit_test_function(k, x, d, r, h, spec, train)  # noqa: E731
        if schedule == "vmap":
            _CHUNK_CACHE[cache_key] = jax.jit(jax.vmap(fit, in_axes=in_axes))
        else:

            def sequential(*args):
                mapped = tuple(a for a, axis in zip(args, in_axes, strict=True) if axis == 0)

                def one(members):
                    it = iter(members)
                    full = [
                        next(it) if axis == 0 else a for a, axis in zip(args, in_axes, strict=True)
                    ]
                    return fit(*full)

                return jax.lax.map(one, mapped)

            _CHUNK_CACHE[cache_key] = jax.jit(sequential)
    return _CHUNK_CACHE[cache_key]


# --------------------------------------------------------------------------------------------
# Inputs of the two tests
# --------------------------------------------------------------------------------------------


def nplm_inputs(
    data: jax.Array,
    data_mask: jax.Array,
    reference: jax.Array,
    reference_mask: jax.Array,
    n_expected: jax.Array | float,
    reference_event_weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Events and weights of NPLM for one member (vmappable; padded events have mask 0).

    Args:
        data: (n_data_max, d) data events D.
        data_mask: (n_data_max,) 1 for real data events.
        reference: (n_ref_max, d) reference events R.
        reference_mask: (n_ref_max,) 1 for real reference events.
        n_expected: N(R), the data count expected under the reference hypothesis.
        reference_event_weights: optional per-event weights w_i >= 0 of the reference
            (e.g. generator weights); None means all 1.

    Returns:
        ``(x, data_weight, reference_weight)``; reference event i gets
        ``N(R) w_i / sum_j w_j`` (``N(R) / N_R`` for unit weights), so the reference weights
        sum to N(R).
    """
    data_mask = jnp.asarray(data_mask, jnp.float32)
    reference_mask = jnp.asarray(reference_mask, jnp.float32)
    if reference_event_weights is not None:
        reference_mask = reference_mask * jnp.asarray(reference_event_weights, jnp.float32)
    total = jnp.sum(reference_mask)
    x = jnp.concatenate([data, reference], axis=-2)
    data_weight = jnp.concatenate([data_mask, jnp.zeros_like(reference_mask)], axis=-1)
    reference_weight = jnp.concatenate(
        [jnp.zeros_like(data_mask), reference_mask * (n_expected / total)], axis=-1
    )
    return x, data_weight, reference_weight


def reference_statistics(
    reference: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (weighted) mean and standard deviation of the reference sample.

    Args:
        reference: (N_R, d) reference events.
        weights: optional (N_R,) event weights.

    Returns:
        ``(mean, std)``, each (d,); inputs are standardised as ``(x - mean) / std`` for data
        and reference alike, so the clip acts on the same scale whatever the feature units.

    Raises:
        ValueError: a feature is constant over the reference (std 0).
    """
    reference = np.asarray(reference, np.float64)
    w = np.ones(len(reference)) if weights is None else np.asarray(weights, np.float64)
    mean = np.average(reference, axis=0, weights=w)
    std = np.sqrt(np.average((reference - mean) ** 2, axis=0, weights=w))
    constant = np.flatnonzero(~(std > 0))
    if constant.size:
        raise ValueError(
            f"reference feature(s) {constant.tolist()} are constant (std 0): cannot standardise"
        )
    return mean, std


def symmetrized_weights(
    in_a: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Weights of the two fits of the symmetrized test on the pooled sample A u B.

    Args:
        in_a: (n,) 1 where the pooled event belongs to A.
        valid: (n,) 1 for real pooled events (0 for padding).

    Returns:
        ``(data_weight_a, reference_weight_a, data_weight_b, reference_weight_b)``: the fit
        for A has d = 1[A], r = N_A / (N_A + N_B) on every pooled event; B likewise.
    """
    valid = jnp.asarray(valid, jnp.float32)
    in_a = jnp.asarray(in_a, jnp.float32) * valid
    in_b = valid - in_a
    n_a, n_b = jnp.sum(in_a), jnp.sum(in_b)
    n_total = n_a + n_b
    return in_a, valid * (n_a / n_total), in_b, valid * (n_b / n_total)


def permutation_labels(key: jax.Array, valid: jax.Array, n_a: jax.Array | int) -> jax.Array:
    """A random relabelling of the pooled sample: n_a valid events become "A" (vmappable).

    Args:
        key: typed key, consumed.
        valid: (n,) 1 for real pooled events.
        n_a: number of events labelled A (the observed N_A).

    Returns:
        (n,) float 0/1 indicator of the new A sample.
    """
    u = jax.random.uniform(key, valid.shape)
    u = jnp.where(valid > 0, u, 2.0)  # padding sorts last and is never drawn
    rank = jnp.argsort(jnp.argsort(u))
    return (rank < n_a).astype(jnp.float32)


def symmetrized_test(
    keys: jax.Array,
    x: jax.Array,
    in_a: jax.Array,
    valid: jax.Array,
    hparams: Hparams,
    spec: NetworkSpec,
    train: TrainSpec,
    chunk_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetrized statistic ``t_{A+B}(A) + t_{A+B}(B)`` for E members (two fits each).

    Args:
        keys: typed keys (E,); member i uses ``split(keys[i])`` for its two networks.
        x: pooled events (E, n, d) or shared (n, d).
        in_a: (E, n) or shared (n,) indicator of A.
        valid: (E, n) or shared (n,) indicator of real events.
        hparams: per-member learning rate and clip (clip ``inf``: the test needs none).
        spec: the architecture.
        train: the schedule.
        chunk_size: members per vmapped chunk (each member is two fits).

    Returns:
        ``(t, t_history)``: shapes (E,) and (E, n_checkpoints); each is the A fit plus the B fit.
    """
    n_members = keys.shape[0]
    da, ra, db, rb = jax.vmap(symmetrized_weights)(
        *(jnp.broadcast_to(jnp.asarray(a), (n_members, *jnp.shape(a)[-1:])) for a in (in_a, valid))
    )
    fit_keys = jax.vmap(jax.random.split)(keys)  # (E, 2): one network for A, one for B
    x = jnp.asarray(x, jnp.float32)
    x_both = jnp.concatenate([x, x]) if x.ndim == 3 else x
    hp = Hparams(
        *(jnp.tile(jnp.broadcast_to(jnp.asarray(h, jnp.float32), (n_members,)), 2) for h in hparams)
    )
    fits = fit_ensemble(
        jnp.concatenate([fit_keys[:, 0], fit_keys[:, 1]]),
        x_both,
        jnp.concatenate([da, db]),
        jnp.concatenate([ra, rb]),
        hp,
        spec,
        train,
        chunk_size=2 * chunk_size,
    )
    t = fits.t[:n_members] + fits.t[n_members:]
    history = fits.t_history[:n_members] + fits.t_history[n_members:]
    return t, history


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


MIN_EVENTS = 2  # a 1-event sample has no distribution to compare


def _as_events(name: str, events: Any) -> np.ndarray:
    try:
        array = np.asarray(events, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (n_events, n_features), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty (zero events): the test needs N > 0")
    if array.shape[0] < MIN_EVENTS:
        raise ValueError(
            f"{name} has {array.shape[0]} event: the test needs at least {MIN_EVENTS} events "
            "(with one event t measures nothing but the network's flexibility)"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.any(axis=1).sum())} events with NaN or inf values "
            f"(first at index {int(np.argmax(bad.any(axis=1)))})"
        )
    return array


def check_samples(
    first: Any,
    second: Any,
    names: tuple[str, str] = ("data", "reference"),
    support: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate two samples: non-empty, finite, same feature dimension, inside the support.

    Args:
        first: events, (n,) or (n, d).
        second: events, (m,) or (m, d).
        names: what to call the samples in error messages.
        support: (lower, upper) bounds of the reference support, applied to every feature;
            None means unbounded.

    Returns:
        Both samples as float64 arrays of shape (n, d).

    Raises:
        ValueError: naming the sample and the problem.
    """
    a = _as_events(names[0], first)
    b = _as_events(names[1], second)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} has {a.shape[1]} features but {names[1]} has {b.shape[1]}: "
            "the two samples must have the same dimension"
        )
    lower, upper = support
    for name, array in zip(names, (a, b), strict=True):
        outside = np.zeros(len(array), bool)
        if lower is not None:
            outside |= (array < lower).any(axis=1)
        if upper is not None:
            outside |= (array > upper).any(axis=1)
        if outside.any():
            raise ValueError(
                f"{name} has {int(outside.sum())} events outside the reference support "
                f"[{lower}, {upper}] (first: {array[np.argmax(outside)].tolist()})"
            )
    return a, b


def check_nplm_inputs(
    data: Any,
    reference: Any,
    clip: float | None,
    support: tuple[float | None, float | None] = (None, None),
) -> tuple[np.ndarray, np.ndarray]:
    """Validate NPLM inputs, and refuse the unclipped loss where it diverges.

    Without weight clipping the NPLM loss is unbounded below: f can grow without limit on any
    data event that is not a reference event (arXiv:2401.09530). When data events lie outside
    the range spanned by the reference sample a single sigmoid step reaches that divergence,
    so this raises; otherwise it warns that t then depends on the number of epochs.

    Args:
        data: data events D.
        reference: reference events R.
        clip: weight-clipping value; None or inf means unclipped.
        support: bounds of the reference support, see :func:`check_samples`.

    Returns:
        ``(data, reference)`` as float64 arrays (n, d).

    Raises:
        ValueError: bad samples, or unclipped loss with data outside the reference range.
    """
    d, r = check_samples(data, reference, ("data", "reference"), support)
    if clip is not None and not math.isfinite(clip):
        clip = None
    if clip is not None and clip <= 0:
        raise ValueError(f"weight clip must be > 0 (or None for no clipping), got {clip}")
    if clip is None:
        low, high = r.min(axis=0), r.max(axis=0)
        outside = ((d < low) | (d > high)).any(axis=1)
        if outside.any():
            raise ValueError(
                f"unbounded NPLM loss: {int(outside.sum())} data events lie outside the range of "
                f"the reference sample ({low.tolist()} to {high.tolist()}), where exp(f) n_R = 0 "
                "and the unclipped loss diverges to -inf; use weight clipping or the symmetrized "
                "test (reference A u B)"
            )
        warnings.warn(
            "NPLM without weight clipping: the loss is unbounded below for every data event "
            "that is not a reference event, so t grows with the number of epochs",
            RuntimeWarning,
            stacklevel=2,
        )
    return d, r


def check_event_weights(name: str, weights: Any, n_events: int) -> np.ndarray:
    """Validate per-event weights: one finite, non-negative number per event, positive sum.

    Args:
        name: what to call the weights in error messages.
        weights: (n_events,) values.
        n_events: number of events they belong to.

    Returns:
        The weights as float64 (n_events,).

    Raises:
        ValueError: naming the array and the problem.
    """
    try:
        w = np.asarray(weights, np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a numeric array ({error})") from None
    if w.shape != (n_events,):
        raise ValueError(f"{name} must have shape ({n_events},), one per event, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} has {int((~np.isfinite(w)).sum())} NaN or inf values")
    if np.any(w < 0):
        raise ValueError(f"{name} has {int((w < 0).sum())} negative values")
    if not w.sum() > 0:
        raise ValueError(f"{name} sum to 0")
    return w


# --------------------------------------------------------------------------------------------
# Null distributions, p-values, significance
# --------------------------------------------------------------------------------------------


def fit_chi2_dof(t: Sequence[float] | np.ndarray) -> float:
    """Maximum-likelihood number of degrees of freedom of a chi2 (location 0, scale 1).

    Args:
        t: null toys' test statistics, all > 0.

    Returns:
        The fitted dof.
    """
    t = np.asarray(t, np.float64)
    if t.size < 2 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("fit_chi2_dof needs at least 2 finite, positive t values")
    dof, _, _ = scipy_stats.chi2.fit(t, floc=0.0, fscale=1.0)
    return float(dof)


def compare_with_chi2(t: Sequence[float] | np.ndarray, dof: float) -> dict[str, float]:
    """Compare toy t values with chi2(dof) and with a chi2 of fitted dof.

    Args:
        t: null toys' test statistics.
        dof: the expected degrees of freedom (number of trainable parameters for NPLM).

    Returns:
        ``ks_statistic``, ``ks_pvalue`` (two-sided KS against chi2(dof)), ``fitted_dof``,
        ``fitted_ks_pvalue`` (KS against chi2(fitted_dof); optimistic since fitted),
        ``mean``, ``variance`` and ``n_toys``.
    """
    t = np.asarray(t, np.float64)
    ks = scipy_stats.kstest(t, scipy_stats.chi2(dof).cdf)
    positive = t[np.isfinite(t) & (t > 0)]
    if positive.size < t.size:
        # t <= 0 means a fit ended worse than f = 0: training did not converge.
        warnings.warn(
            f"{t.size - positive.size} of {t.size} toys have t <= 0 or non-finite t "
            "(unconverged fits); the dof fit uses the others",
            RuntimeWarning,
            stacklevel=2,
        )
    fitted = fit_chi2_dof(positive) if positive.size >= 2 else math.nan
    ks_fitted = scipy_stats.kstest(t, scipy_stats.chi2(fitted).cdf) if positive.size >= 2 else None
    return {
        **tail_comparison(t, dof),
        "dof": float(dof),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "fitted_dof": fitted,
        "fitted_ks_pvalue": math.nan if ks_fitted is None else float(ks_fitted.pvalue),
        "n_nonpositive": int(t.size - positive.size),
        "mean": float(t.mean()),
        "variance": float(t.var(ddof=1)),
        "n_toys": int(t.size),
    }


TAIL_QUANTILES = (0.95, 0.99)


def tail_comparison(
    t: Sequence[float] | np.ndarray, dof: float, quantiles: Sequence[float] = TAIL_QUANTILES
) -> dict[str, float]:
    """The tail of the toys against chi2(dof): quantiles and counts beyond them.

    KS is dominated by the bulk; an anti-conservative tail (too many toys beyond chi2's
    99% point, so chi2 p-values too small where a discovery is claimed) needs its own test.
    For each quantile q: the empirical q-quantile of t, chi2(dof)'s, the number of toys beyond
    chi2's (expected ``n (1 - q)``), and binomial p-values of that count (two-sided, and
    one-sided for an excess).

    Args:
        t: null toys' test statistics.
        dof: the chi2 degrees of freedom compared with.
        quantiles: the probabilities q.

    Returns:
        Keys ``q95_empirical``, ``q95_chi2``, ``n_beyond_q95``, ``expected_beyond_q95``,
        ``binomial_pvalue_q95``, ``excess_pvalue_q95`` (and the same for every q).
    """
    t = np.asarray(t, np.float64)
    result: dict[str, float] = {}
    for q in quantiles:
        name = f"q{100 * q:g}".replace(".", "_")
        threshold = float(scipy_stats.chi2(dof).ppf(q))
        beyond = int(np.sum(t > threshold))
        result[f"{name}_empirical"] = float(np.quantile(t, q))
        result[f"{name}_chi2"] = threshold
        result[f"n_beyond_{name}"] = beyond
        result[f"expected_beyond_{name}"] = t.size * (1.0 - q)
        result[f"binomial_pvalue_{name}"] = float(
            scipy_stats.binomtest(beyond, t.size, 1 - q).pvalue
        )
        result[f"excess_pvalue_{name}"] = float(
            scipy_stats.binomtest(beyond, t.size, 1 - q, alternative="greater").pvalue
        )
    return result


def significance(t_observed: float, t_null: Sequence[float] | np.ndarray, dof: float) -> dict:
    """p-values and Z of an observation, each labelled with where it comes from.

    Conventions: ``p_toys = (k + 1) / (n + 1)`` (k null toys with t >= t_obs). When k = 0 the
    toys only bound the p-value, ``p <= 1 / (n + 1)``, so ``z_toys`` is a lower bound
    (``z_toys_is_bound`` True): Z from n toys is never quoted beyond ``Phi^-1(1 - 1/(n+1))``.
    ``p_chi2 = chi2.sf(t_obs, dof)`` relies on the asymptotic null (check it with
    :func:`compare_with_chi2`).

    Args:
        t_observed: the observed statistic.
        t_null: null toys.
        dof: degrees of freedom of the asymptotic chi2.

    Returns:
        ``t``, ``p_toys``, ``z_toys``, ``z_toys_is_bound``, ``n_toys``, ``p_chi2``, ``z_chi2``,
        ``dof``.
    """
    t_null = np.asarray(t_null, np.float64)
    p_toys = empirical_p_value(t_observed, t_null)
    p_chi2 = float(chi2_p_value(t_observed, dof))
    return {
        "t": float(t_observed),
        "p_toys": p_toys,
        "z_toys": float(z_from_p(p_toys)),
        "z_toys_is_bound": bool(np.sum(t_null >= t_observed) == 0),
        "n_toys": int(t_null.size),
        "p_chi2": p_chi2,
        "z_chi2": float(z_from_p(p_chi2)),
        "dof": float(dof),
    }


def format_significance(result: dict) -> str:
    """One line: ``Z = 2.1 (toys, p = 0.018, 1000 toys); Z = 2.3 (chi2(13), p = 0.011)``.

    A Z from toys that is only a bound prints as ``Z > ...``.
    """
    relation = ">" if result["z_toys_is_bound"] else "="
    bound = " (bound: no toy beyond t)" if result["z_toys_is_bound"] else ""
    return (
        f"t = {result['t']:.2f}: Z {relation} {result['z_toys']:.2f} from {result['n_toys']} "
        f"toys (p {'<=' if result['z_toys_is_bound'] else '='} {result['p_toys']:.3g}){bound}; "
        f"Z = {result['z_chi2']:.2f} from chi2({result['dof']:g}) (p = {result['p_chi2']:.3g})"
    )


def empirical_p_value(t_observed: float, t_null: Sequence[float] | np.ndarray) -> float:
    """Empirical p-value ``(k + 1) / (n + 1)``, k = #{t_null >= t_observed}.

    Args:
        t_observed: the observed statistic.
        t_null: n null toys.

    Returns:
        The p-value, at least 1/(n+1).
    """
    t_null = np.asarray(t_null, np.float64)
    if t_null.size == 0:
        raise ValueError("empirical_p_value needs at least one null toy")
    k = int(np.sum(t_null >= t_observed))
    return (k + 1) / (t_null.size + 1)


def chi2_p_value(t_observed: float | np.ndarray, dof: float) -> float | np.ndarray:
    """Asymptotic p-value ``P(chi2_dof >= t_observed)``.

    Args:
        t_observed: the observed statistic(s).
        dof: degrees of freedom.

    Returns:
        The p-value(s).
    """
    return scipy_stats.chi2.sf(t_observed, dof)


def z_from_p(p: float | np.ndarray) -> float | np.ndarray:
    """One-sided significance ``Z = Phi^-1(1 - p)`` (p = 0.5 gives Z = 0).

    Args:
        p: p-value(s) in (0, 1].

    Returns:
        Z (computed with the survival function, accurate for tiny p).
    """
    return scipy_stats.norm.isf(p)
