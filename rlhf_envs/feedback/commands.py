"""``rlhf-envs collect``: label pairs or ratings with simulated annotators and save them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rlhf_envs.env_ids import check_env_id
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
        # argparse %-formats help strings: a literal percent sign is written %%.
        f"{name}: random action {eps:.0%}% of turns"
        for name, (eps, _) in DEFAULT_BEHAVIOURS.items()
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
    p.add_argument(
        "--invite",
        action="append",
        default=[],
        metavar="NAME",
        help="invite an annotator: print their invitation link (repeat for more)",
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="no access control: anyone reaching the port registers by name and sees /admin "
        "(refused unless --host is this machine's loopback address)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the Host header may carry besides this machine's (e.g. the name of "
        "a TLS proxy in front); others are refused",
    )
    p.add_argument(
        "--lease",
        type=float,
        default=600.0,
        help="seconds a pair handed to an annotator is held for them before it returns to the "
        "pool (default 600)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes pairs are drawn from")
    p.set_defaults(func=run_label)


def run_label(args: argparse.Namespace) -> int:
    import uvicorn

    from rlhf_envs.feedback.app import LOOPBACK_HOSTS, create_app
    from rlhf_envs.feedback.pairs import PairSource
    from rlhf_envs.feedback.store import MAX_LEASE_SECONDS, FeedbackStore, StoreError

    if not 0 <= args.port <= 65535:
        raise SystemExit(f"rlhf-envs label: --port must be 0 to 65535, got {args.port}")
    if args.pool < 1 or not 0 <= args.overlap <= 1 or not 0 < args.lease <= MAX_LEASE_SECONDS:
        raise SystemExit(
            "rlhf-envs label: --pool must be at least 1, --overlap in [0, 1] and --lease in "
            f"(0, {MAX_LEASE_SECONDS}] seconds (got {args.pool}, {args.overlap}, {args.lease})"
        )
    loopback = args.host in LOOPBACK_HOSTS
    if args.open and not loopback:
        raise SystemExit(
            f"rlhf-envs label: --open serves anyone who reaches {args.host}:{args.port} "
            "without a token; it is allowed on 127.0.0.1 only. Leave access control on "
            "(invite annotators with --invite NAME) to serve other machines"
        )
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if args.host not in ("0.0.0.0", "::", *LOOPBACK_HOSTS):
        hosts.append(args.host)
    try:
        check_env_id(args.env, ("select",))  # before the database file is created
        store = FeedbackStore(args.db)
        source = PairSource(
            store,
            args.env,
            mode=args.pairs,
            pool=args.pool,
            overlap=args.overlap,
            seed=args.seed,
            lease_seconds=args.lease,
        )
        invitations = [(name, *store.invite(name)) for name in args.invite]
    except (StoreError, ValueError) as err:
        raise SystemExit(f"rlhf-envs label: {err}") from None
    counts = store.counts()
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    base = f"http://{'[' + shown + ']' if ':' in shown else shown}:{args.port}"
    print(
        f"feedback database {args.db}: {counts['comparisons']} comparisons, "
        f"{counts['labels']} labels"
    )
    if args.open:
        print(f"labelling page: {base}/   admin: {base}/admin   (open access: no tokens)")
    else:
        print(f"admin (keep it to yourself): {base}/admin?token={store.new_admin_token()}")
        for name, _, token in invitations:
            print(f"invitation for {name}: {base}/#token={token}")
        if not invitations:
            print(
                "no annotator invited in this run: add --invite NAME, or run "
                f"`rlhf-envs feedback invite --db {args.db} NAME` (earlier links still work)"
            )
        if not loopback:
            print(
                "warning: tokens travel in clear over plain HTTP. Serve other machines through "
                "a TLS proxy (e.g. Caddy or nginx, forwarding to this port; add its host name "
                "with --allow-host) or an SSH tunnel",
                file=sys.stderr,
            )
    uvicorn.run(
        create_app(store, source, open_access=args.open, allowed_hosts=hosts),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
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
    inv = sub.add_parser(
        "invite", help="invite annotators to the labelling app: print a link with a new token each"
    )
    inv.add_argument("names", nargs="+", metavar="NAME")
    inv.add_argument("--db", type=Path, required=True)
    inv.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="where the app is reached (default http://127.0.0.1:8000)",
    )
    info = sub.add_parser("info", help="row counts, annotators, agreement and reward models")
    info.add_argument("--db", type=Path, required=True)
    p.set_defaults(func=run_feedback)


def run_feedback(args: argparse.Namespace) -> int:
    from rlhf_envs.feedback.agreement import annotator_agreement
    from rlhf_envs.feedback.store import FeedbackStore, StoreError
    from rlhf_envs.preference_data.formats import FeedbackFormatError, read_feedback

    if args.action not in ("import", "invite") and not args.db.exists():
        raise SystemExit(f"rlhf-envs feedback {args.action}: no database at {args.db}")
    try:
        # The file is read and checked before the database is opened (or created).
        records = (
            read_feedback(args.file, skip_invalid=args.skip_invalid)
            if args.action == "import"
            else None
        )
        with FeedbackStore(args.db) as store:
            if records is not None:
                counts = store.import_records(
                    records, annotator=args.annotator, skip_invalid=args.skip_invalid
                )
                print(
                    f"imported {', '.join(f'{n} {k}' for k, n in counts.items())} "
                    f"from {args.file} into {args.db}"
                )
            elif args.action == "invite":
                for name in args.names:
                    annotator_id, token = store.invite(name)
                    print(f"{name} ({annotator_id}): {args.url.rstrip('/')}/#token={token}")
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
                kappa = (
                    f"kappa {agreement.kappa:.3f}"
                    if agreement.items
                    else "kappa n/a (no comparison has two labels)"
                )
                print(f"agreement: {agreement.items} shared comparisons, {kappa}")
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
