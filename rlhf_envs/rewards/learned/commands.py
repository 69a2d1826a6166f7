"""``rlhf-envs train-rm`` and ``rlhf-envs eval-rm``: train and evaluate learned reward models."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlhf_envs.preference_data.formats import FeedbackData


def add_train_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs train-rm``."""
    p = subparsers.add_parser(
        "train-rm",
        help="train a reward model on preference pairs (Bradley-Terry; ties by Davidson's "
        "model), ratings (cross-entropy), or both in one file (joint loss)",
    )
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help='JSON Lines: TRL pairs (a tie has "tie": true), HH-RLHF pairs, ratings, or '
        "pairs and ratings mixed",
    )
    p.add_argument(
        "--model",
        default="linear",
        help="linear, minilm, or a local Hugging Face model folder; several joined by + "
        "(minilm+linear) train an ensemble",
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the checkpoint already in --out (its own files only; others are kept)",
    )
    p.add_argument("--epochs", type=int, help="maximum epochs (default: 30 linear, 4 transformer)")
    p.add_argument("--batch-size", type=int, help="pairs or ratings per step")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument(
        "--patience", type=int, help="epochs without held-out improvement before stopping"
    )
    p.add_argument(
        "--validation",
        type=float,
        default=0.1,
        help="held-out share for early stopping (default 0.1)",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="tokens per input, transformer models (default 256)",
    )
    p.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default="cls",
        help="transformer models: read the classifier's head (cls) or mean-pool the encoder",
    )
    p.add_argument(
        "--context-tokens",
        type=int,
        help="transformer models: at most N tokens of context with the reply (0: reply only)",
    )
    p.add_argument(
        "--train-embeddings",
        action="store_true",
        help="transformer models: fine-tune the word embeddings too",
    )
    p.add_argument(
        "--label-smoothing", type=float, default=0.0, help="Bradley-Terry label smoothing eps"
    )
    p.add_argument("--limit", type=int, help="train on the first N records only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed lines (their count is reported)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_train)


def add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs eval-rm``."""
    p = subparsers.add_parser(
        "eval-rm", help="pairwise accuracy (95%% bootstrap CI) of a reward model on a data file"
    )
    p.add_argument("--data", type=Path, required=True, help="JSON Lines pairs or ratings")
    p.add_argument("--rm", type=Path, required=True, help="checkpoint folder (from train-rm)")
    p.add_argument(
        "--skip", type=int, default=0, help="ignore the first N records (e.g. those trained on)"
    )
    p.add_argument("--limit", type=int, help="evaluate at most N records")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--skip-invalid", action="store_true", help="skip malformed lines (their count is reported)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_eval)


def _read(path: Path, skip_invalid: bool, command: str) -> FeedbackData:
    from rlhf_envs.preference_data.formats import FeedbackFormatError, read_feedback

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the skipped lines are reported in the summary below
            data = read_feedback(path, skip_invalid=skip_invalid)
    except (FeedbackFormatError, FileNotFoundError) as err:
        raise SystemExit(f"rlhf-envs {command}: {err}") from None
    print(data.summary())
    return data


def _threads(n: int | None) -> None:
    if n is not None:
        import torch

        torch.set_num_threads(max(1, n))


def run_train(args: argparse.Namespace) -> int:
    from rlhf_envs.preference_data.formats import data_hash
    from rlhf_envs.rewards.learned.checkpoint import CheckpointError, check_writable
    from rlhf_envs.rewards.learned.training import train_reward_model
    from rlhf_envs.rewards.learned.transformer import resolve_base_model

    _threads(args.threads)
    try:
        check_writable(args.out, overwrite=args.force)  # before training, not after
        if args.model != "linear":
            resolve_base_model(args.model)
    except (CheckpointError, ValueError) as err:
        raise SystemExit(f"rlhf-envs train-rm: {err}") from None
    data = _read(args.data, args.skip_invalid, "train-rm")
    records = data.records[: args.limit] if args.limit else data.records
    info = {
        "path": str(args.data.resolve()),
        "sha256": data_hash(args.data),
        "records_used": len(records),
        "lines_skipped": len(data.skipped),
    }
    try:
        result = train_reward_model(
            records,
            args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            validation_fraction=args.validation,
            max_length=args.max_length,
            pooling=args.pooling,
            context_tokens=args.context_tokens,
            train_embeddings=args.train_embeddings,
            label_smoothing=args.label_smoothing,
            seed=args.seed,
            progress=not args.no_progress,
            data_info=info,
        )
    except ValueError as err:
        raise SystemExit(f"rlhf-envs train-rm: {err}") from None
    folder = result.model.save(args.out, overwrite=args.force)
    members = result.metrics.get("members", [result.metrics])
    kinds = [m.scorer.kind for m in getattr(result.model, "members", [result.model])]
    for kind, m in zip(kinds, members, strict=True):
        shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k.startswith("val_"))
        used = ", ".join(f"{m[k]} {k}" for k in ("pairs", "ties", "ratings") if m[k])
        print(
            f"trained {kind} {m['objective']} model on {m['train_records']} "
            f"records ({used}; {m['validation_records']} held out) in {m['seconds']:.1f} s; "
            f"best epoch {m['best_epoch']} of {m['epochs_run']}: {shown or 'no held-out data'}"
        )
    if len(kinds) > 1:
        print(f"ensemble of {len(kinds)} models: mean score, members' spread as uncertainty")
    print(f'saved to {folder}  (use it as reward="learned:{folder}")')
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from rlhf_envs.preference_data.formats import data_hash
    from rlhf_envs.preference_data.records import PreferencePair
    from rlhf_envs.rewards.learned.checkpoint import CheckpointError
    from rlhf_envs.rewards.learned.ensemble import load_learned
    from rlhf_envs.rewards.learned.evaluation import (
        PairwiseReport,
        RatingReport,
        pairwise_accuracy,
        rating_agreement,
    )

    _threads(args.threads)
    try:
        model = load_learned(args.rm)
    except CheckpointError as err:
        raise SystemExit(f"rlhf-envs eval-rm: {err}") from None
    data = _read(args.data, args.skip_invalid, "eval-rm")
    records = data.records[args.skip :]
    if args.limit:
        records = records[: args.limit]
    if not records:
        raise SystemExit(f"rlhf-envs eval-rm: no records left after --skip {args.skip}")
    trained = (model.info.get("training") or {}).get("data") or {}
    if trained.get("sha256") == data_hash(args.data) and args.skip < trained.get("records_used", 0):
        print(
            f"warning: the model was trained on the first {trained['records_used']} records of "
            f"this file; this evaluation includes them (use --skip {trained['records_used']} for "
            "held-out records)",
            file=sys.stderr,
        )
    report: PairwiseReport | RatingReport
    pairs = [r for r in records if isinstance(r, PreferencePair)]
    if pairs and len(pairs) < len(records):
        print(f"evaluating the {len(pairs)} pairs of the file; its ratings are left out")
        records = list(pairs)
    if isinstance(records[0], PreferencePair):
        try:
            report = pairwise_accuracy(model, records)
        except ValueError as err:  # e.g. a file of ties only
            raise SystemExit(f"rlhf-envs eval-rm: {err}") from None
        result = {
            "pairs": report.pairs,
            "accuracy": report.accuracy,
            "ci95": [report.low, report.high],
            "ceiling": report.ceiling,
        }
    else:
        report = rating_agreement(model, records)
        result = {
            "ratings": report.ratings,
            "nearest_rating_accuracy": report.accuracy,
            "spearman": report.spearman,
        }
    print(json.dumps(result) if args.json else report.summary())
    return 0
