"""Write a reward plugin, mix it with the rubric, and train PPO against the mix.

    python examples/custom_reward.py --steps 50000

A reward model is any object with ``score(batch) -> one float per exchange``. This one
rewards short replies; registered under a name, it is usable in any reward spec, alone
("brevity:30") or mixed with others ({"rubric": 1.0, "brevity:30": 0.5}). The gold rubric
(``info["gold_reward"]``) shows what the extra term did to the behaviour that matters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

import rlhf_envs  # noqa: F401  (registers RLHF-Chat-v0)
from rlhf_agents.baselines import SB3Agent
from rlhf_agents.evaluation import evaluate, held_out_seeds
from rlhf_agents.training import train
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import register, registered_names


class BrevityReward:
    """+1 for a reply of at most ``max_words`` words, falling linearly to 0 at twice that."""

    def __init__(self, max_words: str | int = 30):
        self.max_words = int(max_words)  # the spec "brevity:30" passes "30"

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        words = np.array([len(ex.reply.split()) for ex in batch], dtype=float)
        return np.clip(2.0 - words / self.max_words, 0.0, 1.0)


@dataclass
class Args:
    steps: int = 50_000  # PPO environment steps
    episodes: int = 50  # evaluation episodes (held-out seeds)
    weight: float = 0.5  # weight of the brevity term next to the rubric
    seed: int = 0


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(1)
    if "brevity" not in registered_names():
        register(
            "brevity",
            BrevityReward,
            argument="max_words",
            description="short replies (example plugin)",
        )
    reward = {"rubric": 1.0, "brevity:30": args.weight}
    model = train(
        "ppo",
        "RLHF-Chat-v0",
        total_timesteps=args.steps,
        seed=args.seed,
        env_kwargs={"reward": reward},
        progress="PPO vs rubric + brevity",
    )
    seeds = held_out_seeds(args.episodes)
    result = evaluate(
        SB3Agent(model, "ppo-brevity"), "RLHF-Chat-v0", seeds, env_kwargs={"reward": reward}
    )
    words = np.mean(
        [
            len(line.split()) - 1
            for ep in result.episodes
            for line in ep.transcript.splitlines()
            if line.startswith("Agent:")
        ]
    )
    summary = {
        "return": float(result.values("ret").mean()),
        "gold": float(result.values("gold").mean()),
        "success": float(result.values("success").mean()),
        "words_per_reply": float(words),
    }
    print(", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
