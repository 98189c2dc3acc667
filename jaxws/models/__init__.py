"""Flax (linen) modules only: paper CNN, slim CNN, MLP, VAE (no losses, no optimizers)."""

from jaxws import precision

# Every computation of jaxws goes through a model: float32 products stay full float32 on GPUs
# too (no TF32) unless JAXWS_MATMUL_PRECISION says otherwise; see `jaxws.precision`.
precision.apply()
