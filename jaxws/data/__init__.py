"""Event containers, HDF5 shards, splits, pseudo-experiments and jet images."""
