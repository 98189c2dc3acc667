"""Times NPLM_package (GaiaGrosso/NPLM_package, TensorFlow), run unmodified, on one NPLM toy.

Run by bench/nplm_toys.py in a separate interpreter that has TensorFlow, tf_keras and the
package's ``src`` on its path (not a jaxws dependency). The toy is built here in NumPy exactly as
the package's example_1D/toy.py builds it (features, target = [label, weight]); training is the
package's own ``train_model`` with its ``imperfect_model`` (1-4-1 BSMfinder, weight clip) and
``imperfect_loss``. ``correction="NORM"`` with the normalisation nuisance frozen at 0 makes the
nuisance terms identically 0 (``train_model`` needs ``get_norm``, which only exists with a
correction, and ``get_shape``, for which a frozen zero ``nu_s`` is set on the instance), so t is
the plain NPLM statistic.

Usage: python nplm_package_driver.py N_REFERENCE N_EXPECTED EPOCHS SEED
Prints one line: ``ms_per_epoch <float> t <float>``.
"""

import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf
from NPLM.NNutils import imperfect_loss, imperfect_model, train_model


def main() -> None:
    n_reference, n_expected, epochs, seed = (
        int(sys.argv[1]),
        float(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    rng = np.random.default_rng(seed)
    data = rng.exponential(size=(rng.poisson(n_expected), 1))
    reference = rng.exponential(size=(n_reference, 1))
    feature = np.concatenate([data, reference]).astype(np.float32)
    label = np.concatenate([np.ones(len(data)), np.zeros(n_reference)])[:, None]
    weight = np.concatenate([np.ones(len(data)), np.full(n_reference, n_expected / n_reference)])
    target = np.concatenate([label, weight[:, None]], axis=1).astype(np.float32)
    tf.keras.utils.set_random_seed(seed)
    model = imperfect_model(
        input_shape=(None, 1),
        NU_S=[],
        NUR_S=[],
        NU0_S=[],
        SIGMA_S=[],
        NU_N=0.0,
        NUR_N=0.0,
        NU0_N=0.0,
        SIGMA_N=1.0,
        correction="NORM",
        BSMarchitecture=[1, 4, 1],
        BSMweight_clipping=9.0,
        train_f=True,
        train_nu=False,
    )
    # train_model records get_shape(), which reads nu_s: only a SHAPE correction creates it.
    # A frozen zero on the instance (the package's code is untouched) lets it run.
    model.nu_s = tf.Variable([0.0], trainable=False, dtype="float32")
    optimizer = tf.keras.optimizers.legacy.Adam()
    train_model(model, feature, target, imperfect_loss, optimizer, 3, 1000)  # warm-up
    start = time.perf_counter()
    history = train_model(model, feature, target, imperfect_loss, optimizer, epochs, epochs)
    seconds = time.perf_counter() - start
    print(f"ms_per_epoch {seconds / epochs * 1e3:.3f} t {-2 * float(history['loss'][-1]):.4f}")


if __name__ == "__main__":
    main()
