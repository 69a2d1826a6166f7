"""The main job: train agents on RLHF-Chat-v0 and compare them with the baselines.

``rlhf-envs demo`` is a preset of the comparison harness (:mod:`rlhf_agents.compare`): PPO
with the candidate-scoring policy and with SB3's plain ``MultiInputPolicy``, A2C and DQN
train in parallel processes (one core each), then they, a random agent, best-of-n against
the training reward and the scripted expert play the same held-out episodes; it prints
the leaderboard and one transcript per agent. ``rlhf-envs compare`` runs any agents,
envs, reward models and seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rlhf_agents.compare import CompareConfig, RunsFailedError, reward_slug, run_comparison
from rlhf_agents.registry import resolve_agents

ENV_ID = "RLHF-Chat-v0"
AGENTS = ("ppo", "ppo-mlp", "a2c", "dqn", "random", "best-of-n", "expert")
# The candidate-scoring agents reach the expert's level by 20,000-30,000 steps and stay
# there (`make compare`'s curves, 3 seeds to 100,000); PPO-MLP is still far below at 30,000.
DEMO_STEPS = 30_000


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs demo``."""
    p = subparsers.add_parser(
        "demo", help="train agents on RLHF-Chat-v0 and print a leaderboard against baselines"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEMO_STEPS,
        help=f"training steps per learning agent (default {DEMO_STEPS})",
    )
    p.add_argument(
        "--episodes",
        type=int,
        default=100,
        help="held-out evaluation episodes per agent (default 100)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/demo"),
        help="results folder (default results/demo)",
    )
    p.add_argument(
        "--stochastic",
        action="store_true",
        help="evaluate trained agents with sampled, not greedy, actions",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="parallel processes (default: CPU count)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = CompareConfig(
        agents=resolve_agents(list(AGENTS)),
        envs=[ENV_ID],
        seeds=[args.seed],
        steps=args.steps,
        scenarios=args.episodes,
        tries=1,
        deterministic=not args.stochastic,
        transcripts=1,
        jobs=args.jobs,
    )
    reference = cartpole_steps_per_second()
    started = time.perf_counter()
    print(
        f"Training {', '.join(a.name for a in cfg.agents if a.trains)} on {ENV_ID} "
        f"for {args.steps:,} steps each ({cfg.jobs} in parallel), "
        f"then evaluating every agent on the same {args.episodes} episodes..."
    )
    try:
        run_comparison(cfg, args.out, progress=True)
    except RunsFailedError as err:
        print(f"rlhf-envs demo: error: {err}", file=sys.stderr)
        return 1
    mode = "sampled (stochastic)" if args.stochastic else "deterministic (greedy)"
    print(
        f"\n## Leaderboard: {ENV_ID}, {args.episodes} held-out episodes, "
        f"trained agents act {mode}\n"
    )
    print((args.out / "leaderboard.md").read_text())
    folder = args.out / "transcripts" / ENV_ID / reward_slug(None)
    for agent in AGENTS:
        print(f"\n{(folder / f'{agent}.md').read_text().strip()}")
    print(
        f"\nDone in {time.perf_counter() - started:.0f} s on a machine that runs "
        f"{reference:,.0f} random CartPole-v1 steps/s (the README's timings name theirs); "
        f"results in {args.out}/ (leaderboard.md/.csv, curves.png, transcripts/, run.json)"
    )
    return 0


def cartpole_steps_per_second(steps: int = 20_000) -> float:
    """Random-action steps/s of CartPole-v1 here: a speed any reader can measure, to
    compare the demo's time with (machines differ several-fold)."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)
