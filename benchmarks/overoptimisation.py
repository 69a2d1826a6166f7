"""Reward over-optimisation on generated text, as in Gao, Schulman and Hilton (2022), Fig. 1.

A weak proxy (a linear reward model trained on a few hundred simulated preference pairs)
is optimised two ways, and the gold reward (the full rubric plus fluency under the
reference LM) watches:

- best-of-n, n = 1..64: at each dialogue state, 64 replies are sampled from the
  reference LM and scored by the proxy and by gold; the expected gold and proxy score of
  the proxy's pick among n draws is computed exactly from the 64 (the unbiased
  order-statistics estimator), with KL(best-of-n || reference) = log n - (n - 1) / n;
- RL (``--rl-steps``, optional): GRPO through TRL against the proxy, measured every
  ``--rl-every`` steps on held-out states: mean proxy and gold per reply, and the KL
  per reply (sum over the reply's tokens of log pi - log pi_ref, Monte Carlo).

Both are plotted against sqrt(KL), with 95% bootstrap bands over states, for each proxy
size. Gold rising, then falling while the proxy keeps rising is over-optimisation.

Writes ``--out`` (default ``docs/overoptimisation``): ``best_of_n.csv``, ``rl.csv``,
``overoptimisation.png`` (also copied to ``docs/overoptimisation.png``), the proxies'
checkpoints and ``run.json``.

    python benchmarks/overoptimisation.py [--pairs 200,1000] [--states 120] [--rl-steps 0]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.run_record import RunRecord, command_line
from rlhf_envs.lm.build import default_lm_path
from rlhf_envs.lm.reference import continuation_logprobs
from rlhf_envs.rollouts import LMPolicy, sample_reply_groups

ENV_ID = "RLHF-ChatText-v0"
PAIRS_ENV = "RLHF-Chat-v0"  # simulated annotators label the select env's candidates
MAX_N = 64


def best_of_n_weights(m: int, n: int) -> np.ndarray:
    """P(the i-th smallest of m scores is the largest of n drawn without replacement):
    C(i - 1, n - 1) / C(m, n), i = 1..m."""
    i = np.arange(1, m + 1)
    log_w = np.full(m, -np.inf)
    ok = i >= n
    log_w[ok] = _log_comb(i[ok] - 1, n - 1) - _log_comb(np.array([m]), n)[0]
    return np.exp(log_w)


def _log_comb(a: np.ndarray, b: int) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)


def best_of_n_curve(proxy: np.ndarray, gold: np.ndarray, ns: list[int]) -> dict[int, np.ndarray]:
    """Per state, the expected (proxy, gold) of best-of-n by the proxy, for each n.

    ``proxy`` and ``gold`` are (states, m) arrays of the m sampled replies' scores."""
    states, m = proxy.shape
    out = {}
    for n in ns:
        w = best_of_n_weights(m, n)
        values = np.zeros((states, 2))
        for s in range(states):
            order = np.argsort(proxy[s], kind="stable")
            values[s] = w @ proxy[s][order], w @ gold[s][order]
        out[n] = values
    return out


def bootstrap_band(
    values: np.ndarray, seed: int = 0, draws: int = 2000
) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def train_proxy(n_pairs: int, out: Path, seed: int) -> str:
    """A linear reward model on ``n_pairs`` simulated pairs; its reward spec."""
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model

    pairs = FeedbackCollector(PAIRS_ENV, seed=seed).preferences(n_pairs, progress=False)
    result = train_reward_model(pairs, model="linear", seed=seed, progress=False)
    folder = result.model.save(
        out / f"proxy-{n_pairs}", overwrite=True
    )  # (this benchmark's own earlier output)
    return f"learned:{folder}"


