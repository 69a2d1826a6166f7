"""The ASGI app OpenEnv's template runs (``uvicorn server.app:app``), set by environment
variables: ``RLHF_ENV_ID`` (default RLHF-ChatText-v0), ``RLHF_REWARD`` (a reward spec;
default the id's), ``RLHF_MAX_SESSIONS`` (default 8), ``RLHF_IDLE_TIMEOUT`` (seconds;
default none) and ``RLHF_NO_INFO=1`` (leave the env's info, gold reward included, out of
the observations: for clients that show a model the whole observation)."""

from __future__ import annotations

import os

from rlhf_envs.serving.openenv_server import create_openenv_app

_idle = os.environ.get("RLHF_IDLE_TIMEOUT")
app = create_openenv_app(
    os.environ.get("RLHF_ENV_ID", "RLHF-ChatText-v0"),
    os.environ.get("RLHF_REWARD") or None,
    max_sessions=int(os.environ.get("RLHF_MAX_SESSIONS", "8")),
    idle_timeout=float(_idle) if _idle else None,
    info=os.environ.get("RLHF_NO_INFO", "") not in ("1", "true", "yes"),
)
