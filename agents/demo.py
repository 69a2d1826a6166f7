"""The main job: train PPO on RLHF-Chat-v0 and compare it with the baselines.

``rlhf-envs demo`` trains PPO twice on the customer-service env, once with the
candidate-scoring policy and once with SB3's plain ``MultiInputPolicy``, in parallel
processes (one core each), then evaluates them, a random agent and the scripted expert on
the same held-out seeded episodes and prints a leaderboard and one transcript per agent.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from agents.baselines import ExpertAgent, RandomAgent, SB3Agent
from agents.evaluation import Evaluation, evaluate
from agents.leaderboard import markdown, to_csv

ENV_ID = "RLHF-Chat-v0"
EVAL_SEED_BASE = 1_000_000  # evaluation scenarios, apart from the training seeds
# (name, algorithm, policy kind) of the agents the demo trains.
TRAINED = (("ppo-candidate", "ppo", "candidate"), ("ppo-mlp", "ppo", "mlp"))


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs demo``."""
    p = subparsers.add_parser("demo", help="train PPO on RLHF-Chat-v0 and print a leaderboard against baselines")
    p.add_argument("--steps", type=int, default=100_000, help="training steps per PPO agent (default 100000)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per agent (default 100)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--out", type=Path, default=Path("results/demo"), help="folder for leaderboard.md/.csv and transcripts")
    p.add_argument("--stochastic", action="store_true", help="evaluate trained agents with sampled, not greedy, actions")
    p.set_defaults(func=run)


def _train_and_evaluate(name: str, algo: str, policy: str, steps: int, seed: int, eval_seeds: list[int],
                        position: int, deterministic: bool) -> Evaluation:
    # One core per worker: two torch processes with default threads oversubscribe 2 cores.
    import torch

    torch.set_num_threads(1)
    import rlhf_envs  # noqa: F401  (registers the env ids in this process)
    from agents.training import train

    model = train(algo, ENV_ID, policy, total_timesteps=steps, seed=seed, progress=f"train {name}", position=position)
    return evaluate(SB3Agent(model, name, deterministic), ENV_ID, eval_seeds)


def run(args: argparse.Namespace) -> int:
    import rlhf_envs  # noqa: F401

    eval_seeds = [EVAL_SEED_BASE + i for i in range(args.episodes)]
    deterministic = not args.stochastic
    started = time.perf_counter()
    print(f"Training {len(TRAINED)} PPO agents on {ENV_ID} for {args.steps:,} steps each, in parallel...")
    workers = max(1, min(len(TRAINED), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_train_and_evaluate, name, algo, policy, args.steps, args.seed, eval_seeds, i, deterministic)
            for i, (name, algo, policy) in enumerate(TRAINED)
        ]
        trained = [f.result() for f in futures]
    print(f"Evaluating the baselines on the same {len(eval_seeds)} episodes...")
    baselines = [evaluate(agent, ENV_ID, eval_seeds) for agent in (ExpertAgent(), RandomAgent(seed=args.seed))]
    evaluations = baselines + trained

    mode = "deterministic (greedy)" if deterministic else "stochastic (sampled)"
    table = markdown(evaluations)
    print(f"\n## Leaderboard: {ENV_ID}, {len(eval_seeds)} held-out episodes, trained agents act {mode}\n")
    print(table)
    print("\nreturn: the training reward (rubric) summed over an episode; gold: the gold rubric's; "
          "intervals: 95% bootstrap over episodes.")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "leaderboard.md").write_text(table + "\n")
    (args.out / "leaderboard.csv").write_text(to_csv(evaluations))
    for ev in evaluations:
        episode = ev.episodes[0]
        print(f"\n### Sample transcript: {ev.agent} (seed {episode.seed}, success={episode.success})\n")
        print(episode.transcript)
        (args.out / f"transcript-{ev.agent}.txt").write_text(episode.transcript + "\n")
    print(f"\nDone in {time.perf_counter() - started:.0f} s; results in {args.out}/")
    return 0
