"""The hunt's classifiers besides CWoLa from scratch: boosted trees, transfer and meta-transfer.

Each is a `MemberScores` (`jaxws.methods.hunt.kfold`): member e (one window, held-out fold and
seed) trains on `plan.members[e]` only, the window's events outside its fold, and scores the
window's events of its fold, so the k-fold guarantee (every event scored only by models that
never saw it) holds for every classifier.

* `tree_member_scores`: per member one scikit-learn `HistGradientBoostingClassifier` with the
  defaults of `weak_supervision(..., classifier="trees")` (`jaxws.methods.cwola.TREE_DEFAULTS`),
  class weights and the inner validation split of the plan (early stopping on it), for
  high-level features (Finke et al., arXiv:2309.13111).
* `pretrained_member_scores`: transfer learning or a meta-learning variant (MTL, ...) of
  arXiv:2312.06152: the jet-image network is pretrained (and meta-trained) on the
  leave-one-out source sample, exactly as in the injection studies (shared cached artifact:
  `jaxws.methods.transfer.pretrained_for_study`, `jaxws.methods.meta.study.meta_transfer`),
  then fine-tuned per member on the plan's SR-vs-SB events (`jaxws.methods.fine_tune`). The
  source sample never holds an event of the hunt: the simulator draws it with another seed;
  from files it takes background events the hunt does not use (`hunt_view`).
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from jaxws.config import ConfigError
from jaxws.methods.hunt.kfold import FoldPlan, MemberScores, member_probabilities

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from jaxws.track import Tracker


def tree_member_scores(options: dict | None = None, seed: int = 0) -> tuple[MemberScores, list]:
    """Boosted-tree members; the list returned fills with the members that did not converge.

    Args:
        options: overrides of `TREE_DEFAULTS` (`weak_supervision`'s `tree_options`).
        seed: base of the members' random states (member e: seed + e).

    Returns:
        (member_scores, not_converged): `not_converged` lists, after a call, the members
        whose early stopping did not trigger within `max_iter` (kept, and reported).
    """
    from jaxws.methods.cwola import _tree_options

    options = _tree_options(options)
    not_converged: list[int] = []

    def member_scores(key: jax.Array, pool: np.ndarray, plan: FoldPlan):
        from sklearn.ensemble import HistGradientBoostingClassifier

        del key  # trees draw from `seed`
        pool = np.asarray(pool)
        if pool.ndim != 2:
            raise ConfigError(
                f"the boosted trees need feature vectors (N, D), got shape {pool.shape[1:]}"
            )
        m = plan.members
        n_members = plan.window.size
        probabilities = np.zeros(plan.score_index.shape, np.float32)
        epochs = np.zeros(n_members, np.int32)
        not_converged.clear()
        for e in range(n_members):
            train = np.asarray(m.train_weight[e]) > 0
            val = np.asarray(m.val_weight[e]) > 0
            member = HistGradientBoostingClassifier(
                **options, early_stopping=True, scoring="loss", random_state=seed + e
            )
            member.fit(
                pool[m.train_index[e][train]],
                np.asarray(m.train_label[e][train]).astype(np.int8),
                sample_weight=m.train_weight[e][train],
                X_val=pool[m.val_index[e][val]],
                y_val=np.asarray(m.val_label[e][val]).astype(np.int8),
                sample_weight_val=m.val_weight[e][val],
            )
            probabilities[e] = member.predict_proba(pool[plan.score_index[e]])[:, 1]
            epochs[e] = member.n_iter_
            if member.n_iter_ >= options["max_iter"]:
                not_converged.append(e)
        return probabilities, epochs

    return member_scores, not_converged


def hunt_view(
    features: np.ndarray,
    plan: FoldPlan,
    n_hunt_background: int,
    model: Any,
    source: Any,
    signal_name: str,
    training: Any,
) -> types.SimpleNamespace:
    """The parts of `StudyInputs` that transfer and meta-transfer read, for the hunt's members.

    `experiments.test_index` lists every background event of the hunt (pool rows
    0..n_hunt_background-1, the first events of the source's background): the source sample
    of a file-based source is drawn from the background events after them, never from the
    hunt's own (`jaxws.methods.transfer._used_background`).
    """
    return types.SimpleNamespace(
        images=features,
        model=model,
        source=source,
        signal_name=signal_name,
        training=training,
        experiments=types.SimpleNamespace(
            members=plan.members,
            injection=np.zeros(plan.window.size),
            test_index=np.arange(n_hunt_background),
        ),
    )


def pretrained_member_scores(
    name: str,
    cfg: DictConfig,
    view_parts: dict,
    tracker: Tracker,
) -> MemberScores:
    """Transfer learning (`name="transfer"`) or a meta-learning variant (`"mtl"`, ...).

    Args:
        name: "transfer" or a variant of `jaxws.methods.meta.available()`.
        cfg: a config with `method` (the transfer or variant section, with `name`), `model`
            (the jet-image network) and `seed` (the pretraining seed unless
            `method.pretrain_seed`).
        view_parts: keyword arguments of `hunt_view` besides `features` and `plan`.
        tracker: where fine-tuning (and meta-training) checkpoints resume from.

    Returns:
        A `MemberScores`.
    """

    def member_scores(key: jax.Array, pool: np.ndarray, plan: FoldPlan):
        from jaxws.methods import transfer
        from jaxws.methods.fine_tune import fine_tune

        inputs = hunt_view(pool, plan, **view_parts)
        try:
            if name == "transfer":
                sections = transfer.method_sections(cfg.method)
                variables, _, loaded = transfer.pretrained_for_study(cfg, inputs, sections)
                tracker.log_metrics({"hunt/pretrain_loaded_from_artifact": int(loaded)})
                model = inputs.model
                fit = fine_tune(
                    jax.random.split(key, plan.window.size),
                    model,
                    pool,
                    plan.members,
                    variables,
                    sections["fine_tune"].config(inputs.training),
                    progress="hunt fine-tune",
                    checkpoint_dir=tracker.path("checkpoints/hunt-transfer"),
                )
            else:
                from jaxws.methods.meta.study import meta_transfer

                model, fit, _ = meta_transfer(cfg, inputs, key, tracker, name)
        except ValueError as error:  # too few source events or models: name them
            raise ConfigError(f"method.classifier={name}: {error}") from None
        return member_probabilities(model, fit.variables, pool, plan), np.asarray(fit.epochs)

    return member_scores
