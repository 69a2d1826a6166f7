"""Reward over-optimisation: PPO against learned reward models trained on few and many pairs.

The picture of Gao et al. (2022), "Scaling Laws for Reward Model Overoptimization", on
RLHF-Chat-v0: simulated annotators label preference pairs; a linear reward model is
trained on the first N of them for each N in ``--pairs``; PPO (the candidate-scoring
policy) trains against each model (``reward="learned:..."``), and against the gold rubric
itself for reference. Every training episode's proxy return (the learned reward) and gold
return (``info["gold_reward"]``) are logged. A proxy that keeps rising while the gold
return stalls or falls is a reward model being exploited.

Writes, in ``--out``: ``curves.csv`` (one row per training episode), ``summary.csv``
(final held-out evaluation), ``proxy_vs_gold.png``, the reward-model checkpoints and
``run.json`` (command, seeds, versions, git revision, timings).

    python benchmarks/proxy_vs_gold.py [--pairs 300,5000] [--steps 100000] \
        [--out results/proxy_vs_gold]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.run_record import RunRecord, command_line

if TYPE_CHECKING:
    from rlhf_envs.rewards.learned import LearnedRewardModel

ENV_ID = "RLHF-Chat-v0"


def _run(
    name: str, reward: str, steps: int, seed: int, eval_seeds: list[int], position: int
) -> dict:
    """Train PPO against ``reward`` in a worker process; return its log and evaluation."""
    import torch

    torch.set_num_threads(1)  # one core per worker (2 workers on the 2-core CI machines)
    import rlhf_envs  # noqa: F401
    from rlhf_agents.baselines import SB3Agent
    from rlhf_agents.evaluation import evaluate
    from rlhf_agents.training import EpisodeLog, train

    log = EpisodeLog()
    started = time.perf_counter()
    model = train(
        "ppo",
        ENV_ID,
        "candidate",
        total_timesteps=steps,
        seed=seed,
        env_kwargs={"reward": reward},
        progress=f"ppo vs {name}",
        position=position,
        callbacks=[log],
    )
    seconds = time.perf_counter() - started
    ev = evaluate(SB3Agent(model, name, True), ENV_ID, eval_seeds, env_kwargs={"reward": reward})
    return {
        "name": name,
        "reward": reward,
        "rows": log.rows,
        "seconds": seconds,
        "proxy": ev.mean_ci("ret"),
        "gold": ev.mean_ci("gold"),
        "success": ev.mean_ci("success"),
    }


def train_proxies(
    sizes: list[int], seed: int, out: Path
) -> list[tuple[int, Path, LearnedRewardModel]]:
    """The proxies: a linear reward model on the first ``n`` simulated pairs of
    ``FeedbackCollector(ENV_ID, seed=seed)`` for each ``n`` in ``sizes``.

    Args:
        sizes: training-set sizes.
        seed: seeds the pairs and the training.
        out: folder for ``pairs.jsonl`` and the checkpoints ``rm-N`` (replaced if there).

    Returns:
        ``(n, checkpoint folder, model)`` per size.
    """
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.preference_data import write_preferences
    from rlhf_envs.rewards.learned import train_reward_model

    out.mkdir(parents=True, exist_ok=True)
    pairs = FeedbackCollector(ENV_ID, seed=seed).preferences(max(sizes), progress=False)
    write_preferences(out / "pairs.jsonl", pairs)
    proxies = []
    for n in sizes:
        result = train_reward_model(
            pairs[:n],
            "linear",
            seed=seed,
            progress=False,
            data_info={"path": str(out / "pairs.jsonl"), "records_used": n},
        )
        folder = result.model.save(out / f"rm-{n}", overwrite=True)  # (this run's own output)
        proxies.append((n, folder, result.model))
    return proxies


def _smooth(steps: np.ndarray, values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0, steps.max(), bins + 1)
    which = np.clip(np.digitize(steps, edges) - 1, 0, bins - 1)
    centres, means = [], []
    for b in range(bins):
        picked = values[which == b]
        if picked.size:
            centres.append(0.5 * (edges[b] + edges[b + 1]))
            means.append(picked.mean())
    return np.array(centres), np.array(means)


def plot(results: list[dict], expert: float, random: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for r in results:
        rows = np.array(r["rows"], dtype=float)
        x, proxy = _smooth(rows[:, 0], rows[:, 1], 25)
        _, gold = _smooth(rows[:, 0], rows[:, 2], 25)
        (line,) = left.plot(x, proxy, label=r["name"])
        right.plot(x, gold, color=line.get_color(), label=r["name"])
    right.axhline(expert, color="grey", linestyle="--", linewidth=1, label="scripted expert")
    right.axhline(random, color="grey", linestyle=":", linewidth=1, label="random agent")
    left.set_title("proxy return (the reward PPO maximises)")
    right.set_title("gold return (full rubric)")
    for ax in (left, right):
        ax.set_xlabel("PPO training steps")
        ax.grid(alpha=0.3)
    left.set_ylabel("return per episode")
    right.legend(fontsize=8, loc="lower right")
    left.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{ENV_ID}: PPO against learned reward models (linear, Bradley-Terry) vs gold")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pairs", default="300,5000", help="comma-separated training-set sizes (default 300,5000)"
    )
    parser.add_argument(
        "--steps", type=int, default=100_000, help="PPO steps per run (default 100000)"
    )
    parser.add_argument(
        "--episodes", type=int, default=100, help="held-out evaluation episodes (default 100)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--no-rubric", action="store_true", help="skip the reference run on the gold rubric"
    )
    parser.add_argument("--out", type=Path, default=Path("results/proxy_vs_gold"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    import rlhf_envs  # noqa: F401
    from rlhf_agents.baselines import ExpertAgent, RandomAgent
    from rlhf_agents.evaluation import evaluate
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import pairwise_accuracy

    sizes = sorted({int(n) for n in args.pairs.split(",") if n.strip()})
    args.out.mkdir(parents=True, exist_ok=True)
    eval_seeds = held_out_seeds(args.episodes)
    command = [
        "python",
        "benchmarks/proxy_vs_gold.py",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    # Pairs come from seeds seed (training) and seed + 1 (test); PPO trains with seed.
    record = RunRecord(command_line(command), seeds={"seed": args.seed, "eval_seeds": eval_seeds})
    print(record.describe(), flush=True)
    started = time.perf_counter()
    print(f"Collecting {max(sizes)} training pairs and 2000 test pairs (simulated annotators)...")
    test = FeedbackCollector(ENV_ID, seed=args.seed + 1).preferences(2000, progress=False)
    runs = []
    for n, folder, model in train_proxies(sizes, args.seed, args.out):
        report = pairwise_accuracy(model, test)
        print(f"  linear RM on {n:>5} pairs: {report.summary()}")
        runs.append((f"RM on {n} pairs", f"learned:{folder}", report.accuracy))
    if not args.no_rubric:
        runs.append(("gold rubric", "rubric", None))

    print(
        f"Training PPO against {len(runs)} rewards for {args.steps:,} steps each "
        f"({args.workers} workers)..."
    )
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_run, name, reward, args.steps, args.seed, eval_seeds, i)
            for i, (name, reward, _) in enumerate(runs)
        ]
        results = [f.result() for f in futures]
    expert = evaluate(ExpertAgent(), ENV_ID, eval_seeds).mean_ci("gold")[0]
    random = evaluate(RandomAgent(seed=args.seed), ENV_ID, eval_seeds).mean_ci("gold")[0]

    with open(args.out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "reward", "timesteps", "proxy_return", "gold_return", "success"])
        for r in results:
            w.writerows([r["name"], r["reward"], *row] for row in r["rows"])
    print(
        f"\nHeld-out evaluation, {args.episodes} episodes (greedy): "
        f"gold expert {expert:.2f}, random {random:.2f}"
    )
    header = [
        "run",
        "rm_test_accuracy",
        "proxy_return",
        "gold_return",
        "gold_low",
        "gold_high",
        "normalised_gold",
        "success",
        "train_seconds",
    ]
    with open(args.out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        print(
            f"{'run':<18} {'RM acc':>7} {'proxy':>7} {'gold [95% CI]':>22} "
            f"{'norm. gold':>10} {'success':>8}"
        )
        for (name, _, accuracy), r in zip(runs, results, strict=True):
            gold, lo, hi = r["gold"]
            norm = (gold - random) / (expert - random)
            acc = "" if accuracy is None else f"{accuracy:.3f}"
            w.writerow(
                [
                    name,
                    acc,
                    f"{r['proxy'][0]:.3f}",
                    f"{gold:.3f}",
                    f"{lo:.3f}",
                    f"{hi:.3f}",
                    f"{norm:.3f}",
                    f"{r['success'][0]:.3f}",
                    f"{r['seconds']:.0f}",
                ]
            )
            print(
                f"{name:<18} {acc:>7} {r['proxy'][0]:>7.2f} {gold:>7.2f} [{lo:6.2f}, {hi:6.2f}] "
                f"{norm:>10.3f} {r['success'][0]:>8.0%}"
            )
    plot(results, expert, random, args.out / "proxy_vs_gold.png")
    record.write(
        args.out / "run.json",
        pairs=sizes,
        steps=args.steps,
        episodes=args.episodes,
        workers=args.workers,
        rubric_run=not args.no_rubric,
        references={"expert": expert, "random": random},
        train_seconds={r["name"]: round(r["seconds"], 1) for r in results},
    )
    print(
        f"\nWrote {args.out}/curves.csv, summary.csv, proxy_vs_gold.png, run.json "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
