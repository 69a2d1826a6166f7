"""Train PPO on RLHF-Chat-v0 with the candidate-scoring policy and compare it with random.

    python examples/train_ppo.py --steps 50000

One file, one idea: make the env, train, evaluate on held-out seeded episodes, print a
transcript. Deterministic (greedy) actions at evaluation.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

import rlhf_envs  # noqa: F401  (registers RLHF-Chat-v0)
from rlhf_agents.baselines import RandomAgent, SB3Agent
from rlhf_agents.evaluation import evaluate, held_out_seeds
from rlhf_agents.training import train


@dataclass
class Args:
    steps: int = 50_000  # PPO environment steps
    episodes: int = 50  # evaluation episodes (held-out seeds)
    seed: int = 0


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(1)
    # PPO (Schulman et al. 2017) with one shared scorer per candidate: logits = scores.
    model = train(
        "ppo",
        "RLHF-Chat-v0",
        policy="candidate",
        total_timesteps=args.steps,
        seed=args.seed,
        progress="PPO",
    )
    seeds = held_out_seeds(args.episodes)
    ppo = evaluate(SB3Agent(model, "ppo-candidate"), "RLHF-Chat-v0", seeds)
    rand = evaluate(RandomAgent(args.seed), "RLHF-Chat-v0", seeds)
    for ev in (ppo, rand):
        print(
            f"{ev.agent:>14}: success {ev.values('success').mean():.0%}, "
            f"mean gold reward {ev.values('gold').mean():.2f}"
        )
    print("\n" + ppo.episodes[0].transcript)
    return {
        "ppo_success": float(ppo.values("success").mean()),
        "random_success": float(rand.values("success").mean()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name}", type=type(default), default=default)
    main(Args(**vars(parser.parse_args())))
