"""Start ``rlhf-envs label`` as a real server process on a free local port (for tests)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers import cli_server


@contextmanager
def label_server(
    db: Path, *args: str, timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(url, process)`` of a label server over ``db``; stopped on exit (if still running)."""
    with cli_server("label", "--db", str(db), *args, ready="/api/config", timeout=timeout) as got:
        yield got
