"""``rlhf-envs serve`` (an id as an OpenEnv environment server) and ``rlhf-envs serve-lm``
(an OpenAI-compatible endpoint over a local causal LM)."""

from __future__ import annotations

import argparse
import os
import sys

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_port(command: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise SystemExit(f"rlhf-envs {command}: --port must be 1 to 65535, got {port}")


def add_serve_lm_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve-lm",
        help="serve a local causal LM over an OpenAI-compatible /v1/chat/completions API",
        description=(
            "Serve a Hugging Face causal LM folder (the reference LM, a policy written by "
            "train-lm, or any other) as an OpenAI-compatible chat-completions endpoint, so "
            "any client (the openai: agent of `rlhf-envs compare`, verifiers, the openai "
            "package) can use it. Base URL: http://HOST:PORT/v1."
        ),
    )
    parser.add_argument(
        "path", nargs="?", help="the model folder (default: the project's reference LM)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", help="the model name clients pass (default: the folder's name)")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require `Authorization: Bearer KEY`, KEY being the value of this environment "
        "variable (needed to bind a non-loopback --host)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.set_defaults(func=_run_serve_lm)


def _run_serve_lm(args: argparse.Namespace) -> int:
    check_port("serve-lm", args.port)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise SystemExit(
                f"rlhf-envs serve-lm: --api-key-env {args.api_key_env}: that environment "
                "variable is not set or empty"
            )
    elif args.host not in LOOPBACK_HOSTS:
        raise SystemExit(
            f"rlhf-envs serve-lm: --host {args.host} would let anyone on the network use the "
            "model; give --api-key-env VAR (and put TLS in front), or bind 127.0.0.1"
        )
    import torch
    import uvicorn

    from rlhf_envs.lm.chat import ChatModel
    from rlhf_envs.serving.openai_api import create_app

    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(
                f"rlhf-envs serve-lm: --threads must be at least 1, got {args.threads}"
            )
        torch.set_num_threads(args.threads)
    if args.path is None:
        from rlhf_envs.lm.build import default_lm_path

        args.path = str(default_lm_path())
    model = ChatModel(args.path)
    name = args.name or model.name
    print(
        f"serving {model.path} as model {name!r} ({model.format_name} format, "
        f"{model.max_positions} positions) at http://{args.host}:{args.port}/v1",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        create_app(model, name, api_key), host=args.host, port=args.port, log_level="warning"
    )
    return 0


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve an env id as an OpenEnv environment server (WebSocket sessions)",
        description=(
            "Serve a registered id through OpenEnv's server (needs the openenv extra: "
            "pip install 'rlhf-envs[openenv]'). Each WebSocket session (/ws) gets its own "
            "env; any OpenEnv client (EnvClient, GenericEnvClient, TRL, verifiers' openenv "
            "taskset) can reset and step it."
        ),
    )
    parser.add_argument("env_id", metavar="ID", help="a registered id, e.g. RLHF-ChatText-v0")
    parser.add_argument("--reward", help="training reward spec (default: the id's)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--max-sessions", type=int, default=8, help="concurrent sessions (default 8)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close a session's env after this long without a reset or step (default: never)",
    )
    parser.add_argument(
        "--no-info",
        action="store_true",
        help="leave the env's info (gold reward, rubric components, steps missed) out of the "
        "observations' metadata: for clients that show a model the whole observation",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    check_port("serve", args.port)
    from rlhf_envs.env_ids import check_env_id

    check_env_id(args.env_id)
    if args.max_sessions < 1:
        raise SystemExit(
            f"rlhf-envs serve: --max-sessions must be at least 1, got {args.max_sessions}"
        )
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        raise SystemExit(
            f"rlhf-envs serve: --idle-timeout must be > 0 seconds, got {args.idle_timeout}"
        )
    try:
        import openenv.core.env_server  # noqa: F401
    except ImportError:
        raise SystemExit(
            "rlhf-envs serve needs OpenEnv: pip install 'rlhf-envs[openenv]' (openenv==0.10.0)"
        ) from None
    import gymnasium as gym
    import torch
    import uvicorn

    from rlhf_envs.serving.openenv_server import create_openenv_app

    torch.set_num_threads(max(1, args.threads))
    if gym.registry[args.env_id].kwargs.get("interface", "select") != "select":
        from rlhf_envs.lm.build import default_lm_path

        default_lm_path()  # the reference LM, built first (announced) if it is missing
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"rlhf-envs serve: binding {args.host}: anyone who can reach this port can open "
            "sessions (OpenEnv has no access control); keep it behind a firewall or tunnel",
            file=sys.stderr,
        )
    app = create_openenv_app(
        args.env_id,
        args.reward,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
        info=not args.no_info,
    )
    print(
        f"serving {args.env_id} (up to {args.max_sessions} sessions) at "
        f"ws://{args.host}:{args.port}/ws; http://{args.host}:{args.port}/health",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
