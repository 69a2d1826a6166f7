"""Reply-level GRPO and RLOO with TRL on the text and tokens ids.

TRL's ``GRPOTrainer`` does the optimisation (its loss, clipping, KL to the reference
and group advantages); this module gives it the suite's rollouts through its
``rollout_func`` hook (trl 1.16):

- the dataset is scenario seeds; TRL hands ``rollout_func`` each prompt repeated
  ``num_generations`` (G) times, and :func:`make_rollout_func` turns each run of G into
  one :class:`~rlhf_envs.rollouts.ReplyGroup`: the policy plays that scenario up to a
  random agent turn, then writes G replies to the same dialogue state
  (:func:`~rlhf_envs.rollouts.sample_reply_groups`). It returns, per reply, the prompt
  window's ids, the reply's ids and their sampling log-probabilities, token-exact, plus
  ``env_reward`` and ``gold_reward`` for the reward functions;
- the reward is the env's reward model's score of the reply (:func:`env_reward`); the
  gold reward is logged beside it with weight 0 (:func:`gold_reward`).

``algo="rloo"``: trl 1.16's ``RLOOTrainer`` has no rollout hook, so RLOO is GRPO with
``scale_rewards="none"``: the advantage ``r_i - mean(r)`` is RLOO's leave-one-out
advantage ``r_i - mean_{j != i} r_j`` times ``(G - 1) / G``, a constant step factor.

The KL penalty is TRL's ``beta`` (a per-token term of the loss against the frozen
starting model; 0 by default in TRL), not the env's ``kl_coef`` reward shaping.

Positions: TRL's loss runs the model on left-padded prompts without position ids, and
GPT-2's learned positions would then differ from those the replies were sampled with.
:func:`positions_from_mask` makes the model derive them from the attention mask, as
``generate`` does, so TRL's log-probabilities are the sampling ones (tested).

The command is ``rlhf-envs train-lm`` (:func:`add_command`).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.run_record import RunRecord, command_line
from rlhf_envs.lm.reference import continuation_logprobs, position_ids, quiet_transformers
from rlhf_envs.rollouts import (
    EpisodeRollout,
    LMPolicy,
    play_episodes,
    rollout_env_kwargs,
    sample_reply_groups,
)
from rlhf_envs.statistics import bootstrap_ci

ALGOS = ("grpo", "rloo")
_PROMPT = re.compile(r"^(?P<env>\S+) seed (?P<seed>-?\d+)$")


def positions_from_mask(model: torch.nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Make ``model`` compute position ids from its attention mask when a call gives a
    mask but no positions (and no cache), so left padding does not shift positions."""

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        mask = kwargs.get("attention_mask")
        if (
            mask is not None
            and kwargs.get("position_ids") is None
            and kwargs.get("past_key_values") is None
            and kwargs.get("cache") is None
        ):
            kwargs["position_ids"] = position_ids(mask)
        return args, kwargs

    return model.register_forward_pre_hook(hook, with_kwargs=True)


def seed_prompt(env_id: str, seed: int) -> str:
    """The dataset row that stands for one scenario (TRL's prompts are strings)."""
    return f"{env_id} seed {int(seed)}"


def parse_seed_prompt(prompt: Any) -> tuple[str, int]:
    match = _PROMPT.match(str(prompt))
    if match is None:
        raise ValueError(f"not a seed prompt: {prompt!r} (expected 'ENV_ID seed N')")
    return match["env"], int(match["seed"])


