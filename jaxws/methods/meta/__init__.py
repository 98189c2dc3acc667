"""Meta-learning on one interface: an inner problem, an outer update, one shared outer loop.

A *task* is a labelled problem indexed into a shared event pool (for the jet study: one
signal model other than the target against background, pure samples, arXiv:2312.06152 sec. 5).
Tasks are stacked as a `MemberData` with a leading task axis T; every episode re-splits each
task's training events at random into a *support* half (inner loop, "base learning") and a
*query* half (the meta-loss), and its validation events serve the early-stopping loss, so the
three steps of an episode see different events, as in the paper.

A variant is a `MetaLearner` (the protocol below). The base class `GradientMetaLearner`
implements it for every gradient-based method: the inner loop (`adapt`) is plain gradient
descent on the parameters selected by `adapted`, `inner_epochs` epochs over the support set
at the inner learning rate beta (eq. 6); the meta-loss is the query loss of the adapted
parameters; the outer update (eq. 7) is one optimiser step at gamma on the parameters
selected by `meta_trained` (plus any learner-specific meta-parameters). With
`first_order=True` the inner gradients are treated as constants (`stop_gradient`), which is
first-order MAML and the paper's update (the gradient at theta' applied to theta, S, S-bar);
otherwise the exact second-order gradient flows through the whole inner loop. A new variant
is one small file that picks the predicates or overrides one method, and registers itself:

    @register("anil")
    class ANIL(GradientMetaLearner):
        adapted = staticmethod(partition.is_head)

The outer loop (`meta_train`) is shared: each episode visits every task once, in random
order, in meta-batches of `meta_batch_size` tasks that are `jax.vmap`ped (not looped) and whose
meta-gradients are averaged before one outer step. The paper applies the tasks' updates one
after the other; that is `meta_batch_size = 1` (the episode is then a `lax.scan` of T
sequential updates). After each outer step the updated parameters' validation loss of the
meta-batch's tasks is recorded; the task-averaged loss of an episode drives early stopping
(patience 20) and the best meta-parameters are kept. Optionally the `hard_tasks` tasks with
the highest query loss in the episode are re-sampled (fresh support/query splits) into one
extra meta-batch at the end of the episode: the hard-task meta-batch of Sun et al. 2019
(arXiv:1812.02391), which the paper left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Protocol

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxws.config import check
from jaxws.models import partition
from jaxws.train import MemberData, early_stopping
from jaxws.train.losses import sigmoid_binary_cross_entropy

ApplyFn = Callable[[dict, dict, Any], jnp.ndarray]
Batch = tuple[Any, jnp.ndarray, jnp.ndarray]  # (inputs, labels, weights)


@flax.struct.dataclass
class MetaHparams:
    """Per-run learning rates (pytree leaves: a sweep does not recompile).

    Attributes:
      inner_lr: beta, the base-learning (inner loop) step size; Table 2: 1e-3.
      outer_lr: gamma, the meta-learner step size; Table 2: 1e-4.
    """

    inner_lr: jax.Array | float
    outer_lr: jax.Array | float


def check_hparams(hparams: MetaHparams) -> None:
    """Raise ValueError unless both learning rates are finite and > 0."""
    for name in ("inner_lr", "outer_lr"):
        value = np.asarray(getattr(hparams, name))
        if not np.all(np.isfinite(value)) or np.any(value <= 0):
            raise ValueError(f"meta-learning rate {name} must be finite and > 0, got {value}")


@dataclasses.dataclass(frozen=True)
class MetaConfig:
    """Static settings of the inner and outer loops.

    Attributes:
      inner_epochs: epochs of base learning over the support set (paper: 3).
      inner_batch_size: minibatch size of base learning (paper: 500).
      support_fraction: share of a task's training events used as support (rest: query).
      meta_batch_size: tasks per outer step; 0 means all tasks (one step per episode); 1 is
        the paper's sequential updates.
      max_episodes: hard cap on episodes.
      patience: episodes without improvement of the task-averaged loss before stopping (20).
      min_delta: an improvement must exceed this.
      first_order: drop second-order terms (first-order MAML; the paper's eq. 7).
      hard_tasks: re-sample this many hardest tasks into one extra meta-batch per episode.
      outer_optimizer: "adam" (Keras' defaults, as the paper's optimizer) or "sgd" (eq. 7
        literally).
      early_stopping_on: "updated" (the paper: the task loss of the updated parameters) or
        "adapted" (the task loss after adapting on the support set).
    """

    inner_epochs: int = 3
    inner_batch_size: int = 500
    support_fraction: float = 0.5
    meta_batch_size: int = 0
    max_episodes: int = 200
    patience: int = 20
    min_delta: float = 0.0
    first_order: bool = False
    hard_tasks: int = 0
    outer_optimizer: str = "adam"
    early_stopping_on: str = "updated"

    def __post_init__(self):
        check(self.inner_epochs >= 1, f"meta.inner_epochs must be >= 1, got {self.inner_epochs}")
        check(self.inner_batch_size >= 1, "meta.inner_batch_size must be >= 1")
        check(
            0 < self.support_fraction < 1,
            f"meta.support_fraction must be in (0, 1), got {self.support_fraction}",
        )
        check(self.meta_batch_size >= 0, "meta.meta_batch_size must be >= 0")
        check(self.max_episodes >= 1, "meta.max_episodes must be >= 1")
        check(self.patience >= 1, "meta.patience must be >= 1")
        check(self.min_delta >= 0, "meta.min_delta must be >= 0")
        check(self.hard_tasks >= 0, "meta.hard_tasks must be >= 0")
        check(
            self.outer_optimizer in ("adam", "sgd"),
            f"meta.outer_optimizer must be 'adam' or 'sgd', got {self.outer_optimizer!r}",
        )
        check(
            self.early_stopping_on in ("updated", "adapted"),
            f"meta.early_stopping_on must be 'updated' or 'adapted', got "
            f"{self.early_stopping_on!r}",
        )


@flax.struct.dataclass
class MetaState:
    """What the outer loop learns: model parameters and learner-specific extras.

    Attributes:
      params: the model's parameter tree.
      extra: learner-specific meta-parameters (e.g. Meta-SGD's per-parameter inner learning
        rates, keyed by parameter path); {} for most learners.
    """

    params: dict
    extra: dict


@flax.struct.dataclass
class Task:
    """One task's data for one episode (gathered from the pool)."""

    support: Batch
    query: Batch
    validation: Batch


class MetaLearner(Protocol):
    """The interface every variant implements (see `GradientMetaLearner` for the defaults).

    Predicates say how the CWoLa fine-tuning (phase 3) treats the meta-trained network:
    `fine_tune_trainable` selects the parameters trained on the CWoLa task and
    `fine_tune_reinit` those re-initialised before (None: none).
    """

    name: str
    uses_meta_parameters: bool
    fine_tune_trainable: partition.Predicate
    fine_tune_reinit: partition.Predicate | None

    def init(self, key: jax.Array, params: dict, hparams: MetaHparams) -> MetaState: ...

    def adapt(
        self,
        state: MetaState,
        model_state: dict,
        support: Batch,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> dict: ...

    def meta_loss(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> jax.Array: ...

    def meta_gradient(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> tuple[Any, jax.Array]: ...

    def init_outer(self, state: MetaState) -> Any: ...

    def outer_update(
        self, state: MetaState, opt_state: Any, grads: Any, hparams: MetaHparams
    ) -> tuple[MetaState, Any]: ...


_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make a learner available as `method=<name>` (`get(name)`)."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"meta-learner {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def get(name: str) -> type:
    """The learner class registered as `name`."""
    _load_variants()
    if name not in _REGISTRY:
        raise ValueError(f"unknown meta-learner {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def available() -> list[str]:
    """Names of the registered learners."""
    _load_variants()
    return sorted(_REGISTRY)


def _load_variants() -> None:
    # Importing a variant's module registers it; variants import this package, so late import.
    from jaxws.methods.meta import anil, maml, meta_sgd, mtl, reptile  # noqa: F401


def _weighted_mean(values, weights):
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


class GradientMetaLearner:
    """Gradient-based meta-learning (MAML family) with choosable inner and outer parameters.

    Args:
      apply_fn: `(params, model_state, x) -> outputs` in inference mode (batch-norm running
        statistics fixed), one output per example.
      config: `MetaConfig`.
      loss_fn: per-example loss `(outputs, labels) -> (B,)`.

    Class attributes (override in a variant):
      adapted: parameters changed by the inner loop.
      meta_trained: parameters changed by the outer update.
      uses_meta_parameters: the network carries MTL scale/shift (model `meta=True`).
      fine_tune_trainable, fine_tune_reinit: phase-3 treatment (see `MetaLearner`).
    """

    name = "gradient"
    adapted = staticmethod(partition.everything)
    meta_trained = staticmethod(partition.everything)
    uses_meta_parameters = False
    fine_tune_trainable = staticmethod(partition.everything)
    fine_tune_reinit: partition.Predicate | None = None

    def __init__(self, apply_fn: ApplyFn, config: MetaConfig, loss_fn=sigmoid_binary_cross_entropy):
        self.apply_fn = apply_fn
        self.config = config
        self.loss_fn = loss_fn

    # -- inner problem --------------------------------------------------------------------
    def init(self, key: jax.Array, params: dict, hparams: MetaHparams) -> MetaState:
        """Meta-state from starting parameters (`key` is for learners that draw extras)."""
        del key, hparams
        return MetaState(params=params, extra={})

    def task_loss(self, params: dict, model_state: dict, batch: Batch) -> jax.Array:
        """Weighted mean loss of `params` on a batch."""
        x, labels, weights = batch
        outputs = self.apply_fn(params, model_state, x)
        return _weighted_mean(self.loss_fn(outputs, labels), weights)

    def inner_step_size(self, state: MetaState, hparams: MetaHparams):
        """Step size of the inner loop: a scalar, or a flat dict matching the adapted params."""
        del state
        return hparams.inner_lr

    def adapt(
        self,
        state: MetaState,
        model_state: dict,
        support: Batch,
        hparams: MetaHparams,
        key: jax.Array,
    ) -> dict:
        """Base learning (eq. 6): `inner_epochs` epochs of gradient descent on the support set.

        Returns:
          The adapted parameter tree (only `adapted` parameters differ from `state.params`).
        """
        config = self.config
        adapted, fixed = partition.split(state.params, self.adapted)
        step_size = self.inner_step_size(state, hparams)
        x, labels, weights = support
        n = labels.shape[0]
        batch_size = min(config.inner_batch_size, n)
        n_batches = math.ceil(n / batch_size)
        pad = n_batches * batch_size - n

        def loss_of(adapted_params, batch):
            return self.task_loss(partition.merge(adapted_params, fixed), model_state, batch)

        def step(adapted_params, index_and_weight):
            index, w = index_and_weight
            batch = (jax.tree.map(lambda a: a[index], x), labels[index], weights[index] * w)
            grads = jax.grad(loss_of)(adapted_params, batch)
            if config.first_order:
                grads = jax.lax.stop_gradient(grads)
            if isinstance(step_size, dict):
                new = {k: p - step_size[k] * grads[k] for k, p in adapted_params.items()}
            else:
                new = jax.tree.map(lambda p, g: p - step_size * g, adapted_params, grads)
            return new, None

        # All epochs' minibatches in one scan (a nested scan compiles much more slowly).
        orders = jax.vmap(lambda k: jnp.pad(jax.random.permutation(k, n), (0, pad)))(
            jax.random.split(key, config.inner_epochs)
        )
        valid = jnp.broadcast_to(
            jnp.pad(jnp.ones((n,), labels.dtype), (0, pad)), (config.inner_epochs, n + pad)
        )
        n_steps = config.inner_epochs * n_batches
        batches = (orders.reshape(n_steps, batch_size), valid.reshape(n_steps, batch_size))
        adapted, _ = jax.lax.scan(step, adapted, batches)
        return partition.merge(adapted, fixed)

    def meta_loss(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> jax.Array:
        """Query loss of the parameters adapted on the support set."""
        params = self.adapt(state, model_state, task.support, hparams, key)
        return self.task_loss(params, model_state, task.query)

    # -- outer update ---------------------------------------------------------------------
    def _outer_part(self, state: MetaState):
        trainable, frozen = partition.split(state.params, self.meta_trained)
        return (trainable, state.extra), frozen

    def meta_gradient(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> tuple[Any, jax.Array]:
        """Gradient of the meta-loss w.r.t. the outer parameters, and the meta-loss.

        Returns:
          (grads, loss): grads has the structure of `(meta-trained flat params, state.extra)`.
        """
        outer, frozen = self._outer_part(state)

        def objective(outer_params):
            trainable, extra = outer_params
            inner_state = MetaState(params=partition.merge(trainable, frozen), extra=extra)
            return self.meta_loss(inner_state, model_state, task, hparams, key)

        loss, grads = jax.value_and_grad(objective)(outer)
        return grads, loss

    def _transform(self) -> optax.GradientTransformation:
        if self.config.outer_optimizer == "adam":
            return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)
        return optax.identity()

    def init_outer(self, state: MetaState) -> Any:
        """Optimiser state of the outer update."""
        outer, _ = self._outer_part(state)
        return self._transform().init(outer)

    def outer_update(
        self, state: MetaState, opt_state: Any, grads: Any, hparams: MetaHparams
    ) -> tuple[MetaState, Any]:
        """One outer step at gamma = `hparams.outer_lr` (eq. 7)."""
        outer, frozen = self._outer_part(state)
        updates, opt_state = self._transform().update(grads, opt_state, outer)
        trainable, extra = jax.tree.map(lambda p, u: p - hparams.outer_lr * u, outer, updates)
        return MetaState(params=partition.merge(trainable, frozen), extra=extra), opt_state

    def evaluation_loss(
        self, state: MetaState, model_state: dict, task: Task, hparams: MetaHparams, key: jax.Array
    ) -> jax.Array:
        """The task loss for early stopping on the validation events."""
        params = state.params
        if self.config.early_stopping_on == "adapted":
            params = self.adapt(state, model_state, task.support, hparams, key)
        return self.task_loss(params, model_state, task.validation)


# -- the shared outer loop --------------------------------------------------------------------
@flax.struct.dataclass
class OuterState:
    state: MetaState
    opt_state: Any
    best_state: MetaState
    best_loss: jax.Array
    best_episode: jax.Array
    bad_episodes: jax.Array
    episode: jax.Array
    done: jax.Array
    history: jax.Array


@flax.struct.dataclass
class MetaResult:
    """Outcome of meta-training.

    Attributes:
      state: the best `MetaState` (lowest task-averaged evaluation loss).
      history: (max_episodes,) task-averaged evaluation loss per episode, NaN after stopping.
      best_episode: 0-based episode of the kept state.
      episodes: episodes run.
    """

    state: MetaState
    history: jax.Array
    best_episode: jax.Array
    episodes: jax.Array


_select = early_stopping.select


def _check_tasks(tasks: MemberData, n_pool: int) -> int:
    shape = np.shape(tasks.train_index)
    if len(shape) != 2:
        raise ValueError(f"tasks need a leading task axis: train_index has shape {shape}")
    n_tasks = shape[0]
    if n_tasks < 2:
        raise ValueError(
            f"meta-learning needs a task family of at least 2 tasks, got {n_tasks}; with one "
            "task there is nothing to learn across tasks (use transfer learning)"
        )
    for name in ("train_index", "val_index"):
        index = np.asarray(getattr(tasks, name))
        if index.min() < 0 or index.max() >= n_pool:
            raise ValueError(f"tasks.{name} holds indices outside the pool of {n_pool} events")
    if shape[1] < 2:
        raise ValueError("every task needs >= 2 training events (support and query)")
    for name in ("train_weight", "val_weight"):
        w = np.asarray(getattr(tasks, name))
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"tasks.{name} must be finite and >= 0")
        if np.any(w.sum(axis=1) <= 0):
            raise ValueError(f"every task needs events with {name} > 0")
    return n_tasks


class MetaTrainer:
    """Builds and runs the jitted episode of a learner (reuse it to avoid recompiling)."""

    def __init__(self, learner: GradientMetaLearner):
        self.learner = learner
        self._episode = jax.jit(self.episode)

    def _gather_tasks(self, pool, tasks: MemberData, task_ids, split_perm, n_support):
        """Tasks `task_ids` with support/query from the per-task permutations `split_perm`."""

        def one(t):
            perm = split_perm[t]
            sup, qry = perm[:n_support], perm[n_support:]

            def batch(index, labels, weights, rows):
                idx = index[t][rows]
                return (jax.tree.map(lambda a: a[idx], pool), labels[t][rows], weights[t][rows])

            return Task(
                support=batch(tasks.train_index, tasks.train_label, tasks.train_weight, sup),
                query=batch(tasks.train_index, tasks.train_label, tasks.train_weight, qry),
                validation=(
                    jax.tree.map(lambda a: a[tasks.val_index[t]], pool),
                    tasks.val_label[t],
                    tasks.val_weight[t],
                ),
            )

        return jax.vmap(one)(task_ids)

    def _meta_batch_step(
        self, carry, batch, pool, tasks, split_perms, n_support, model_state, hparams
    ):
        learner = self.learner
        state, opt_state, val_losses, query_losses = carry
        ids, mask, key, is_hard = batch
        n_tasks = tasks.train_index.shape[0]
        width = ids.shape[0]
        # The hard-task meta-batch (last step of an episode, if enabled): the tasks with the
        # highest query loss so far, each with a fresh support/query split. Choosing it inside
        # the step keeps one compiled step for regular and hard meta-batches.
        n_hard = min(learner.config.hard_tasks, n_tasks)
        hardest = jnp.argsort(-jnp.nan_to_num(query_losses, nan=-jnp.inf))[:width]
        hardest = jnp.pad(hardest, (0, width - hardest.shape[0]), constant_values=n_tasks)
        hard_mask = (jnp.arange(width) < n_hard).astype(mask.dtype)
        ids = jnp.where(is_hard, jnp.where(hard_mask > 0, hardest, n_tasks), ids)
        mask = jnp.where(is_hard, hard_mask, mask)
        split_perm = jnp.where(is_hard, split_perms[1], split_perms[0])
        safe_ids = jnp.minimum(ids, n_tasks - 1)
        task = self._gather_tasks(pool, tasks, safe_ids, split_perm, n_support)
        grad_keys, eval_keys = jnp.split(jax.random.split(key, 2 * width), 2)
        grads, losses = jax.vmap(learner.meta_gradient, in_axes=(None, None, 0, None, 0))(
            state, model_state, task, hparams, grad_keys
        )
        weight = mask / jnp.maximum(mask.sum(), 1.0)
        grads = jax.tree.map(lambda g: jnp.tensordot(weight, g, axes=1), grads)
        state, opt_state = learner.outer_update(state, opt_state, grads, hparams)
        evaluation = jax.vmap(learner.evaluation_loss, in_axes=(None, None, 0, None, 0))(
            state, model_state, task, hparams, eval_keys
        )
        # Padding slots carry the out-of-range id n_tasks and are dropped by the scatter.
        val_losses = val_losses.at[ids].set(evaluation, mode="drop")
        query_losses = query_losses.at[ids].set(losses, mode="drop")
        return (state, opt_state, val_losses, query_losses), None

    def episode(
        self,
        outer: OuterState,
        key: jax.Array,
        pool,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
    ) -> OuterState:
        """One episode: every task once (in meta-batches), optional hard tasks, early stopping."""
        config = self.learner.config
        n_tasks, n_train = tasks.train_index.shape
        n_support = max(1, min(n_train - 1, round(config.support_fraction * n_train)))
        episode_key = jax.random.fold_in(key, outer.episode)
        split_key, order_key, step_key = jax.random.split(episode_key, 3)
        # Two independent support/query splits per task: regular and hard-task meta-batches.
        split_perms = jax.vmap(jax.vmap(lambda k: jax.random.permutation(k, n_train)))(
            jax.random.split(split_key, (2, n_tasks))
        )
        size = min(config.meta_batch_size or n_tasks, n_tasks)
        n_hard = min(config.hard_tasks, n_tasks)
        width = max(size, n_hard)
        n_batches = math.ceil(n_tasks / size)
        pad = n_batches * size - n_tasks
        order = jnp.pad(
            jax.random.permutation(order_key, n_tasks), (0, pad), constant_values=n_tasks
        ).reshape(n_batches, size)
        mask = jnp.pad(jnp.ones((n_tasks,), jnp.float32), (0, pad)).reshape(n_batches, size)
        order = jnp.pad(order, ((0, 0), (0, width - size)), constant_values=n_tasks)
        mask = jnp.pad(mask, ((0, 0), (0, width - size)))
        n_steps = n_batches + (1 if n_hard > 0 else 0)
        if n_hard > 0:  # placeholder row, filled with the hardest tasks inside the step
            order = jnp.concatenate([order, jnp.full((1, width), n_tasks, order.dtype)])
            mask = jnp.concatenate([mask, jnp.zeros((1, width), mask.dtype)])
        batches = (
            order,
            mask,
            jax.random.split(step_key, n_steps),
            jnp.arange(n_steps) >= n_batches,
        )

        def step(carry, batch):
            return self._meta_batch_step(
                carry, batch, pool, tasks, split_perms, n_support, model_state, hparams
            )

        nan = jnp.full((n_tasks,), jnp.nan, jnp.float32)
        (state, opt_state, val_losses, _), _ = jax.lax.scan(
            step, (outer.state, outer.opt_state, nan, nan), batches
        )
        loss = jnp.mean(val_losses)
        progress = early_stopping.update(
            loss,
            outer.best_loss,
            outer.best_episode,
            outer.bad_episodes,
            outer.episode,
            min_delta=config.min_delta,
            patience=config.patience,
            max_steps=config.max_episodes,
        )
        new = OuterState(
            state=state,
            opt_state=opt_state,
            best_state=_select(progress.improved, state, outer.best_state),
            best_loss=progress.best_loss,
            best_episode=progress.best_step,
            bad_episodes=progress.bad_steps,
            episode=outer.episode + 1,
            done=progress.done,
            history=outer.history.at[outer.episode].set(loss),
        )
        return _select(outer.done, outer, new)

    def run(
        self,
        key: jax.Array,
        state: MetaState,
        pool,
        tasks: MemberData,
        model_state: dict,
        hparams: MetaHparams,
        progress: bool | str = False,
    ) -> MetaResult:
        """Episodes until early stopping; returns the best meta-state."""
        config = self.learner.config
        outer = OuterState(
            state=state,
            opt_state=self.learner.init_outer(state),
            best_state=state,
            best_loss=jnp.array(jnp.inf, jnp.float32),
            best_episode=jnp.array(-1, jnp.int32),
            bad_episodes=jnp.array(0, jnp.int32),
            episode=jnp.array(0, jnp.int32),
            done=jnp.array(False),
            history=jnp.full((config.max_episodes,), jnp.nan, jnp.float32),
        )
        desc = progress if isinstance(progress, str) else f"meta-train {self.learner.name}"
        with tqdm(total=config.max_episodes, desc=desc, disable=not progress, leave=False) as bar:
            while not bool(outer.done):
                outer = self._episode(outer, key, pool, tasks, model_state, hparams)
                bar.update(1)
        return MetaResult(
            state=outer.best_state,
            history=outer.history,
            best_episode=outer.best_episode,
            episodes=outer.episode,
        )


def meta_train(
    learner: GradientMetaLearner,
    key: jax.Array,
    params: dict,
    model_state: dict,
    pool,
    tasks: MemberData,
    hparams: MetaHparams,
    *,
    trainer: MetaTrainer | None = None,
    progress: bool | str = False,
) -> MetaResult:
    """Meta-train `learner` from `params` on a task family.

    Args:
      learner: a registered variant.
      key: typed PRNG key (split into the learner's init key and the episodes' key).
      params: starting model parameters (e.g. pretrained, with MTL S = 1, S-bar = 0).
      model_state: non-trained variables (batch-norm running statistics), held fixed.
      pool: events (array or pytree with leading event axis).
      tasks: `MemberData` with a leading task axis T >= 2 (train: support + query events;
        val: early-stopping events).
      hparams: `MetaHparams` (both > 0).
      trainer: reuse a `MetaTrainer` (compiled episode) across calls.
      progress: progress bar.

    Returns:
      `MetaResult` with the best meta-state.
    """
    check_hparams(hparams)
    leaves = jax.tree.leaves(pool)
    if not leaves:
        raise ValueError("the event pool is empty")
    n_tasks = _check_tasks(tasks, leaves[0].shape[0])
    if learner.config.hard_tasks > n_tasks:
        raise ValueError(
            f"meta.hard_tasks = {learner.config.hard_tasks} exceeds the {n_tasks} tasks"
        )
    tasks = jax.tree.map(jnp.asarray, tasks)
    hparams = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), hparams)
    init_key, run_key = jax.random.split(key)
    state = learner.init(init_key, params, hparams)
    trainer = trainer or MetaTrainer(learner)
    return trainer.run(run_key, state, jax.device_put(pool), tasks, model_state, hparams, progress)


__all__ = [
    "GradientMetaLearner",
    "MetaConfig",
    "MetaHparams",
    "MetaLearner",
    "MetaResult",
    "MetaState",
    "MetaTrainer",
    "Task",
    "available",
    "check_hparams",
    "get",
    "meta_train",
    "method_module",
    "register",
]


def method_module(name: str):
    """A study method for the registered learner `name` (what `jaxws.methods.load` returns):
    an object with `study(cfg, inputs, key, tracker)` and `run(cfg, key, run_dir, tracker)`."""
    import functools
    import types

    from jaxws.methods.meta import study as study_module

    get(name)  # unknown names fail here, with the list of registered ones
    return types.SimpleNamespace(
        name=name,
        study=functools.partial(study_module.study, name=name),
        run=functools.partial(study_module.run, name=name),
    )
