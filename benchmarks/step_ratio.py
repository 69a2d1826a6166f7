"""Random-action steps/s of one env id over CartPole-v1's, steadily: rounds alternate.

    python benchmarks/step_ratio.py [ENV_ID] [--rounds 8]

Each round times 10,000 CartPole-v1 steps, then 800 steps of the env (after a warm-up),
each round on episodes of its own (caches are shared by the process's envs, so replayed
episodes would time cache hits); the best round of each is kept, so a machine whose
speed drifts (shared CPUs) disturbs both alike. The suite's ``env`` section times each
id once; this is the figure to compare releases with: run it in each checkout
(``PYTHONPATH=<other checkout>`` for another release), alternating. Prints one line:
both speeds, the ratio and microseconds per step.

``--fixed-observation`` is a diagnostic: each step still proposes its candidates, but
returns the episode's first observation instead of encoding them, which shows what a
step costs without any text encoding (the floor under the select interface's encoder).
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
    parser.add_argument(
        "--fixed-observation",
        action="store_true",
        help="select ids: propose candidates but skip encoding (a diagnostic floor)",
    )
    args = parser.parse_args(argv)
    if args.fixed_observation:
        _fix_observations()
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


def _fix_observations() -> None:
    from rlhf_envs.interfaces.select import SelectInterface
    from rlhf_envs.simulation.candidates import propose

    encode = SelectInterface.observe

    def observe(self, state, rng):
        if getattr(self, "_first", None) is None:
            self._first = encode(self, state, rng)  # (one encoding per interface)
            return self._first
        self.candidates = propose(state, self.k, rng) if state.current_step is not None else []
        return {key: value.copy() for key, value in self._first.items()}

    SelectInterface.observe = observe  # type: ignore[method-assign]


if __name__ == "__main__":
    sys.exit(main())
