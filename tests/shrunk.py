"""Overrides that shrink a CWoLa study to seconds, shared by the end-to-end tests."""

TINY_CWOLA = [
    "tracking=none",
    "data.n_background=3000",
    "data.n_signal=1500",
    "data.resolution=8",
    "study.n_background_sr=600",
    "study.injections=[0,150]",
    "study.n_pseudo_experiments=2",
    "study.n_test_signal=300",
    "study.n_test_background=300",
    "training.max_epochs=2",
    "training.batch_size=128",
]