def make_rollout_func(
    tokenizer: Any,
    env_kwargs: dict[str, Any] | None = None,
    max_reply_tokens: int = 40,
    context_length: int | None = None,
    max_branch_turn: int = 10,
    seed: int = 0,
    horizon: int = 0,
) -> Any:
    """TRL's ``rollout_func``: runs of G equal seed prompts -> G scored replies each."""
    calls = [0]

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        size = int(
            trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        )
        if len(prompts) % size:
            raise ValueError(f"{len(prompts)} prompts is not a whole number of groups of {size}")
        runs = [prompts[k : k + size] for k in range(0, len(prompts), size)]
        if any(len(set(map(str, run))) != 1 for run in runs):
            raise ValueError("rollout_func expects each prompt repeated num_generations times")
        parsed = [parse_seed_prompt(run[0]) for run in runs]
        env_ids = {env for env, _ in parsed}
        if len(env_ids) != 1:
            raise ValueError(f"one env per training run, got {sorted(env_ids)}")
        policy = LMPolicy(
            trainer.model,
            tokenizer,
            max_reply_tokens=max_reply_tokens,
            context_length=context_length,
            temperature=float(trainer.temperature),
        )
        calls[0] += 1
        groups = sample_reply_groups(
            policy,
            env_ids.pop(),
            [s for _, s in parsed],
            size,
            env_kwargs,
            seed=seed * 7919 + calls[0],
            max_turns=max_branch_turn,
            horizon=horizon,
        )
        replies = [r for g in groups for r in g.replies]
        return {
            "prompt_ids": [list(r.prompt_ids) for r in replies],
            "completion_ids": [list(r.reply_ids) for r in replies],
            "logprobs": [list(r.logprobs) for r in replies],
            "env_reward": [x for g in groups for x in g.returns],
            "gold_reward": [x for g in groups for x in g.gold_returns],
            "turn": [g.turn for g in groups for _ in g.replies],
        }

    return rollout_func


def env_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    """The env's reward-model score of each reply (the training reward)."""
    return [float(x) for x in kwargs["env_reward"]]


def gold_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    """The gold reward of each reply (logged with weight 0: not trained on)."""
    return [float(x) for x in kwargs["gold_reward"]]


