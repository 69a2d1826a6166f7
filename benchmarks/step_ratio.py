"""Random-action steps/s of one env id over CartPole-v1's, steadily: rounds alternate.

    python benchmarks/step_ratio.py [ENV_ID] [--rounds 8]

Each round times 10,000 CartPole-v1 steps, then 800 steps of the env (after a warm-up),
each round on episodes of its own (caches are shared by the process's envs, so replayed
episodes would time cache hits); the best round of each is kept, so a machine whose
speed drifts (shared CPUs) disturbs both alike. The suite's ``env`` section times each
id once; this is the figure to compare releases with: run it in each checkout
(``PYTHONPATH=<other checkout>`` for another release), alternating. Prints one line:
both speeds, the ratio and microseconds per step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rlhf_envs  # noqa: F401  (registers the ids)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.suite import steps_per_second  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_id", nargs="?", default="RLHF-Chat-v0")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=800, help="env steps per round")
    args = parser.parse_args(argv)
    steps_per_second(args.env_id, 300)  # warm-up: domain loading, first caches
    reference, env = [], []
    for _ in range(args.rounds):
        reference.append(steps_per_second("CartPole-v1", 10_000))
        env.append(steps_per_second(args.env_id, args.steps))
    best_ref, best = max(reference), max(env)
    print(
        f"CartPole-v1 {best_ref:,.0f} steps/s, {args.env_id} {best:,.0f} steps/s, "
        f"ratio {best / best_ref:.4f}, {1e6 / best:.0f} us/step (best of {args.rounds} rounds; "
        f"{rlhf_envs.__file__})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
