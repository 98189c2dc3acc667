"""The Pythia events a study needs, computed from its design (`jaxws.methods.dry_run`).

Prints the two generator commands' arguments (QCD; the 14 benchmark signals), one per line,
for `experiments/paper_scale.sh`; with them the study's own dry run passes.
    python experiments/generation_plan.py experiment=paper_pythia
"""

import sys

from jaxws.cli import compose_config
from jaxws.config import ConfigError
from jaxws.data.samples import benchmark_names
from jaxws.methods.dry_run import generation_plan


def main() -> None:
    try:
        plan = generation_plan(compose_config(sys.argv[1:]))
    except ConfigError as error:
        print(f"generation_plan: error: {error}", file=sys.stderr)
        sys.exit(2)
    per_shard, shards = plan["qcd"]
    need = ", ".join(f"{k} {v:.0f}" for k, v in plan["need"].items())
    print(
        f"# needs {need}: {per_shard * shards} QCD events, {plan['signal']} per signal model",
        file=sys.stderr,
    )
    seeds = ",".join(str(s) for s in range(1, shards + 1))
    print(f"models=[qcd] events={per_shard} seeds=[{seeds}]")
    print(f"models=[{','.join(benchmark_names())}] events={plan['signal']} seeds=[1]")


if __name__ == "__main__":
    main()
