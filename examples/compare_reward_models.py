"""Train PPO against two reward models and compare what each teaches, on the gold rubric.

    python examples/compare_reward_models.py --steps 50000 --seeds 3

The comparison harness (``rlhf_agents.compare``, also ``rlhf-envs compare``) trains one agent
per reward spec and seed, evaluates all of them on the same held-out scenarios, and writes
a leaderboard, learning curves and transcripts. Here the two reward models are rubric
personas: ``warm`` cares about tone, ``stickler`` about the policy book. Their mean return
is not comparable (different scales); the gold reward is.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import rlhf_envs  # noqa: F401  (registers RLHF-Chat-v0)
from rlhf_agents.compare import CompareConfig, run_comparison
from rlhf_agents.registry import resolve_agents


@dataclass
class Args:
    rewards: str = "rubric:warm,rubric:stickler"  # comma-separated reward specs
    steps: int = 50_000  # PPO environment steps per run
    seeds: int = 2  # training seeds per reward model
    scenarios: int = 50  # held-out scenarios
    out: str = "results/compare-reward-models"
    jobs: int = 2


def main(args: Args) -> dict[str, float]:
    cfg = CompareConfig(
        agents=resolve_agents(["ppo"]),
        envs=["RLHF-Chat-v0"],
        rewards=args.rewards.split(","),
        seeds=list(range(args.seeds)),
        steps=args.steps,
        scenarios=args.scenarios,
        tries=1,
        curve_points=5,
        jobs=args.jobs,
    )
    summary = run_comparison(cfg, args.out)
    gold = {row["reward"]: row["gold"] for row in summary["rows"]}
    for row in summary["rows"]:
        print(
            f"PPO trained on {row['reward']:>16}: "
            f"gold {row['gold']:.2f} [{row['gold_lo']:.2f}, {row['gold_hi']:.2f}], "
            f"success {row['success']:.0%}"
        )
    print(f"leaderboard, curves and transcripts in {args.out}/")
    return gold


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
