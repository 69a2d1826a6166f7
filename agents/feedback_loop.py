"""The feedback loop of ``rlhf-envs retrain``: continuous RLHF over a feedback database.

One call retrains the reward model on every label collected so far, promotes it only if
it is not worse on the held-out labels (:mod:`rlhf_envs.feedback.retraining`), and with
``--policy`` fine-tunes a saved policy against the promoted model with PPO.

``--simulate`` runs the whole loop unattended, for ``--rounds`` rounds:

1. collect: the current policy (sampling) plays episodes; pairs of candidate replies at
   the turns it reaches are drawn, actively once a reward model exists;
2. label: simulated annotators (the rubric personas of ``rlhf-envs collect``, with
   Bradley-Terry noise and slips) label them through the same store API the web app
   uses, 20% of pairs by two annotators;
3. retrain: a new reward model on all labels, promoted if not worse;
4. RL: the policy trains on against the promoted model (``reward="learned:..."``), then
   plays held-out scenarios (:func:`rlhf_agents.evaluation.held_out_seeds`, apart from
   the seeds pairs are drawn from) scored by the gold rubric it never sees.

It prints one row per round: labels, reward-model accuracy, promotion, and the policy's
gold return with a 95% interval, normalised as (agent - random) / (expert - random).
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Round:
    """What one simulated round measured."""

    round: int
    labels: int
    rm_version: int | None
    rm_accuracy: float | None
    previous_accuracy: float | None  # the replaced model's, on the same held-out labels
    promoted: bool | None
    steps: int
    gold: tuple[float, float, float]
    normalised: float
    success: float
    seconds: float


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs retrain``."""
    p = subparsers.add_parser(
        "retrain",
        help="retrain the reward model on a feedback database, promote it if not worse, "
        "optionally fine-tune a policy",
        description="Train a new reward model on all A/B labels in --db "
        "(outside the fixed held-out slice), compare it with the current one on the held-out "
        "labels, and promote it (RM_DIR/vN, RM_DIR/current) only if it is not worse. "
        "--policy fine-tunes a saved agent against the promoted model. --simulate runs N "
        "rounds of collect -> label (simulated annotators) -> retrain -> RL and prints the "
        "gold reward per round.",
    )
    p.add_argument(
        "--db",
        type=Path,
        required=True,
        help="feedback database (created by --simulate if missing)",
    )
    p.add_argument("--rm-dir", type=Path, required=True, help="folder of reward-model versions")
    p.add_argument("--model", default="linear", help="reward model: linear (default) or minilm")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="promote when new accuracy >= current - tolerance (default 0)",
    )
    p.add_argument(
        "--policy", type=Path, help="agent checkpoint to fine-tune against the promoted model"
    )
    p.add_argument(
        "--policy-out",
        type=Path,
        help="where the fine-tuned policy goes "
        "(default: POLICY-rmN; --simulate: DB folder/policies)",
    )
    p.add_argument(
        "--policy-steps", type=int, default=50_000, help="PPO steps per fine-tune (default 50,000)"
    )
    p.add_argument(
        "--simulate", action="store_true", help="run the loop unattended with simulated annotators"
    )
    p.add_argument("--rounds", type=int, default=3, help="--simulate: rounds (default 3)")
    p.add_argument(
        "--pairs",
        type=int,
        default=1000,
        help="--simulate: pairs labelled per round (default 1,000)",
    )
    p.add_argument(
        "--env",
        default="RLHF-Chat-v0",
        help="--simulate: select-interface env id (default RLHF-Chat-v0)",
    )
    p.add_argument(
        "--episodes", type=int, default=100, help="--simulate: held-out episodes per evaluation"
    )
    p.add_argument(
        "--label-rounds",
        type=int,
        help="--simulate: label and retrain only in the first N rounds, then RL only (a control)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rlhf_envs.env_ids import check_env_id
    from rlhf_envs.feedback.store import FeedbackStore, StoreError
    from rlhf_envs.rewards.learned.transformer import resolve_base_model

    torch.set_num_threads(max(1, args.threads))
    if (
        args.policy_steps < 0
        or args.rounds < 1
        or args.pairs < 1
        or args.episodes < 1
        or (args.label_rounds is not None and args.label_rounds < 1)
    ):
        raise SystemExit(
            "rlhf-envs retrain: --policy-steps must be >= 0 and --rounds, --pairs, --episodes, "
            "--label-rounds >= 1"
        )
    if not args.simulate and not args.db.exists():
        raise SystemExit(
            f"rlhf-envs retrain: no database at {args.db}; label some pairs first (rlhf-envs label)"
        )
    # Everything that can be checked is checked now, not after a reward model is trained
    # and promoted.
    try:
        if args.simulate:
            check_env_id(args.env, ("select",))
        if args.model != "linear":
            resolve_base_model(args.model)
        if args.policy is not None and not args.simulate:
            fine_tunable(args.policy)
    except (OSError, ValueError) as err:
        raise SystemExit(f"rlhf-envs retrain: {err}") from None
    try:
        with FeedbackStore(args.db) as store:
            if args.simulate:
                out = args.policy_out or args.db.parent / "policies"
                simulate(
                    store,
                    args.rm_dir,
                    out,
                    env_id=args.env,
                    rounds=args.rounds,
                    pairs=args.pairs,
                    policy_steps=args.policy_steps,
                    episodes=args.episodes,
                    model=args.model,
                    tolerance=args.tolerance,
                    seed=args.seed,
                    label_rounds=args.label_rounds,
                )
            else:
                retrain_once(store, args)
    except (StoreError, OSError, ValueError) as err:
        raise SystemExit(f"rlhf-envs retrain: {err}") from None
    return 0


def retrain_once(store: Any, args: argparse.Namespace) -> None:
    """Retrain and maybe promote; then fine-tune ``--policy`` against the promoted model."""
    from rlhf_envs.feedback.retraining import retrain_reward_model

    result = retrain_reward_model(
        store, args.rm_dir, args.model, tolerance=args.tolerance, seed=args.seed, progress=True
    )
    print(result.summary())
    if args.policy is None:
        return
    current = store.current_reward_model()
    if not result.promoted:
        print("the policy is not fine-tuned: the reward model did not change")
        return
    out = args.policy_out or args.policy.with_name(f"{args.policy.name}-rm{current['version']}")
    started = time.perf_counter()
    fine_tune(args.policy, out, f"learned:{current['path']}", args.policy_steps, args.seed)
    print(
        f"fine-tuned {args.policy} for {args.policy_steps} steps "
        f"against RM v{current['version']} in "
        f"{time.perf_counter() - started:.0f} s -> {out}"
    )


def fine_tunable(policy: Path) -> dict[str, Any]:
    """The metadata of the agent checkpoint ``policy`` if it can be fine-tuned.

    Raises:
        FileNotFoundError: no agent checkpoint there.
        ValueError: an off-policy agent, or metadata of another format.
    """
    from rlhf_agents.checkpoint import read_meta

    meta = read_meta(policy)
    if meta["algo"] not in ("ppo", "a2c", "maskable-ppo"):
        raise ValueError(
            f"{policy} holds a {meta['algo']} agent; fine-tuning supports on-policy ppo, a2c, "
            "maskable-ppo"
        )
    return meta


def fine_tune(policy: Path, out: Path, reward: str, steps: int, seed: int) -> None:
    """Load the agent in ``policy``, train it ``steps`` more PPO steps with ``reward``, save
    to ``out``."""
    from rlhf_agents.checkpoint import load_agent, save_agent
    from rlhf_agents.training import make_training_env

    meta = fine_tunable(policy)
    env_kwargs = {**meta["env_kwargs"], "reward": reward}
    # Built on the training env itself: SB3's set_env cannot change the number of envs.
    model = load_agent(policy, env=make_training_env(meta["env_id"], 4, seed, env_kwargs)).model
    model.num_timesteps = int(meta.get("num_timesteps", 0))
    model.learn(steps, reset_num_timesteps=False)
    save_agent(
        model,
        out,
        algo=meta["algo"],
        policy=meta["policy"],
        env_id=meta["env_id"],
        env_kwargs=env_kwargs,
        hyperparams=meta["hyperparams"],
    )


def label_with_simulated_annotators(
    store: Any, source: Any, pairs: int, rng: np.random.Generator
) -> int:
    """Draw ``pairs`` comparisons from ``source`` and label them (plus the overlap's second
    labels) with the default simulated panel, through the store's label API."""
    from rlhf_envs.feedback.annotators import DEFAULT_PANEL
    from rlhf_envs.rewards.registry import make_reward_model

    panel = [a for a, _ in DEFAULT_PANEL]
    weights = np.array([w for _, w in DEFAULT_PANEL]) / sum(w for _, w in DEFAULT_PANEL)
    judges = {a.name: make_reward_model(a.reward_spec) for a in panel}
    ids = {a.name: store.annotator(f"simulated-{a.name}") for a in panel}
    labelled = 0
    for _ in range(pairs):
        drawn = source.draw()
        comparison = source.add(drawn)
        wanted = store.comparison(comparison).wanted_labels
        exchanges = (drawn.context.exchange(drawn.reply_a), drawn.context.exchange(drawn.reply_b))
        for k in rng.choice(len(panel), size=wanted, replace=False, p=weights):
            annotator = panel[int(k)]
            score_a, score_b = judges[annotator.name].score(exchanges)
            choice = "a" if annotator.choose(float(score_a), float(score_b), rng) else "b"
            store.add_label(f"sim-{secrets.token_hex(10)}", comparison, ids[annotator.name], choice)
            labelled += 1
    return labelled


def simulate(
    store: Any,
    rm_dir: Path,
    policy_out: Path,
    *,
    env_id: str = "RLHF-Chat-v0",
    rounds: int = 3,
    pairs: int = 1000,
    policy_steps: int = 50_000,
    episodes: int = 100,
    model: str = "linear",
    tolerance: float = 0.0,
    seed: int = 0,
    explore: float = 0.25,
    label_rounds: int | None = None,
) -> list[Round]:
    """The unattended loop (see the module docstring). Returns one :class:`Round` per round
    plus round 0 (the initial policy, before any feedback).

    Args:
        explore: share of collection episodes played at random, so pairs also come from
            turns the policy would not reach.
        label_rounds: collect labels and retrain only in the first this many rounds; later
            rounds keep training against the last promoted model (the control that shows
            what continued feedback adds). ``None``: every round.
    """
    from rlhf_agents.baselines import ExpertAgent, RandomAgent, SB3Agent
    from rlhf_agents.checkpoint import save_agent
    from rlhf_agents.evaluation import evaluate, held_out_seeds
    from rlhf_agents.training import make_model, make_training_env
    from rlhf_envs.feedback.pairs import PairSource
    from rlhf_envs.feedback.retraining import retrain_reward_model

    rng = np.random.default_rng(seed)
    eval_seeds = held_out_seeds(episodes)
    expert = evaluate(ExpertAgent(), env_id, eval_seeds).mean_ci("gold")[0]
    random = evaluate(RandomAgent(seed=seed), env_id, eval_seeds).mean_ci("gold")[0]
    # The initial policy: PPO's untrained candidate scorer (the "SFT" start of the loop).
    policy = make_model("ppo", make_training_env(env_id, 4, seed, {}), "candidate", seed=seed)
    print(
        f"{env_id}: held-out gold of the scripted expert {expert:.2f}, "
        f"random {random:.2f} ({episodes} episodes)"
    )
    header = (
        f"{'round':>5} {'labels':>7} {'RM':>4} {'RM acc':>7} {'vs old':>7} {'promoted':>8} "
        f"{'PPO steps':>9} "
        f"{'gold [95% CI]':>22} {'normalised':>10} {'success':>7} {'time':>6}"
    )
    print(header)
    results: list[Round] = []

    def report(r: int, rm: Any, started: float) -> None:
        ev = evaluate(SB3Agent(policy, "policy", True), env_id, eval_seeds)
        gold = ev.mean_ci("gold")
        row = Round(
            r,
            store.counts()["labels"],
            None if rm is None else rm.version,
            None if rm is None else rm.accuracy,
            None if rm is None else rm.baseline_accuracy,
            None if rm is None else rm.promoted,
            int(policy.num_timesteps),
            gold,
            (gold[0] - random) / (expert - random),
            float(ev.values("success").mean()),
            time.perf_counter() - started,
        )
        results.append(row)
        acc = "-" if row.rm_accuracy is None else f"{row.rm_accuracy:.3f}"
        old = "-" if rm is None or rm.baseline_accuracy is None else f"{rm.baseline_accuracy:.3f}"
        promoted = "-" if row.promoted is None else ("yes" if row.promoted else "no")
        print(
            f"{r:>5} {row.labels:>7} "
            f"{('v' + str(row.rm_version)) if row.rm_version else '-':>4} {acc:>7} "
            f"{old:>7} {promoted:>8} {row.steps:>9} "
            f"{gold[0]:>7.2f} [{gold[1]:>5.2f}, {gold[2]:>5.2f}] "
            f"{row.normalised:>10.3f} {row.success:>7.0%} {row.seconds:>5.0f}s",
            flush=True,
        )

    report(0, None, time.perf_counter())
    for r in range(1, rounds + 1):
        started = time.perf_counter()

        def act(env: Any, obs: Any, _rng: np.random.Generator) -> int:
            return int(policy.predict(obs, deterministic=False)[0])

        rm = None
        if label_rounds is None or r <= label_rounds:
            source = PairSource(
                store,
                env_id,
                mode="active",
                overlap=0.2,
                seed=seed + 1000 * r,
                behaviours={"policy": (act, 1.0 - explore), "random": (1.0, explore)},
            )
            label_with_simulated_annotators(store, source, pairs, rng)
            source.close()
            rm = retrain_reward_model(store, rm_dir, model, tolerance=tolerance, seed=seed + r)
        current = store.current_reward_model()
        reward = f"learned:{current['path']}"
        policy.set_env(make_training_env(env_id, 4, seed + r, {"reward": reward}))
        policy.learn(policy_steps, reset_num_timesteps=False)
        save_agent(
            policy,
            policy_out / f"round-{r}",
            algo="ppo",
            policy="candidate",
            env_id=env_id,
            env_kwargs={"reward": reward},
        )
        report(r, rm, started)
    policy_out.mkdir(parents=True, exist_ok=True)
    (policy_out / "rounds.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2) + "\n"
    )
    return results
