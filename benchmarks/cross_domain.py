"""Cross-domain transfer: PPO trained on one domain, evaluated zero-shot on the others.

Every select-interface domain id has the same observation and action spaces (hashed text
encodings of the dialogue and of K candidates), so a policy trained on customer service
can be run unchanged on financial advice or medical triage. This measures how much of
what PPO learns is the shared craft of a good reply (answer what was asked, do not
invent, do not leak, close politely) and how much is the domain's own policy book.

PPO (the candidate-scoring policy, SB3 defaults, 4 envs) trains on each domain, and on
all three at once (one sub-env per domain plus one more customer-service env), for
``--steps`` steps per seed; every trained model then plays the same ``--episodes``
held-out scenarios of every domain. The gold rubric score per episode is normalised per
evaluation domain: ``(agent - random) / (expert - random)``, so 1 is the scripted
expert and 0 a uniformly random choice.

Writes ``results.csv`` (one row per train domain x seed x eval domain), ``table.md`` (the
README table) and ``run.json`` into ``--out``.

    python benchmarks/cross_domain.py [--steps 100000] [--seeds 2] [--episodes 200] \
        [--out results/cross_domain]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.run_record import RunRecord, command_line

DOMAINS = {
    "customer service": "RLHF-Chat-v0",
    "finance": "RLHF-Finance-v0",
    "medical": "RLHF-Medical-v0",
}
MIXED = "all three"
# Held-out scenarios from 3,000,000 on: apart from training seeds and from the comparison
# harness's (which start at the base), as the published results were measured.
EVAL_SEED_OFFSET = 2_000_000


def _train_and_evaluate(train_on: str, seed: int, steps: int, episodes: int) -> list[dict]:
    """Train PPO on ``train_on`` (a domain name or ``MIXED``) in a worker process and
    evaluate it on every domain."""
    import torch

    torch.set_num_threads(1)  # one core per worker
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    import rlhf_envs  # noqa: F401
    from rlhf_agents.baselines import SB3Agent
    from rlhf_agents.evaluation import evaluate
    from rlhf_agents.training import make_model, train

    started = time.perf_counter()
    if train_on == MIXED:
        ids = [*DOMAINS.values(), DOMAINS["customer service"]]  # 4 envs, as the single-domain runs

        vec = DummyVecEnv([lambda env_id=env_id: Monitor(gym.make(env_id)) for env_id in ids])
        vec.seed(seed)  # sub-env i starts from seed + i, as make_vec_env seeds them
        model = make_model("ppo", vec, "candidate", seed=seed)
        model.learn(steps)
    else:
        model = train("ppo", DOMAINS[train_on], "candidate", total_timesteps=steps, seed=seed)
    minutes = (time.perf_counter() - started) / 60
    rows = []
    for eval_on, env_id in DOMAINS.items():
        agent = LabelCounter(SB3Agent(model, "ppo"))
        ev = evaluate(agent, env_id, held_out_seeds(episodes, EVAL_SEED_OFFSET))
        rows.append(
            {
                "train": train_on,
                "seed": seed,
                "eval": eval_on,
                "gold": float(ev.values("gold").mean()),
                "success": float(ev.values("success").mean()),
                "user_left": float(ev.values("user_left").mean()),
                "train_minutes": round(minutes, 2),
                "chosen": json.dumps(dict(agent.chosen.most_common())),
            }
        )
    return rows


class LabelCounter:
    """Wraps an agent and counts the failure types of the candidates it sends (the
    labels are the env's, for analysis; the agent never sees them)."""

    def __init__(self, agent):
        self.agent, self.name = agent, agent.name
        self.deterministic = getattr(agent, "deterministic", True)
        self.chosen: Counter = Counter()

    def reset(self) -> None:
        self.agent.reset()

    def act(self, obs, env):
        action = self.agent.act(obs, env)
        self.chosen[env.unwrapped.interface.candidates[int(action)].label] += 1
        return action


def _references(episodes: int) -> dict[str, dict[str, float]]:
    """Expert and random gold per episode on the held-out scenarios of each domain."""
    import rlhf_envs  # noqa: F401
    from rlhf_agents.baselines import ExpertAgent, RandomAgent
    from rlhf_agents.evaluation import evaluate

    seeds = held_out_seeds(episodes, EVAL_SEED_OFFSET)
    out = {}
    for name, env_id in DOMAINS.items():
        expert, rand = (
            evaluate(ExpertAgent(), env_id, seeds),
            evaluate(RandomAgent(0), env_id, seeds),
        )
        out[name] = {
            "expert": float(expert.values("gold").mean()),
            "random": float(rand.values("gold").mean()),
            "expert_success": float(expert.values("success").mean()),
            "random_success": float(rand.values("success").mean()),
        }
    return out


def table(rows: list[dict], refs: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per training domain, one column per evaluation domain; each cell
    is the normalised gold (mean over seeds, with the range over seeds) and the success rate."""
    evals = list(DOMAINS)
    lines = [
        "| trained on \\ evaluated on | " + " | ".join(evals) + " |",
        "|---" * (len(evals) + 1) + "|",
    ]
    for train_on in [*DOMAINS, MIXED]:
        cells = []
        for eval_on in evals:
            picked = [r for r in rows if r["train"] == train_on and r["eval"] == eval_on]
            if not picked:
                cells.append("")
                continue
            ref = refs[eval_on]
            norm = [(r["gold"] - ref["random"]) / (ref["expert"] - ref["random"]) for r in picked]
            success = np.mean([r["success"] for r in picked])
            spread = f" [{min(norm):.2f}, {max(norm):.2f}]" if len(norm) > 1 else ""
            cell = f"{np.mean(norm):.2f}{spread}, {success:.0%}"
            cells.append(f"**{cell}**" if train_on == eval_on else cell)
        lines.append(f"| {train_on} | " + " | ".join(cells) + " |")
    lines.append(
        "| expert (gold per episode, success) | "
        + " | ".join(f"{refs[e]['expert']:.2f}, {refs[e]['expert_success']:.0%}" for e in evals)
        + " |"
    )
    lines.append(
        "| random | "
        + " | ".join(f"{refs[e]['random']:.2f}, {refs[e]['random_success']:.0%}" for e in evals)
        + " |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="PPO steps per training run")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per domain")
    parser.add_argument(
        "--episodes", type=int, default=200, help="held-out episodes per evaluation domain"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="training runs in parallel (one torch thread each)"
    )
    parser.add_argument("--out", default="results/cross_domain")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.seeds < 1 or args.episodes < 1 or args.workers < 1:
        parser.error("--steps, --seeds, --episodes and --workers must be positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = [
        "python",
        "benchmarks/cross_domain.py",
        *(argv if argv is not None else sys.argv[1:]),
    ]
    record = RunRecord(
        command_line(command),
        seeds={
            "training_seeds": list(range(args.seeds)),
            "eval_seeds": held_out_seeds(args.episodes, EVAL_SEED_OFFSET),
        },
    )
    print(record.describe(), flush=True)
    started = time.perf_counter()
    jobs = [(train_on, seed) for train_on in [*DOMAINS, MIXED] for seed in range(args.seeds)]
    rows: list[dict] = []
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_train_and_evaluate, t, s, args.steps, args.episodes) for t, s in jobs
        ]
        refs = _references(args.episodes)  # in this process while the workers train
        for (train_on, seed), future in zip(jobs, futures, strict=True):
            rows.extend(future.result())
            print(f"done: trained on {train_on}, seed {seed}", file=sys.stderr)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) + ["normalised_gold"])
        writer.writeheader()
        for r in rows:
            ref = refs[r["eval"]]
            writer.writerow(
                {
                    **r,
                    "normalised_gold": round(
                        (r["gold"] - ref["random"]) / (ref["expert"] - ref["random"]), 4
                    ),
                }
            )
    text = table(rows, refs)
    (out / "table.md").write_text(text)
    record.write(
        out / "run.json",
        steps=args.steps,
        seeds=args.seeds,  # training seeds per domain: 0 .. seeds - 1
        episodes=args.episodes,
        references=refs,
        minutes=round((time.perf_counter() - started) / 60, 2),
        revision=(record.git_revision or "")[:7],  # the short form, as records before had
        python=record.versions["python"],
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
