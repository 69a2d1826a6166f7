"""``rlhf-envs collect``: label pairs or ratings with simulated annotators and save them."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rlhf_envs.feedback.annotators import (
    DEFAULT_BEHAVIOURS,
    DEFAULT_PANEL,
    FeedbackCollector,
    SimulatedAnnotator,
    parse_weights,
)
from rlhf_envs.preference_data.formats import write_preferences, write_ratings
from rlhf_envs.preference_data.records import RATING_SCALES


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs collect``."""
    p = subparsers.add_parser(
        "collect",
        help="collect preference pairs or ratings from simulated annotators (JSON Lines)",
        description="Play seeded episodes with a mix of expert, partly trained and random "
        "behaviour; at each turn two candidate replies are compared (or one is rated) by a "
        "simulated annotator (rubric persona + Bradley-Terry noise + random flips).",
    )
    p.add_argument(
        "--env", default="RLHF-Chat-v0", help="env id (select interface; default RLHF-Chat-v0)"
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--pairs", type=int, help="number of preference pairs to collect")
    what.add_argument("--ratings", type=int, help="number of single-reply ratings to collect")
    p.add_argument(
        "--scale",
        choices=sorted(RATING_SCALES),
        default="thumbs",
        help="rating scale (default thumbs)",
    )
    p.add_argument("--out", type=Path, required=True, help="output JSON Lines file")
    p.add_argument("--seed", type=int, default=0, help="seed of episodes and labels (default 0)")
    default_panel = ",".join(f"{a.persona}={w:g}" for a, w in DEFAULT_PANEL)
    p.add_argument(
        "--annotators", default=default_panel, help=f"persona=weight list (default {default_panel})"
    )
    p.add_argument(
        "--temperature", type=float, default=0.5, help="Bradley-Terry temperature (default 0.5)"
    )
    p.add_argument(
        "--flip-rate",
        type=float,
        default=0.05,
        help="share of labels flipped at random (default 0.05)",
    )
    p.add_argument(
        "--rating-noise", type=float, default=0.3, help="score noise before thresholding ratings"
    )
    shares = ",".join(f"{name}={w:g}" for name, (_, w) in DEFAULT_BEHAVIOURS.items())
    kinds = "; ".join(
        f"{name}: random action {eps:.0%} of turns" for name, (eps, _) in DEFAULT_BEHAVIOURS.items()
    )
    p.add_argument(
        "--behaviours",
        default=shares,
        help=f"share of episodes played by each behaviour (default {shares}); "
        f"the behaviours: {kinds}",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    count = args.pairs if args.pairs is not None else args.ratings
    if count < 1:
        raise SystemExit("rlhf-envs collect: the number of pairs or ratings must be at least 1")
    try:
        personas = parse_weights(args.annotators, "--annotators")
        shares = parse_weights(args.behaviours, "--behaviours")
        unknown = sorted(set(shares) - set(DEFAULT_BEHAVIOURS))
        if unknown:
            raise ValueError(
                f"--behaviours: unknown {unknown}; known: {', '.join(DEFAULT_BEHAVIOURS)}"
            )
        panel = [
            (
                SimulatedAnnotator(name, name, args.temperature, args.flip_rate, args.rating_noise),
                weight,
            )
            for name, weight in personas.items()
        ]
        behaviours = {name: (DEFAULT_BEHAVIOURS[name][0], w) for name, w in shares.items()}
        collector = FeedbackCollector(args.env, panel, behaviours, seed=args.seed)
    except ValueError as err:
        raise SystemExit(f"rlhf-envs collect: {err}") from None
    started = time.perf_counter()
    progress = not args.no_progress
    if args.pairs is not None:
        pairs = collector.preferences(count, progress=progress)
        written = write_preferences(args.out, pairs)
        noun = "pairs"
    else:
        ratings = collector.ratings(count, scale=args.scale, progress=progress)
        written = write_ratings(args.out, ratings)
        noun = f"{args.scale} ratings"
    collector.close()
    print(f"wrote {written} {noun} to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


def add_label_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs label``: the labelling web app."""
    from rlhf_envs.feedback.pairs import MODES

    p = subparsers.add_parser(
        "label",
        help=(
            "serve the labelling web app (compare two replies or rate one) over a feedback database"
        ),
        description="Annotators open the page, give their name, and compare two replies in the "
        "dialogue's context (keys 1/2, t tie, s skip) or rate one (thumbs u/d or 1-5 stars). "
        "Labels go to the SQLite database at --db (created if missing). /admin shows labels per "
        "annotator, Cohen's kappa and the reward models' accuracy over time.",
    )
    p.add_argument(
        "--db", type=Path, required=True, help="feedback database (SQLite; created if missing)"
    )
    p.add_argument(
        "--env", default="RLHF-Chat-v0", help="select-interface env id the pairs come from"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--pairs",
        choices=MODES,
        default="active",
        help="active: the pair the current reward model is least sure about (of --pool drawn); "
        "random: any pair (default active; random until a reward model is promoted)",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=16,
        help="pairs drawn per pair shown in active mode (default 16)",
    )
    p.add_argument(
        "--overlap",
        type=float,
        default=0.2,
        help="share of pairs shown to two annotators, for agreement (default 0.2)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes pairs are drawn from")
    p.set_defaults(func=run_label)


def run_label(args: argparse.Namespace) -> int:
    import uvicorn

    from rlhf_envs.feedback.app import create_app
    from rlhf_envs.feedback.pairs import PairSource
    from rlhf_envs.feedback.store import FeedbackStore, StoreError

    if not 0 <= args.port <= 65535:
        raise SystemExit(f"rlhf-envs label: --port must be 0 to 65535, got {args.port}")
    try:
        store = FeedbackStore(args.db)
        source = PairSource(
            store, args.env, mode=args.pairs, pool=args.pool, overlap=args.overlap, seed=args.seed
        )
    except (StoreError, ValueError) as err:
        raise SystemExit(f"rlhf-envs label: {err}") from None
    counts = store.counts()
    print(
        f"feedback database {args.db}: {counts['comparisons']} comparisons, "
        f"{counts['labels']} labels"
    )
    print(
        f"labelling page: http://{args.host}:{args.port}/   admin: http://{args.host}:{args.port}/admin"
    )
    uvicorn.run(create_app(store, source), host=args.host, port=args.port, log_level="warning")
    source.close()
    store.close()
    return 0


def add_feedback_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs feedback import|export|info``: move data in and out of the database."""
    p = subparsers.add_parser(
        "feedback",
        help="import, export or summarise a feedback database",
        description="Import TRL or HH-RLHF JSON Lines into a feedback database, export its "
        "labels as TRL JSON Lines (pseudonymous annotator ids only), or summarise it.",
    )
    sub = p.add_subparsers(dest="action", required=True)
    imp = sub.add_parser(
        "import", help="add a JSON Lines file (TRL pairs, HH-RLHF pairs or TRL ratings)"
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--db", type=Path, required=True)
    imp.add_argument(
        "--annotator", default="imported", help="annotator of records without an 'annotator' key"
    )
    imp.add_argument(
        "--skip-invalid", action="store_true", help="leave out malformed lines instead of stopping"
    )
    exp = sub.add_parser(
        "export", help="write A/B labels as TRL preference pairs (or ratings with --ratings)"
    )
    exp.add_argument("--db", type=Path, required=True)
    exp.add_argument("--out", type=Path, required=True)
    exp.add_argument(
        "--ratings", choices=sorted(RATING_SCALES), help="export ratings of this scale instead"
    )
    info = sub.add_parser("info", help="row counts, annotators, agreement and reward models")
    info.add_argument("--db", type=Path, required=True)
    p.set_defaults(func=run_feedback)


def run_feedback(args: argparse.Namespace) -> int:
    from rlhf_envs.feedback.agreement import annotator_agreement
    from rlhf_envs.feedback.store import FeedbackStore, StoreError
    from rlhf_envs.preference_data.formats import FeedbackFormatError

    if args.action != "import" and not args.db.exists():
        raise SystemExit(f"rlhf-envs feedback {args.action}: no database at {args.db}")
    try:
        with FeedbackStore(args.db) as store:
            if args.action == "import":
                counts = store.import_file(
                    args.file, annotator=args.annotator, skip_invalid=args.skip_invalid
                )
                print(
                    f"imported {', '.join(f'{n} {k}' for k, n in counts.items())} "
                    f"from {args.file} into {args.db}"
                )
            elif args.action == "export":
                n = (
                    store.export_ratings(args.out, args.ratings)
                    if args.ratings
                    else store.export_preferences(args.out)
                )
                print(f"wrote {n} records to {args.out}")
            else:
                counts = store.counts()
                print(
                    f"{args.db} (schema {store.schema_version}): "
                    + ", ".join(f"{n} {k}" for k, n in counts.items())
                )
                agreement = annotator_agreement(store.overlapping_labels())
                print(
                    f"agreement: {agreement.items} shared comparisons, kappa {agreement.kappa:.3f}"
                )
                for a in store.annotator_summary():
                    print(f"  {a['id']}  {a['labels']:6d} labels  {a['ratings']:6d} ratings")
                for r in store.reward_models():
                    print(
                        f"  RM v{r['version']}: held-out accuracy {r['accuracy']}, "
                        f"promoted {bool(r['promoted'])}"
                    )
    except (StoreError, FeedbackFormatError, OSError) as err:
        raise SystemExit(f"rlhf-envs feedback {args.action}: {err}") from None
    return 0
