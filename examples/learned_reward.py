"""Collect preferences, train a reward model, and run PPO against it (the core RLHF loop).

    python examples/learned_reward.py --pairs 3000 --steps 50000

1. Simulated annotators compare pairs of candidate replies on RLHF-Chat-v0 rollouts.
2. A linear Bradley-Terry reward model is trained on the pairs and saved (safetensors + JSON).
3. PPO trains against ``reward="learned:<folder>"``; the gold rubric, reported in
   ``info["gold_reward"]``, shows whether the agent learned what the annotators wanted or
   found a way to please the reward model alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

import rlhf_envs  # noqa: F401  (registers RLHF-Chat-v0)
from rlhf_agents.baselines import RandomAgent, SB3Agent
from rlhf_agents.evaluation import evaluate, held_out_seeds
from rlhf_agents.training import train
from rlhf_envs.feedback.annotators import FeedbackCollector
from rlhf_envs.rewards.learned import pairwise_accuracy, train_reward_model


@dataclass
class Args:
    pairs: int = 3000  # preference pairs for the reward model
    steps: int = 50_000  # PPO environment steps
    episodes: int = 50  # evaluation episodes (held-out seeds)
    out: str = "runs/example-rm"
    seed: int = 0


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(1)
    pairs = FeedbackCollector("RLHF-Chat-v0", seed=args.seed).preferences(args.pairs)
    test = FeedbackCollector("RLHF-Chat-v0", seed=args.seed + 1).preferences(500, progress=False)
    result = train_reward_model(pairs, "linear", seed=args.seed)
    folder = result.model.save(Path(args.out))
    report = pairwise_accuracy(result.model, test)
    print(f"reward model: {report.summary()}")

    reward = f"learned:{folder}"
    model = train(
        "ppo",
        "RLHF-Chat-v0",
        policy="candidate",
        total_timesteps=args.steps,
        seed=args.seed,
        env_kwargs={"reward": reward},
        progress="PPO vs learned RM",
    )
    seeds = held_out_seeds(args.episodes)
    ppo = evaluate(
        SB3Agent(model, "ppo-learned-rm"), "RLHF-Chat-v0", seeds, env_kwargs={"reward": reward}
    )
    rand = evaluate(RandomAgent(args.seed), "RLHF-Chat-v0", seeds, env_kwargs={"reward": reward})
    for ev in (ppo, rand):
        print(
            f"{ev.agent:>15}: learned reward {ev.values('ret').mean():6.2f}, gold reward "
            f"{ev.values('gold').mean():6.2f}, success {ev.values('success').mean():.0%}"
        )
    return {
        "rm_accuracy": report.accuracy,
        "ppo_gold": float(ppo.values("gold").mean()),
        "random_gold": float(rand.values("gold").mean()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
