"""Overrides that shrink a study to seconds, shared by the end-to-end tests.

Their figures are saved as PNG only (`tracking.figure_formats`): the PDF copies cost about a
second per run and are tested once (tests/track/test_tracker.py).
"""

TINY_CWOLA = [
    "tracking=none",
    "tracking.figure_formats=[png]",
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

TINY_NPLM = [
    "tracking=none",
    "tracking.figure_formats=[png]",
    "data.n_reference=2000",
    "data.n_expected=200",
    "method.epochs=10",
    "method.checkpoints=[5,10]",
    "method.n_toys=8",
    "method.n_signal_toys=2",
    "method.n_history_toys=2",
    "method.signal_fractions=[0.02]",
    "method.chunk_size=8",
    "method.n_permutations=10",
]

TINY_ANOMALY = [
    "tracking=none",
    "tracking.figure_formats=[png]",
    "data.n_background_train=1500",
    "data.n_background_null=1500",
    "data.n_background_bank=3000",
    "data.n_signal_train=800",
    "data.n_signal_benchmark=400",
    "method.vae.max_epochs=2",
    "method.classifier.max_epochs=2",
    "method.test.r_scan=[0.0,10.0]",
    "method.test.signal_rates=[0.0,4.0]",
    "method.test.n_null_toys=100",
    "method.test.n_signal_toys=20",
    "method.test.expected_background=300.0",
    "method.test.n_null_check_sets=20",
]
