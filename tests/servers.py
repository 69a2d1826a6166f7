"""Start an ``rlhf-envs`` server command as a real process on a free local port (for tests).

``tests/`` is on ``sys.path`` (the root conftest's folder), so any test imports it:
``from servers import cli_server, free_port``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cli_server(
    *args: str,
    ready: str = "/health",
    timeout: float = 120.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(base url, process)`` of ``rlhf-envs ARGS --port PORT`` once ``ready`` answers;
    terminated on exit if still running. One torch thread, so tests beside it keep theirs;
    ``env`` adds environment variables."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_envs.cli", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}{ready}", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    f"rlhf-envs {args[0]} did not start:\n{proc.stdout.read()}"  # type: ignore[union-attr]
                ) from None
            time.sleep(0.3)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