def sample_states(
    policy: LMPolicy, proxy: str, seeds: list[int], size: int, seed: int, chunk: int = 8
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """``size`` replies at one state per seed: (proxy, gold) score arrays and the groups."""
    groups = []
    for k in range(0, len(seeds), chunk):
        groups += sample_reply_groups(
            policy,
            ENV_ID,
            seeds[k : k + chunk],
            size,
            {"reward": proxy},
            seed=seed + k,
            max_turns=8,
        )
    proxy_scores = np.array([[r.reward for r in g.replies] for g in groups])
    gold_scores = np.array([[r.gold for r in g.replies] for g in groups])
    return proxy_scores, gold_scores, groups


def reply_kl(policy: LMPolicy, reference: torch.nn.Module, groups: list[Any]) -> np.ndarray:
    """Per state, the mean over its replies of sum_t (log pi - log pi_ref): KL per reply."""
    out = []
    for group in groups:
        ref = continuation_logprobs(
            reference,
            [r.prompt_ids for r in group.replies],
            [r.reply_ids for r in group.replies],
            policy.pad_id,
            policy.temperature,
        )
        out.append(
            np.mean([sum(r.logprobs) - sum(q) for r, q in zip(group.replies, ref, strict=True)])
        )
    return np.array(out)


def rl_curve(
    proxy: str, lm: Path, out: Path, steps: int, every: int, seeds: list[int], seed: int
) -> list[dict[str, Any]]:
    """GRPO against ``proxy``; proxy, gold and KL per reply every ``every`` steps."""
    from transformers import TrainerCallback

    from rlhf_agents.grpo import GRPORecipe, build_trainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    recipe = GRPORecipe(env_id=ENV_ID, reward=proxy, steps=steps, seed=seed, beta=0.0)
    trainer = build_trainer(recipe, lm, out / "trainer")
    reference = LMPolicy.from_folder(lm).model
    rows: list[dict[str, Any]] = []

    def measure(step: int) -> None:
        policy = LMPolicy(trainer.model, trainer.processing_class)
        proxy_s, gold_s, groups = sample_states(policy, proxy, seeds, 4, seed=99)
        kl = reply_kl(policy, reference, groups)
        row = {"step": step, "kl": float(max(kl.mean(), 0.0))}
        for name, values in (("proxy", proxy_s.mean(axis=1)), ("gold", gold_s.mean(axis=1))):
            row[name], row[f"{name}_low"], row[f"{name}_high"] = bootstrap_band(values)
        rows.append(row)
        print(
            f"  RL step {step}: proxy {row['proxy']:+.3f} gold {row['gold']:+.3f} "
            f"KL {row['kl']:.2f}",
            flush=True,
        )

    class Measure(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step % every == 0:
                measure(state.global_step)

    trainer.add_callback(Measure())
    measure(0)
    trainer.train()
    return rows


def plot(bon: list[dict[str, Any]], rl: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    proxies = sorted({r["proxy_pairs"] for r in bon})
    fig, axes = plt.subplots(1, len(proxies), figsize=(5.5 * len(proxies), 4.2), squeeze=False)
    for ax, pairs in zip(axes[0], proxies, strict=True):
        for method, rows, marker in (("best-of-n", bon, "o"), ("GRPO", rl, "s")):
            rows = [r for r in rows if r["proxy_pairs"] == pairs]
            if not rows:
                continue
            x = np.sqrt([r["kl"] for r in rows])
            for name, colour in (("proxy", "tab:orange"), ("gold", "tab:blue")):
                ax.plot(
                    x,
                    [r[name] for r in rows],
                    marker=marker,
                    ms=3,
                    color=colour,
                    linestyle="-" if method == "best-of-n" else "--",
                    label=f"{method}: {name}",
                )
                ax.fill_between(
                    x,
                    [r[f"{name}_low"] for r in rows],
                    [r[f"{name}_high"] for r in rows],
                    color=colour,
                    alpha=0.12,
                )
        ax.set_xlabel("sqrt(KL to the reference LM), nats per reply")
        ax.set_ylabel("reward per reply")
        ax.set_title(f"proxy: linear RM on {pairs} simulated pairs")
        ax.legend(fontsize=8)
    fig.suptitle(f"{ENV_ID}: optimising a weak proxy, watched by gold")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="200,1000", help="proxy training-set sizes")
    parser.add_argument("--states", type=int, default=120, help="dialogue states for best-of-n")
    parser.add_argument("--rl-steps", type=int, default=0, help="GRPO steps per proxy (0: none)")
    parser.add_argument("--rl-every", type=int, default=25)
    parser.add_argument("--rl-states", type=int, default=40)
    parser.add_argument("--lm", help="reference LM folder (default: the project's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/overoptimisation"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = held_out_seeds(args.states, offset=3_000_000)
    rl_seeds = held_out_seeds(args.rl_states, offset=4_000_000)
    record = RunRecord(
        command_line(["python", "benchmarks/overoptimisation.py", *sys.argv[1:]]),
        seeds={"seed": args.seed, "states": seeds, "rl_states": rl_seeds},
    )
    print(record.describe(), flush=True)
    lm = Path(args.lm).resolve() if args.lm else default_lm_path()
    policy = LMPolicy.from_folder(lm)
    ns = [1, 2, 4, 8, 16, 32, 64]
    bon_rows: list[dict[str, Any]] = []
    rl_rows: list[dict[str, Any]] = []
    for n_pairs in sorted(int(x) for x in args.pairs.split(",")):
        started = time.perf_counter()
        proxy = train_proxy(n_pairs, args.out, args.seed)
        proxy_s, gold_s, _ = sample_states(policy, proxy, seeds, MAX_N, args.seed)
        for n, values in best_of_n_curve(proxy_s, gold_s, ns).items():
            row: dict[str, Any] = {"proxy_pairs": n_pairs, "n": n, "kl": math.log(n) - (n - 1) / n}
            for k, name in enumerate(("proxy", "gold")):
                row[name], row[f"{name}_low"], row[f"{name}_high"] = bootstrap_band(values[:, k])
            bon_rows.append(row)
            print(
                f"  proxy-{n_pairs} best-of-{n:<2}: proxy {row['proxy']:+.3f} "
                f"gold {row['gold']:+.3f} [{row['gold_low']:+.3f}, {row['gold_high']:+.3f}]",
                flush=True,
            )
        print(f"best-of-n with the {n_pairs}-pair proxy: {time.perf_counter() - started:.0f} s")
        if args.rl_steps:
            for row in rl_curve(
                proxy,
                lm,
                args.out / f"rl-{n_pairs}",
                args.rl_steps,
                args.rl_every,
                rl_seeds,
                args.seed,
            ):
                rl_rows.append({"proxy_pairs": n_pairs, **row})
    for name, rows in (("best_of_n.csv", bon_rows), ("rl.csv", rl_rows)):
        if rows:
            with open(args.out / name, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    plot(bon_rows, rl_rows, args.out / "overoptimisation.png")
    shutil.copy(args.out / "overoptimisation.png", args.out.parent / "overoptimisation.png")
    record.write(args.out / "run.json", settings={k: str(v) for k, v in vars(args).items()})
    print(f"wrote {args.out} ({record.wall_seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
