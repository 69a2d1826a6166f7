"""The ASGI app OpenEnv's template runs (``uvicorn server.app:app``): the id in
``RLHF_ENV_ID`` (default RLHF-ChatText-v0), its reward spec in ``RLHF_REWARD`` (default the
id's), ``RLHF_MAX_SESSIONS`` concurrent sessions (default 8)."""

from __future__ import annotations

import os

from rlhf_envs.serving.openenv_server import create_openenv_app

app = create_openenv_app(
    os.environ.get("RLHF_ENV_ID", "RLHF-ChatText-v0"),
    os.environ.get("RLHF_REWARD") or None,
    max_sessions=int(os.environ.get("RLHF_MAX_SESSIONS", "8")),
)
