"""What CWoLa's no-signal classifiers learn at the paper's luminosity (issue: paper scale).

At injection 0 a CWoLa classifier sees SR and SB background only. If the two were identical
it would learn nothing and its signal-vs-background AUC would scatter around 0.5 with the
spread of untrained networks. This script measures, on the simulator's events of
`experiment=paper_luminosity` (one draw of the study's pool):
  1. SR vs SB background in the inputs: jet pT, constituent count and the normalised image's
     pT-weighted radius (how collimated a jet looks), mean difference in standard errors;
  2. the signal-vs-background AUC of untrained slim CNNs (their initial orientation);
  3. an ensemble trained on pure SR vs SB background (`weak_supervision`, 25k events each):
     its held-out SR-vs-SB AUC (0.5 = nothing to learn) and its signal-vs-background AUC,
     and the correlation of its score with the leading jet's pT.
    python experiments/no_signal_controls.py [overrides]      # about 5 min on 2 idle cores
    python experiments/no_signal_controls.py experiment=paper_luminosity_pythia   # on Pythia
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxws.cli import compose_config
from jaxws.config import ConfigError
from jaxws.data.events import SIDEBAND, SIGNAL_REGION
from jaxws.methods.cwola import weak_supervision
from jaxws.methods.injection_study.inputs import event_pool_images
from jaxws.models.registry import build_model
from jaxws.simulate.sources import make_source
from jaxws.stats.roc import auc_of_samples
from jaxws.train import TrainConfig

N_PER_REGION = 25_000


def radius(images: np.ndarray) -> np.ndarray:
    """pT-weighted mean distance from the image centre, in pixels, per event and jet."""
    r = images.shape[-1]
    grid = np.arange(r) - (r - 1) / 2
    distance = np.hypot(grid[:, None], grid[None, :])
    weights = images / np.maximum(images.sum(axis=(-2, -1), keepdims=True), 1e-12)
    return (weights * distance).sum(axis=(-2, -1))


def compare(name: str, a: np.ndarray, b: np.ndarray) -> str:
    diff = a.mean() - b.mean()
    error = np.sqrt(a.var() / len(a) + b.var() / len(b))
    return f"| {name} | {a.mean():.4g} | {b.mean():.4g} | {diff / error:+.1f} |"


def main() -> None:
    try:
        overrides = sys.argv[1:]
        if not any(o.startswith("experiment=") for o in overrides):
            overrides = ["experiment=paper_luminosity", *overrides]
        cfg = compose_config(overrides)
        source = make_source(cfg.data)
        model = build_model(cfg.model)
    except ConfigError as error:
        print(f"no_signal_controls: error: {error}", file=sys.stderr)
        sys.exit(2)
    start = time.perf_counter()
    background = source.background()
    signal = source.signal(source.config.signal)
    region = np.asarray(background.region)
    sr = np.flatnonzero(region == SIGNAL_REGION)
    sb = np.flatnonzero(region == SIDEBAND)
    images = event_pool_images(background, source.config)
    signal_images = event_pool_images(signal, source.config)
    signal_sr = np.flatnonzero(np.asarray(signal.region) == SIGNAL_REGION)
    n = min(N_PER_REGION, len(sb), len(sr) // 2)
    train_sr, test_sr, train_sb, test_sb = sr[:n], sr[n : 2 * n], sb[: n // 2], sb[n // 2 : n]
    jets = np.asarray(background.jets)
    counts = np.asarray(background.n_constituents)
    print(f"# SR vs SB background inputs ({len(sr)} SR, {len(sb)} SB events)\n")
    print("| quantity | SR mean | SB mean | (SR - SB) / s.e. |\n|---|---|---|---|")
    for jet in (0, 1):
        print(compare(f"jet {jet + 1} pT [GeV]", jets[sr, jet, 0], jets[sb, jet, 0]))
        print(compare(f"jet {jet + 1} constituents", counts[sr, jet], counts[sb, jet]))
        print(compare(f"jet {jet + 1} image radius [px]", radius(images[sr, jet]),
                      radius(images[sb, jet])))  # fmt: skip
    test_signal = signal_images[signal_sr[:20_000]]
    test_background = images[test_sr[:20_000]]
    auc_of = auc_of_samples
    untrained = []
    for seed in range(20):
        variables = model.init(jax.random.key(seed), jnp.asarray(test_background[:2]), train=False)
        score = lambda x: np.asarray(model.apply(variables, jnp.asarray(x), train=False)).ravel()  # noqa: B023
        untrained.append(auc_of(score(test_signal), score(test_background)))
    untrained = np.array(untrained)
    print(
        f"\nuntrained slim CNNs (20 seeds): signal-vs-background AUC mean {untrained.mean():.3f}, "
        f"s.d. {untrained.std(ddof=1):.3f}, range {untrained.min():.3f}-{untrained.max():.3f}"
    )
    config = TrainConfig(batch_size=256, max_epochs=20, patience=4)
    scorer = weak_supervision(images[train_sr], images[train_sb], n_members=5, seed=0,
                              learning_rate=2e-3, config=config)  # fmt: skip
    members_sr = np.asarray(jax.nn.sigmoid(scorer.member_scores(images[test_sr])))
    members_sb = np.asarray(jax.nn.sigmoid(scorer.member_scores(images[test_sb])))
    members_signal = np.asarray(jax.nn.sigmoid(scorer.member_scores(test_signal)))
    sr_sb = [auc_of(a, b) for a, b in zip(members_sr, members_sb, strict=True)]
    sig_bkg = [auc_of(s, b) for s, b in zip(members_signal, members_sr, strict=True)]
    held_out = len(test_sr) + len(test_sb)
    print(
        f"\ntrained on pure SR ({n}) vs SB ({n // 2}) background, 5 members "
        f"(epochs {np.asarray(scorer.history.epochs).tolist()}):"
    )
    print(
        f"  held-out SR-vs-SB AUC per member: {np.round(sr_sb, 3).tolist()} "
        f"(0.5 +- {1 / np.sqrt(12 * held_out / 4):.3f} if nothing is learned)"
    )
    print(f"  signal-vs-background AUC per member: {np.round(sig_bkg, 3).tolist()}")
    score = members_sr.mean(axis=0)
    correlation = np.corrcoef(score, jets[test_sr, 0, 0])[0, 1]
    print(f"  correlation of the ensemble score with the leading jet pT (SR): {correlation:+.3f}")
    with open("/proc/loadavg") as file:
        load = file.read().split()[:3]
    print(f"\n{(time.perf_counter() - start) / 60:.1f} min, load average {' '.join(load)}")


if __name__ == "__main__":
    main()