@dataclass
class GRPORecipe:
    """What a ``train-lm`` run uses (the defaults are the measured recipe).

    Attributes:
        env_id: a text or tokens id; reward: the training reward spec (the env's default
            when ``None``).
        algo: ``"grpo"`` (group-normalised advantages) or ``"rloo"`` (unscaled).
        group_size: G, replies per dialogue state; groups_per_step: states per step.
        steps: optimiser steps; learning_rate; beta: TRL's KL coefficient.
        temperature: sampling temperature; max_reply_tokens; context_length.
        max_branch_turn: groups branch at an agent turn drawn from 0 to this - 1.
        loss_type: TRL's loss aggregation; epsilon: its clipping.
        num_iterations: TRL's updates per batch of rollouts (mu).
        horizon: agent turns played after each reply whose rewards its return adds
            (0: the reply's own reward; see ``sample_reply_groups``).
        seed: training seed (scenario seeds are drawn from it).
    """

    env_id: str = "RLHF-ChatText-v0"
    reward: str | None = None
    algo: str = "grpo"
    group_size: int = 8
    groups_per_step: int = 4
    steps: int = 370
    learning_rate: float = 1e-4
    beta: float = 0.1
    temperature: float = 1.0
    max_reply_tokens: int = 40
    context_length: int | None = None
    max_branch_turn: int = 16
    loss_type: str = "dapo"
    epsilon: float = 0.2
    num_iterations: int = 1
    horizon: int = 4
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be at least 2 (a group baseline), got {self.group_size}"
            )
        if self.horizon < 0:
            raise ValueError(f"horizon must be at least 0, got {self.horizon}")
        for name in ("groups_per_step", "steps", "max_branch_turn", "num_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        rollout_env_kwargs(self.env_id, None)  # a registered text or tokens id

    def all_env_kwargs(self) -> dict[str, Any]:
        return {**self.env_kwargs, **({"reward": self.reward} if self.reward else {})}


def build_trainer(recipe: GRPORecipe, lm_folder: str | Path, out: str | Path) -> Any:
    """A TRL ``GRPOTrainer`` on ``recipe``, starting from the causal LM in ``lm_folder``."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    folder = Path(lm_folder).expanduser().resolve()
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, use_safetensors=True
        )
    positions_from_mask(model)
    rng = np.random.default_rng(recipe.seed)
    # Training scenarios: far from the held-out seeds (rlhf_agents.evaluation).
    seeds = rng.integers(0, 500_000, size=recipe.steps * recipe.groups_per_step)
    dataset = Dataset.from_dict({"prompt": [seed_prompt(recipe.env_id, s) for s in seeds]})
    batch = recipe.group_size * recipe.groups_per_step
    config = GRPOConfig(
        output_dir=str(out),
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        num_generations=recipe.group_size,
        max_completion_length=recipe.max_reply_tokens,
        max_steps=recipe.steps,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(5, recipe.steps // 10),
        beta=recipe.beta,
        temperature=recipe.temperature,
        scale_rewards="none" if recipe.algo == "rloo" else "group",
        loss_type=recipe.loss_type,
        epsilon=recipe.epsilon,
        num_iterations=recipe.num_iterations,
        # A small model on a CPU: recomputing activations only costs time.
        gradient_checkpointing=False,
        reward_weights=[1.0, 0.0],
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=recipe.seed,
        shuffle_dataset=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[env_reward, gold_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=make_rollout_func(
            tokenizer,
            recipe.all_env_kwargs(),
            recipe.max_reply_tokens,
            recipe.context_length,
            recipe.max_branch_turn,
            recipe.seed,
            recipe.horizon,
        ),
    )
    if getattr(trainer, "ref_model", None) is not None:
        positions_from_mask(trainer.ref_model)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # (train_lm shows its own progress bar; TRL's would print every log dict)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


# --- evaluation ------------------------------------------------------------------------


@dataclass
class PolicyEvaluation:
    """Whole episodes of one method on the held-out seeds."""

    name: str
    episodes: list[EpisodeRollout]
    kl_per_token: float | None = None

    @property
    def gold(self) -> np.ndarray:
        return np.array([e.gold for e in self.episodes])

    @property
    def success(self) -> float:
        return float(np.mean([e.success for e in self.episodes]))

    def row(self) -> dict[str, Any]:
        mean, low, high = bootstrap_ci(self.gold)
        return {
            "method": self.name,
            "gold_mean": round(mean, 4),
            "gold_low": round(low, 4),
            "gold_high": round(high, 4),
            "success": round(self.success, 4),
            "kl_per_token": "" if self.kl_per_token is None else round(self.kl_per_token, 4),
            "episodes": len(self.episodes),
        }


def kl_per_token(
    policy: LMPolicy, reference: torch.nn.Module, episodes: Sequence[EpisodeRollout]
) -> float:
    """Mean of log pi(token) - log pi_ref(token) over the policy's own sampled tokens: a
    Monte Carlo estimate of KL(pi || pi_ref) per token."""
    turns = [t for e in episodes for t in e.turns]
    if not turns:
        return float("nan")
    diffs = []
    for k in range(0, len(turns), 64):
        chunk = turns[k : k + 64]
        ref = continuation_logprobs(
            reference,
            [t.prompt_ids for t in chunk],
            [t.reply_ids for t in chunk],
            policy.pad_id,
            policy.temperature,
        )
        diffs += [
            a - b
            for t, r in zip(chunk, ref, strict=True)
            for a, b in zip(t.logprobs, r, strict=True)
        ]
    return float(np.mean(diffs))


def evaluate_policy(
    name: str,
    policy: LMPolicy,
    env_id: str,
    seeds: Sequence[int],
    env_kwargs: dict[str, Any] | None = None,
    best_of: int = 1,
    reference: torch.nn.Module | None = None,
    batch: int = 25,
    progress: bool = False,
) -> PolicyEvaluation:
    """Play the held-out ``seeds`` (in batches) and measure gold, success and KL."""
    from tqdm.auto import tqdm

    episodes: list[EpisodeRollout] = []
    with tqdm(
        total=len(seeds), desc=name, unit="episode", file=sys.stderr, disable=not progress
    ) as bar:
        for k in range(0, len(seeds), batch):
            episodes += play_episodes(
                policy, env_id, list(seeds[k : k + batch]), env_kwargs, best_of=best_of, seed=k
            )
            bar.update(len(seeds[k : k + batch]))
    kl = kl_per_token(policy, reference, episodes) if reference is not None else None
    return PolicyEvaluation(name, episodes, kl)


# --- a training run --------------------------------------------------------------------


class _Progress:
    """A TrainerCallback (built lazily: transformers is imported on use) that shows a
    progress bar with the training and gold reward, and keeps TRL's logs."""

    def __new__(cls, steps: int, show: bool) -> Any:
        from transformers import TrainerCallback

        class Progress(TrainerCallback):
            def __init__(self) -> None:
                self.logs: list[dict[str, float]] = []
                self.bar = None
                if show:
                    from tqdm.auto import tqdm

                    self.bar = tqdm(total=steps, desc="train-lm", unit="step", file=sys.stderr)

            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if not logs or "loss" not in logs:
                    return
                row = {
                    "step": int(state.global_step),
                    **{k: float(v) for k, v in logs.items() if isinstance(v, (int, float))},
                }
                self.logs.append(row)
                if self.bar is not None:
                    self.bar.update(row["step"] - self.bar.n)
                    self.bar.set_postfix(
                        reward=f"{row.get('rewards/env_reward/mean', float('nan')):+.2f}",
                        gold=f"{row.get('rewards/gold_reward/mean', float('nan')):+.2f}",
                        refresh=False,
                    )

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if self.bar is not None:
                    self.bar.close()

        return Progress()


def train_lm(
    recipe: GRPORecipe,
    lm_folder: str | Path,
    out: str | Path,
    eval_episodes: int = 100,
    progress: bool = True,
    command: str | None = None,
    best_of: Sequence[int] = (4, 16),
) -> dict[str, Any]:
    """Train with GRPO/RLOO, then compare with the SFT start and best-of-n (n in
    ``best_of`` and the group size G, the same number of sampled replies) on held-out
    seeds. Writes ``out``: ``results.csv``, ``curve.png``, ``transcripts.md``,
    ``summary.json``, ``run.json`` and the trained ``policy/`` (safetensors)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = held_out_seeds(eval_episodes)
    record = RunRecord(command or "rlhf_agents.grpo.train_lm", seeds={"eval_seeds": seeds})
    env_kwargs = recipe.all_env_kwargs()
    start = LMPolicy.from_folder(
        lm_folder,
        max_reply_tokens=recipe.max_reply_tokens,
        context_length=recipe.context_length,
        temperature=recipe.temperature,
    )
    results = [
        evaluate_policy(
            f"best-of-{n}" if n > 1 else "SFT (sampled)",
            start,
            recipe.env_id,
            seeds,
            env_kwargs,
            best_of=n,
            progress=progress,
        )
        for n in [1, *sorted({*best_of, recipe.group_size} - {1})]
    ]
    trainer = build_trainer(recipe, lm_folder, out / "trainer")
    bar = _Progress(recipe.steps, progress)
    trainer.add_callback(bar)
    began = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - began
    trained = LMPolicy(
        trainer.model,
        start.tokenizer,
        max_reply_tokens=recipe.max_reply_tokens,
        context_length=recipe.context_length,
        temperature=recipe.temperature,
    )
    trainer.model.eval()
    results.append(
        evaluate_policy(
            f"{recipe.algo.upper()} ({recipe.steps} steps)",
            trained,
            recipe.env_id,
            seeds,
            env_kwargs,
            reference=start.model,
            progress=progress,
        )
    )
    with quiet_transformers():
        trainer.model.save_pretrained(out / "policy", safe_serialization=True)
        start.tokenizer.save_pretrained(out / "policy")
    sft, rl = results[0].gold, results[-1].gold
    gains = {"rl_minus_sft": bootstrap_ci(rl - sft)}
    for result in results[1:-1]:
        tag = result.name.replace("-", "_")
        gains[f"{tag}_minus_sft"] = bootstrap_ci(result.gold - sft)
        gains[f"rl_minus_{tag}"] = bootstrap_ci(rl - result.gold)
    rows = [r.row() for r in results]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "recipe": asdict(recipe),
        "lm": str(Path(lm_folder).resolve()),
        "train_minutes": round(train_seconds / 60, 2),
        "rows": rows,
        "paired_gains": {k: [round(x, 4) for x in v] for k, v in gains.items()},
        "training_log": bar.logs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record.write(out / "run.json", settings=asdict(recipe), lm=summary["lm"])
    with open(out / "transcripts.md", "w") as handle:
        for result in results:
            handle.write(f"## {result.name}\n\n")
            for episode in result.episodes[:3]:
                handle.write(
                    f"Seed {episode.seed}, gold {episode.gold:+.2f}, success {episode.success}\n\n"
                    f"```\n{episode.transcript}\n```\n\n"
                )
    plot_training(bar.logs, rows, out / "curve.png", recipe)
    return summary


def plot_training(
    logs: list[dict[str, float]], rows: list[dict[str, Any]], path: Path, recipe: GRPORecipe
) -> None:
    """Training and gold reward per reply along training, beside the held-out table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if logs:
        steps = [r["step"] for r in logs]
        for key, label in (
            ("rewards/env_reward/mean", "training reward"),
            ("rewards/gold_reward/mean", "gold"),
        ):
            values = np.array([r.get(key, np.nan) for r in logs])
            window = max(1, len(values) // 15)
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            axes[0].plot(steps[window - 1 :], smooth, label=label)
    axes[0].set_xlabel("optimiser step")
    per = f"reply + {recipe.horizon} turns after it" if recipe.horizon else "sampled reply"
    axes[0].set_ylabel(f"reward per {per} (smoothed)")
    axes[0].legend()
    axes[0].set_title(f"{recipe.env_id}: {recipe.algo.upper()} training replies")
    names = [r["method"] for r in rows]
    means = np.array([r["gold_mean"] for r in rows])
    errors = np.array(
        [[r["gold_mean"] - r["gold_low"], r["gold_high"] - r["gold_mean"]] for r in rows]
    ).T
    axes[1].bar(
        range(len(rows)),
        means,
        yerr=errors,
        color=["tab:gray"] + ["tab:orange"] * (len(rows) - 2) + ["tab:blue"],
    )
    axes[1].set_xticks(range(len(rows)), names, fontsize=8)
    axes[1].set_ylabel("held-out gold per episode (95% CI)")
    axes[1].set_title(f"{rows[0]['episodes']} held-out episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """``rlhf-envs train-lm``: GRPO/RLOO with TRL on a text or tokens id."""
    defaults = GRPORecipe()
    parser = subparsers.add_parser(
        "train-lm",
        help="RLHF of the reference LM (or any causal LM folder) with TRL's GRPO or RLOO",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--env", default=defaults.env_id, help="a text or tokens id")
    parser.add_argument(
        "--lm", help="causal LM folder to start from (default: the project's reference LM)"
    )
    parser.add_argument("--reward", help="training reward spec (default: the env's)")
    parser.add_argument("--algo", choices=ALGOS, default=defaults.algo)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--group-size", type=int, default=defaults.group_size)
    parser.add_argument("--groups-per-step", type=int, default=defaults.groups_per_step)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--beta", type=float, default=defaults.beta, help="TRL's KL coefficient")
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--max-branch-turn", type=int, default=defaults.max_branch_turn)
    parser.add_argument(
        "--horizon",
        type=int,
        default=defaults.horizon,
        help="agent turns played after each reply whose rewards its return adds",
    )
    parser.add_argument(
        "--num-iterations", type=int, default=defaults.num_iterations, help="TRL's mu"
    )
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument(
        "--best-of", default="4,16", help="best-of-n baselines besides n = G ('' for G only)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/train_lm", help="results folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os
    import warnings

    from rlhf_envs.lm.build import default_lm_path

    # TRL marks its rollout hook experimental and calls transformers' checkpointing
    # methods by their old names: said once here, not on every step.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    warnings.filterwarnings("ignore", ".*gradient_checkpointing.* is deprecated", FutureWarning)

    torch.set_num_threads(max(1, int(args.threads)))
    try:
        recipe = GRPORecipe(
            env_id=args.env,
            reward=args.reward,
            algo=args.algo,
            group_size=args.group_size,
            groups_per_step=args.groups_per_step,
            steps=args.steps,
            learning_rate=args.learning_rate,
            beta=args.beta,
            temperature=args.temperature,
            max_branch_turn=args.max_branch_turn,
            horizon=args.horizon,
            num_iterations=args.num_iterations,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"rlhf-envs train-lm: {exc}", file=sys.stderr)
        return 2
    lm = Path(args.lm) if args.lm else default_lm_path()
    summary = train_lm(
        recipe,
        lm,
        args.out,
        eval_episodes=args.eval_episodes,
        best_of=[int(n) for n in args.best_of.split(",") if n.strip()],
        command=command_line(["rlhf-envs", *sys.argv[1:]]),
    )
    for row in summary["rows"]:
        print(
            f"{row['method']:<22} gold {row['gold_mean']:+.2f} [{row['gold_low']:+.2f}, "
            f"{row['gold_high']:+.2f}]  success {row['success']:.2f}  "
            f"KL/token {row['kl_per_token']}"
        )
    for key, (mean, low, high) in summary["paired_gains"].items():
        print(f"{key:<22} {mean:+.2f} [{low:+.2f}, {high:+.2f}] (paired)")
    print(f"trained {recipe.steps} steps in {summary['train_minutes']:.1f} min; wrote {args.out}")
    return 0
