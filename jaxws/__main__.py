"""`python -m jaxws [overrides]`: the Hydra entry point (`jaxws.cli.main`)."""

from jaxws.cli import main

main()
