"""RLHF proper on RLHF-ChatTokens-v0: PPO with the LM policy against a proxy reward,
beside best-of-n sampling, all judged by the gold reward on held-out seeds.

What it measures and writes (``--out``, default ``docs/lm_rlhf``):

- the reference LM (built first if needed): build time, held-out perplexity;
- stepping speed of the tokens env, tokens/s without and with ``kl_coef`` (ratio, same
  process);
- the SFT reference (sampling from the reference LM), best-of-n for n = 1, 4, 16 with the
  proxy picking, and PPO with :class:`~rlhf_agents.lm_policy.LMActorCriticPolicy` trained
  against the proxy with KL shaping: mean gold reward per episode with a 95% bootstrap CI,
  success rate, mean KL to the reference; PPO's gain over the SFT reference with a paired
  bootstrap CI (same seeds);
- ``results.csv``, ``learning_curve.png`` (held-out gold reward vs training steps),
  ``transcripts.md`` (the same seeds for each method), ``summary.json`` and ``run.json``
  (command, seeds, versions, git revision, timings).

Run (about 40 minutes on 2 cores, 29 of them PPO training)::

    python benchmarks/lm_rlhf.py
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_agents.baselines import SB3Agent
from rlhf_agents.best_of_n import BestOfNAgent
from rlhf_agents.evaluation import evaluate
from rlhf_agents.lm_policy import KLPenaltyCallback, LMActorCriticPolicy
from rlhf_agents.run_record import RunRecord, command_line
from rlhf_agents.training import EpisodeLog
from rlhf_envs.lm.build import default_lm_path
from rlhf_envs.lm.reference import load_reference_lm
from rlhf_envs.sb3 import make_sb3_vec_env
from rlhf_envs.statistics import bootstrap_ci

ENV_ID = "RLHF-ChatTokens-v0"


def stepping_speed(lm: str, kl_coef: float, steps: int, seed: int = 0) -> float:
    """Tokens per second of the tokens env under uniformly random allowed tokens."""
    env = gym.make(ENV_ID, lm=lm, kl_coef=kl_coef)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    allowed = np.flatnonzero(env.unwrapped.action_masks())
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.choice(allowed)))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


class HeldOutCurve(BaseCallback):
    """Every ``every`` steps, the mean gold reward of the policy on a few held-out seeds."""

    def __init__(self, seeds, env_kwargs, every: int):
        super().__init__()
        self.seeds, self.env_kwargs, self.every = list(seeds), env_kwargs, every
        self.points: list[tuple[int, float, float, float]] = []
        self.seconds = 0.0  # spent measuring, not training
        self._next = 0

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            self.record()
        return True

    def record(self) -> None:
        start = time.perf_counter()
        state = torch.get_rng_state()
        torch.manual_seed(0)
        result = evaluate(
            SB3Agent(self.model, "ppo", deterministic=False), ENV_ID, self.seeds, self.env_kwargs
        )
        mean, low, high = result.mean_ci("gold")
        self.points.append((self.num_timesteps, mean, low, high))
        torch.set_rng_state(state)  # measuring must not change training
        self.seconds += time.perf_counter() - start
        print(
            f"  step {self.num_timesteps:>7}: held-out gold {mean:+.2f} [{low:+.2f}, {high:+.2f}]",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lm", help="reference LM folder (default: the project's, built if needed)"
    )
    parser.add_argument(
        "--proxy", default="rubric:stickler", help="training reward (and best-of-n's picker)"
    )
    parser.add_argument("--kl-coef", type=float, default=0.1)
    parser.add_argument(
        "--episode-horizon",
        action="store_true",
        help="returns over the whole conversation instead of each reply",
    )
    parser.add_argument("--timesteps", type=int, default=220_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument(
        "--context-length",
        type=int,
        default=256,
        help="the tokens env's window (<= the LM's positions)",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--n-steps", type=int, default=512, help="rollout steps per env")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument(
        "--target-kl", type=float, default=0.05, help="PPO stops an update's epochs past this"
    )
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--curve-episodes", type=int, default=12)
    parser.add_argument("--curve-every", type=int, default=48_000)
    parser.add_argument("--speed-steps", type=int, default=3000)
    parser.add_argument("--best-of", default="1,4,16", help="n values of best-of-n ('' for none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/lm_rlhf")
    parser.add_argument("--save-lm", default="runs/lm_rlhf_ppo", help="where the tuned LM is saved")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The seeds of the published results (docs/lm_rlhf), kept so they stay reproducible.
    eval_seeds = [100_000 + i for i in range(args.eval_episodes)]
    curve_seeds = [200_000 + i for i in range(args.curve_episodes)]
    record = RunRecord(
        command_line(["python", "benchmarks/lm_rlhf.py", *sys.argv[1:]]),
        seeds={"seed": args.seed, "eval_seeds": eval_seeds, "curve_seeds": curve_seeds},
    )
    print(record.describe(), flush=True)
    started = time.perf_counter()

    lm_path = str(Path(args.lm).resolve()) if args.lm else str(default_lm_path())
    lm = load_reference_lm(lm_path)
    lm_keys = ("parameters", "held_out_perplexity", "unigram_perplexity", "build_seconds")
    print(f"reference LM {lm_path}: {json.dumps({k: lm.info.get(k) for k in lm_keys})}")

    speed_plain = stepping_speed(lm_path, 0.0, args.speed_steps)
    speed_kl = stepping_speed(lm_path, args.kl_coef, args.speed_steps)
    print(
        f"tokens env stepping: {speed_plain:,.0f} tokens/s without kl_coef, {speed_kl:,.0f} with "
        f"(ratio {speed_kl / speed_plain:.2f})"
    )

    env_kwargs = {
        "lm": lm_path,
        "reward": args.proxy,
        "kl_coef": args.kl_coef,
        "context_length": args.context_length,
    }
    rows, evaluations = [], {}

    def report(name: str, result, kl: float | None = None) -> None:
        gold, lo, hi = result.mean_ci("gold")
        success = result.values("success").mean()
        evaluations[name] = result
        rows.append(
            {
                "method": name,
                "gold_mean": gold,
                "gold_low": lo,
                "gold_high": hi,
                "success": success,
                "kl_per_token": "" if kl is None else kl,
                "episodes": len(result.episodes),
            }
        )
        print(
            f"{name:<22} gold {gold:+.2f} [{lo:+.2f}, {hi:+.2f}]  success {success:.2f}"
            + ("" if kl is None else f"  KL/token {kl:.3f}"),
            flush=True,
        )

    for n in [int(x) for x in args.best_of.split(",") if x]:
        agent = BestOfNAgent(
            n, reward=args.proxy, lm=lm, seed=args.seed, context_length=args.context_length
        )
        agent.name = f"best-of-{n} ({args.proxy})"
        report(agent.name, evaluate(agent, ENV_ID, eval_seeds, env_kwargs))

    venv = make_sb3_vec_env(ENV_ID, n_envs=args.n_envs, seed=args.seed, env_kwargs=env_kwargs)
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        gamma=1.0,
        gae_lambda=args.gae_lambda,
        learning_rate=args.learning_rate,
        ent_coef=0.0,
        clip_range=0.2,
        target_kl=args.target_kl,
        seed=args.seed,
        verbose=0,
        policy_kwargs={"lm": lm_path},
    )
    torch.manual_seed(0)
    report(
        "SFT reference (sampled)",
        evaluate(SB3Agent(model, "sft", deterministic=False), ENV_ID, eval_seeds, env_kwargs),
        kl=0.0,
    )
    kl_cb, episodes = KLPenaltyCallback(reply_horizon=not args.episode_horizon), EpisodeLog()
    curve = HeldOutCurve(curve_seeds, env_kwargs, args.curve_every)
    train_start = time.perf_counter()
    model.learn(args.timesteps, callback=CallbackList([episodes, kl_cb, curve]), progress_bar=True)
    train_seconds = time.perf_counter() - train_start - curve.seconds
    curve.record()
    torch.manual_seed(0)
    kl_final = float(np.mean(kl_cb.history[-5:])) if kl_cb.history else float("nan")
    report(
        f"PPO + LM policy ({args.proxy})",
        evaluate(SB3Agent(model, "ppo", deterministic=False), ENV_ID, eval_seeds, env_kwargs),
        kl=kl_final,
    )
    model.policy.save_pretrained(args.save_lm)

    sft = evaluations["SFT reference (sampled)"].values("gold")
    ppo = evaluations[f"PPO + LM policy ({args.proxy})"].values("gold")
    diff, lo, hi = bootstrap_ci(ppo - sft)
    print(
        f"PPO - SFT gold per episode: {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] "
        f"(paired, {len(sft)} held-out seeds); "
        f"PPO trained {args.timesteps} steps in {train_seconds / 60:.1f} min"
    )

    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "lm": lm_path,
        "lm_info": {k: lm.info.get(k) for k in lm_keys},
        "tokens_per_s": {"kl_off": speed_plain, "kl_on": speed_kl},
        "proxy": args.proxy,
        "kl_coef": args.kl_coef,
        "timesteps": args.timesteps,
        "train_minutes": train_seconds / 60,
        "ppo_minus_sft": [diff, lo, hi],
        "curve": curve.points,
        "kl_history": kl_cb.history,
        "total_minutes": (time.perf_counter() - started) / 60,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record.write(out / "run.json", settings=vars(args), lm=lm_path)
    with open(out / "transcripts.md", "w") as handle:
        for name, result in evaluations.items():
            handle.write(f"## {name}\n\n")
            handle.writelines(
                f"Seed {episode.seed}, gold {episode.gold:+.2f}, success {episode.success}\n\n"
                f"```\n{episode.transcript}\n```\n\n"
                for episode in result.episodes[:2]
            )
    plot(curve.points, episodes.rows, rows, out / "learning_curve.png", args)
    print(
        f"wrote {out}/results.csv, learning_curve.png, transcripts.md, summary.json, run.json "
        f"({(time.perf_counter() - started) / 60:.1f} min in all)"
    )


def plot(points, episode_rows, rows, path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    if episode_rows:
        steps = np.array([r[0] for r in episode_rows])
        gold = np.array([r[2] for r in episode_rows])
        window = max(1, len(gold) // 20)
        smooth = np.convolve(gold, np.ones(window) / window, mode="valid")
        ax.plot(
            steps[window - 1 :],
            smooth,
            color="tab:blue",
            alpha=0.35,
            label="training episodes (smoothed)",
        )
    xs = [p[0] for p in points]
    ax.plot(xs, [p[1] for p in points], "o-", color="tab:blue", label="PPO, held-out seeds")
    ax.fill_between(
        xs, [p[2] for p in points], [p[3] for p in points], color="tab:blue", alpha=0.15
    )
    styles = {
        "best-of-1": ("tab:gray", ":"),
        "best-of-4": ("tab:orange", "--"),
        "best-of-16": ("tab:red", "--"),
    }
    for row in rows:
        for prefix, (colour, style) in styles.items():
            if row["method"].startswith(prefix + " "):
                ax.axhline(
                    row["gold_mean"],
                    color=colour,
                    linestyle=style,
                    label=f"{prefix} ({args.proxy} picks)",
                )
    ax.set_xlabel("PPO training steps (tokens)")
    ax.set_ylabel("gold reward per episode")
    ax.set_title(f"RLHF-ChatTokens-v0: PPO vs best-of-n (proxy {args.proxy}, beta {args.kl_coef})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
