"""The ``rlhf-envs`` command.

Subcommands come from the entry-point group ``rlhf_envs.commands``: each entry point is a
function ``add_command(subparsers)`` that adds its parser and sets ``func``. This keeps
``rlhf_envs`` free of imports from ``agents`` (``demo`` lives there) while one command
serves both. Built in: ``envs`` lists the registered environments and reward models.

Errors: a command that refuses its input prints one line, ``rlhf-envs COMMAND: what was
wrong and what is accepted``, and exits with status 2; a failure while it runs prints one
line and exits with status 1. ``rlhf-envs --debug COMMAND ...`` shows the traceback
instead.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence

COMMAND_GROUP = "rlhf_envs.commands"

EXIT_FAILED = 1
"""Exit status of a command that failed while it ran."""
EXIT_USAGE = 2
"""Exit status of a command that refused its input (argparse uses the same)."""

# What a command raises for bad input: the project's own errors all derive from
# ValueError; the OS errors are a path that is missing, a folder, or not ours to write.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


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
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback when a command fails (before the command's name)",
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
    if args.debug:
        return int(args.func(args) or 0)
    try:
        return int(args.func(args) or 0)
    except SystemExit as stop:
        if isinstance(stop.code, str):
            # A command's own refusal of its input, already one line naming the command.
            print(stop.code, file=sys.stderr)
            return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        print(f"rlhf-envs {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        usage = isinstance(err, _INPUT_ERRORS) or _is_gym_lookup(err)
        message = " ".join(str(err).split()) or type(err).__name__
        if not usage:
            message = (
                f"failed: {type(err).__name__}: {message} "
                f"(`rlhf-envs --debug {args.command} ...` shows the traceback)"
            )
        print(f"rlhf-envs {args.command}: {message}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_FAILED


def _is_gym_lookup(err: Exception) -> bool:
    """An unknown env id or version (gymnasium's own error types), i.e. bad input."""
    from gymnasium import error

    return isinstance(err, (error.NameNotFound, error.VersionNotFound, error.NamespaceNotFound))


if __name__ == "__main__":
    sys.exit(main())
