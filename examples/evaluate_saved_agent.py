"""Load a saved agent (safetensors + JSON, no pickle) and evaluate it on held-out episodes.

    python examples/evaluate_saved_agent.py \
        --checkpoint results/compare/runs/RLHF-Chat-v0/default/ppo/seed-0/checkpoint

Checkpoints are written by ``rlhf-envs compare`` (one per trained run) or by
``rlhf_agents.checkpoint.save_agent``. The env is rebuilt from the id and arguments recorded
in ``agent.json``, unless ``--env`` names another with the same spaces.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

import rlhf_envs  # noqa: F401
from rlhf_agents.checkpoint import load_agent, read_meta
from rlhf_agents.evaluation import evaluate, held_out_seeds


@dataclass
class Args:
    checkpoint: str = "results/compare/runs/RLHF-Chat-v0/default/ppo/seed-0/checkpoint"
    episodes: int = 50  # held-out episodes
    env: str = ""  # default: the env it was trained on
    stochastic: bool = False  # sample actions instead of acting greedily


def main(args: Args) -> dict[str, float]:
    torch.set_num_threads(1)
    meta = read_meta(args.checkpoint)
    agent = load_agent(
        args.checkpoint,
        name=f"{meta['algo']} ({meta['num_timesteps']:,} steps)",
        deterministic=not args.stochastic,
    )
    env_id = args.env or meta["env_id"]
    result = evaluate(agent, env_id, held_out_seeds(args.episodes), env_kwargs=meta["env_kwargs"])
    gold, lo, hi = result.mean_ci("gold")
    success = float(result.values("success").mean())
    print(
        f"{agent.name} on {env_id}: gold {gold:.2f} [{lo:.2f}, {hi:.2f}], success {success:.0%} "
        f"({'sampled' if args.stochastic else 'greedy'} actions, {args.episodes} episodes)\n"
    )
    print(result.episodes[0].transcript)
    return {"gold": gold, "success": success}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=Args.checkpoint)
    parser.add_argument("--episodes", type=int, default=Args.episodes)
    parser.add_argument("--env", default="")
    parser.add_argument("--stochastic", action="store_true")
    main(Args(**vars(parser.parse_args())))
