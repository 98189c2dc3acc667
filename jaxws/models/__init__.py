"""Flax (linen) modules only: paper CNN, slim CNN, MLP, VAE (no losses, no optimizers)."""
