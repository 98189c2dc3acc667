"""Flax (linen) modules only: the paper's CNN, a slim CNN, an MLP, a VAE. No losses or optimizers."""
