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
from rlhf_envs.feedback.formats import write_preferences, write_ratings
from rlhf_envs.feedback.records import RATING_SCALES


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``rlhf-envs collect``."""
    p = subparsers.add_parser(
        "collect",
        help="collect preference pairs or ratings from simulated annotators (JSON Lines)",
        description="Play seeded episodes with a mix of expert, partly trained and random behaviour; "
        "at each turn two candidate replies are compared (or one is rated) by a simulated annotator "
        "(rubric persona + Bradley-Terry noise + random flips).",
    )
    p.add_argument("--env", default="RLHF-Chat-v0", help="env id (select interface; default RLHF-Chat-v0)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--pairs", type=int, help="number of preference pairs to collect")
    what.add_argument("--ratings", type=int, help="number of single-reply ratings to collect")
    p.add_argument("--scale", choices=sorted(RATING_SCALES), default="thumbs", help="rating scale (default thumbs)")
    p.add_argument("--out", type=Path, required=True, help="output JSON Lines file")
    p.add_argument("--seed", type=int, default=0, help="seed of episodes and labels (default 0)")
    default_panel = ",".join(f"{a.persona}={w:g}" for a, w in DEFAULT_PANEL)
    p.add_argument("--annotators", default=default_panel, help=f"persona=weight list (default {default_panel})")
    p.add_argument("--temperature", type=float, default=0.5, help="Bradley-Terry temperature (default 0.5)")
    p.add_argument("--flip-rate", type=float, default=0.05, help="share of labels flipped at random (default 0.05)")
    p.add_argument("--rating-noise", type=float, default=0.3, help="score noise before thresholding ratings")
    shares = ",".join(f"{name}={w:g}" for name, (_, w) in DEFAULT_BEHAVIOURS.items())
    kinds = "; ".join(f"{name}: random action {eps:.0%} of turns" for name, (eps, _) in DEFAULT_BEHAVIOURS.items())
    p.add_argument("--behaviours", default=shares,
                   help=f"share of episodes played by each behaviour (default {shares}); the behaviours: {kinds}")
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
            raise ValueError(f"--behaviours: unknown {unknown}; known: {', '.join(DEFAULT_BEHAVIOURS)}")
        panel = [
            (SimulatedAnnotator(name, name, args.temperature, args.flip_rate, args.rating_noise), weight)
            for name, weight in personas.items()
        ]
        behaviours = {name: (DEFAULT_BEHAVIOURS[name][0], w) for name, w in shares.items()}
        collector = FeedbackCollector(args.env, panel, behaviours, seed=args.seed)
    except ValueError as err:
        raise SystemExit(f"rlhf-envs collect: {err}") from None
    started = time.perf_counter()
    progress = not args.no_progress
    if args.pairs is not None:
        records = collector.preferences(count, progress=progress)
        written = write_preferences(args.out, records)
        noun = "pairs"
    else:
        records = collector.ratings(count, scale=args.scale, progress=progress)
        written = write_ratings(args.out, records)
        noun = f"{args.scale} ratings"
    collector.close()
    print(f"wrote {written} {noun} to {args.out} in {time.perf_counter() - started:.1f} s")
    return 0
