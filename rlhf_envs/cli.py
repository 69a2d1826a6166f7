"""The ``rlhf-envs`` command.

Subcommands come from the entry-point group ``rlhf_envs.commands``: each entry point is a
function ``add_command(subparsers)`` that adds its parser and sets ``func``. This keeps
``rlhf_envs`` free of imports from ``agents`` (``demo`` lives there) while one command
serves both. Built in: ``envs`` lists the registered environments and reward models.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

COMMAND_GROUP = "rlhf_envs.commands"


def _list_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import rlhf_envs
    from rlhf_envs.rewards.registry import describe_registered

    print("Environments:")
    for env_id in sorted(i for i in gym.registry if i.startswith("RLHF-")):
        kwargs = gym.registry[env_id].kwargs
        print(f"  {env_id:<24} domain={kwargs.get('domain')} interface={kwargs.get('interface')}")
    print("Reward models:")
    print(describe_registered())
    print(f"rlhf-envs {rlhf_envs.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-envs", description="Gymnasium environments for RL from human feedback."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    envs = sub.add_parser("envs", help="list the registered environments and reward models")
    envs.set_defaults(func=_list_envs)
    for ep in sorted(importlib.metadata.entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
