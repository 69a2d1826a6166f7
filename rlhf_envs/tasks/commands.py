"""``rlhf-envs check-domain``: play a domain folder's tasks and report what is wrong."""

from __future__ import annotations

import argparse
import sys


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-domain",
        help="check a domain folder (or a built-in domain) by playing its tasks",
        description=(
            "Load a domain (which checks its data), then play conversations: the expert must "
            "succeed, random choice must not, every step must be reachable, every candidate must "
            "do what its failure type says and score below the correct reply under every rubric "
            "persona. Exits 1 and lists the problems, with the task, step and reply, if any."
        ),
    )
    parser.add_argument("domain", help="a built-in domain name or the path of a domain folder")
    parser.add_argument("--episodes", type=int, default=300, help="conversations per check (default 300)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from rlhf_envs.tasks.check import check_domain
    from rlhf_envs.tasks.domain import DomainError
    from rlhf_envs.tasks.policy import PolicyBookError

    if args.episodes < 1:
        raise SystemExit("rlhf-envs check-domain: --episodes must be at least 1")
    try:
        report = check_domain(args.domain, episodes=args.episodes)
    except (DomainError, PolicyBookError) as exc:
        print(f"rlhf-envs check-domain: the domain does not load: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 1 if report.problems else 0
