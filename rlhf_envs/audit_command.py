"""``rlhf-envs audit-rm``: what a reward model rewards, measured against the gold rubric on
an env's own contexts (:mod:`rlhf_envs.rewards.audit`).

The audit needs dialogue states and held-out labels; this command draws both from an env
with the simulated annotators (:mod:`rlhf_envs.feedback`). Reward models never import the
feedback layer, so the command sits above it rather than beside ``train-rm``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch

import rlhf_envs
from rlhf_envs.env_ids import check_env_id
from rlhf_envs.feedback.annotators import DEFAULT_PANEL, FeedbackCollector
from rlhf_envs.preference_data.formats import FeedbackFormatError, data_hash, read_preferences
from rlhf_envs.preference_data.records import PreferencePair
from rlhf_envs.rewards.audit import audit_reward_model, draw_contexts
from rlhf_envs.rewards.audit_report import summary_table, write_report
from rlhf_envs.rewards.learned.checkpoint import CheckpointError
from rlhf_envs.rewards.learned.ensemble import EnsembleRewardModel, load_learned
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.registry import make_reward_model, registered_names
from rlhf_envs.rewards.validation import CheckedRewardModel, RewardModelError

__all__ = ["add_command", "resolve_reward_model", "run"]

COMMAND = "rlhf-envs audit-rm"
ACCEPTED = (
    "a checkpoint folder (config.json + model.safetensors, from `rlhf-envs train-rm`) or a "
    "reward spec: rubric, rubric:PERSONA, learned:PATH, or a registered name"
)


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs audit-rm``.

    Args:
        subparsers: the ``rlhf-envs`` parser's subcommands (the entry-point protocol of
            :mod:`rlhf_envs.cli`).
    """
    p = subparsers.add_parser(
        "audit-rm",
        help="audit a reward model: failure types, length bias, calibration and exploit "
        "probes, against the gold rubric on an env's own contexts",
        description="In N contexts of the env (seeded rollouts by the simulated behaviours), "
        "score the correct reply, one distractor of each failure type and probes made from "
        "the correct reply (padding, keyword stuffing, repetition, politeness, flattery, a "
        "forged user turn, shuffled words); measure calibration on held-out labels. The gold "
        "rubric gets the same audit as a reference. Writes report.md, audit.csv and audit.png.",
    )
    p.add_argument("--rm", required=True, help=f"the reward model: {ACCEPTED}")
    p.add_argument(
        "--env", default="RLHF-Chat-v0", help="env id (select interface; default RLHF-Chat-v0)"
    )
    p.add_argument("--contexts", type=int, default=300, help="contexts to audit (default 300)")
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed of the contexts, probes and simulated labels (default 1: `rlhf-envs "
        "collect` and the benchmarks train on seed 0, so these are held out)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        help="held-out preference pairs (JSON Lines) instead of fresh simulated labels",
    )
    p.add_argument(
        "--label-pairs",
        type=int,
        default=2000,
        help="simulated held-out pairs when --labels is not given (default 2000)",
    )
    p.add_argument("--out", type=Path, help="output folder (default runs/audit/NAME)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.set_defaults(func=run)


def resolve_reward_model(text: str) -> tuple[str, CheckedRewardModel]:
    """The reward model ``--rm`` names, and a short name for it.

    Args:
        text: a checkpoint folder, or a reward spec (a folder of that name wins).

    Returns:
        ``(name, model)``: the folder's name or the spec, and the checked model.

    Raises:
        ValueError: the folder is no checkpoint, the path is a file, or the text is
            neither a folder nor a known spec; the message says what is accepted.
    """
    path = Path(text).expanduser()
    if path.is_dir():
        try:
            model = load_learned(path)
        except CheckpointError as err:
            raise ValueError(f"--rm {text}: {err}; accepted: {ACCEPTED}") from None
        return path.resolve().name, CheckedRewardModel(model, name=model.name)
    if path.exists():
        raise ValueError(f"--rm {text} is a file, not a folder; accepted: {ACCEPTED}")
    name = text.partition(":")[0]
    if name not in registered_names():
        raise ValueError(
            f"--rm {text!r}: no such folder, and not a reward spec; accepted: {ACCEPTED}"
        )
    try:
        return text, make_reward_model(text)
    except RewardModelError as err:
        # A spec whose model cannot be built from its argument (a missing checkpoint).
        if isinstance(err.__cause__, ValueError):
            raise ValueError(f"--rm {text}: {err.__cause__}") from None
        raise


def _labels(
    args: argparse.Namespace, model: CheckedRewardModel
) -> tuple[list[PreferencePair], str]:
    """Held-out pairs and a line saying where they come from."""
    if args.labels is None:
        pairs = FeedbackCollector(args.env, seed=args.seed).preferences(
            args.label_pairs, progress=False
        )
        panel = ", ".join(f"{a.persona} {w:g}" for a, w in DEFAULT_PANEL)
        return pairs, (
            f"{len(pairs)} fresh simulated pairs, FeedbackCollector({args.env!r}, "
            f"seed={args.seed}), default annotator panel ({panel})"
        )
    try:
        data = read_preferences(args.labels)
    except (FeedbackFormatError, FileNotFoundError, IsADirectoryError) as err:
        raise SystemExit(f"{COMMAND}: --labels {args.labels}: {err}") from None
    inner = model.model
    if isinstance(inner, LearnedRewardModel | EnsembleRewardModel):
        trained = (inner.info.get("training") or {}).get("data") or {}
        if trained.get("sha256") == data_hash(args.labels):
            print(
                f"warning: {args.labels} is the file the model was trained on; its first "
                f"{trained.get('records_used')} pairs are not held out",
                file=sys.stderr,
            )
    return list(data.records), f"{len(data.records)} pairs from {args.labels}"


def run(args: argparse.Namespace) -> int:
    """Run ``rlhf-envs audit-rm``.

    Args:
        args: the parsed options (see :func:`add_command`).

    Returns:
        0; bad input raises ``SystemExit`` with one line saying what was wrong.
    """
    started = time.perf_counter()
    if args.contexts < 1 or args.label_pairs < 1:
        raise SystemExit(f"{COMMAND}: --contexts and --label-pairs must be at least 1")
    try:
        check_env_id(args.env, ("select",))  # before any work: a typo costs no time
        name, model = resolve_reward_model(args.rm)
    except ValueError as err:
        raise SystemExit(f"{COMMAND}: {err}") from None
    torch.set_num_threads(max(1, args.threads))
    out = args.out or Path("runs") / "audit" / (re.sub(r"[^\w.-]+", "-", name).strip("-") or "rm")
    labels, source = _labels(args, model)
    collector = FeedbackCollector(args.env, seed=args.seed)
    contexts = draw_contexts((c.state for c in collector.contexts()), args.contexts, args.seed)
    collector.close()
    # The gold's probabilities use the annotators' own model: the gold persona's
    # temperature and flip rate (simulated labels only; a file's annotators are unknown).
    gold_annotator = next(a for a, _ in DEFAULT_PANEL if a.persona == "balanced")
    simulated = args.labels is None
    report = audit_reward_model(
        model,
        contexts,
        gold=collector.gold,
        labels=labels,
        temperature=gold_annotator.temperature if simulated else None,
        flip_rate=gold_annotator.flip_rate if simulated else 0.0,
        name=name,
        seed=args.seed,
        settings={
            "reward model": f"`{model.name}`",
            "env": f"{args.env}, {len(contexts)} contexts from "
            f"{len({id(c.state.scenario) for c in contexts})} seeded episodes (seed {args.seed})",
            "gold reference": f"`{collector.gold.name}`",
            "held-out labels": source,
            "command": "`" + " ".join(["rlhf-envs", "audit-rm", *_argv(args)]) + "`",
            "version": f"rlhf-envs {rlhf_envs.__version__}, torch {torch.__version__}",
        },
    )
    paths = write_report(report, out)
    print(summary_table(report))
    print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - started:.1f} s")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options as given, for the report (so a number can be reproduced)."""
    out = ["--rm", str(args.rm), "--env", args.env, "--contexts", str(args.contexts)]
    out += ["--seed", str(args.seed)]
    if args.labels is not None:
        out += ["--labels", str(args.labels)]
    else:
        out += ["--label-pairs", str(args.label_pairs)]
    return out
