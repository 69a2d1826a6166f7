"""The record that makes a number in a table reproducible: the command that produced it,
its seeds, the package versions, the git revision, the host and the timings.

The comparison harness writes one into its ``run.json`` and every benchmark writes (or,
without an output folder, prints) one, all through :class:`RunRecord`, so the records
share their keys::

    command        the command line, shell-quoted
    <seeds>        the seeds, under the names the caller gives them ("seeds", ...)
    versions       python and the packages that decide the numbers
    git_revision   the commit of this checkout, "-dirty" if tracked files changed
    host           CPU count and platform
    started        when the run started (local time, ISO 8601)
    wall_seconds   how long it ran

The caller's own settings and results go next to them (:meth:`RunRecord.to_json`).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the checkout (agents/ installs as rlhf_agents)
PACKAGES = (
    "rlhf-envs",
    "gymnasium",
    "stable-baselines3",
    "sb3-contrib",
    "torch",
    "numpy",
    "transformers",
    "tokenizers",
)


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as one shell-quoted line that can be pasted back into a shell."""
    return " ".join(shlex.quote(a) for a in argv)


def package_versions() -> dict[str, str]:
    """The Python version and the version of each of :data:`PACKAGES`."""
    out = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def read_git_revision() -> str | None:
    """The commit checked out in this project's folder, with ``-dirty`` when tracked files
    differ from it; ``None`` outside a git checkout or without git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def host_info() -> dict[str, Any]:
    """The CPU count and the platform string of this machine."""
    return {"cpus": os.cpu_count(), "platform": platform.platform()}


@dataclass
class RunRecord:
    """One run's command, seeds and environment, taken when the run starts (so the git
    revision is the code the run ran with), and its timings when it is written.

    Args:
        command: the command line (see :func:`command_line`).
        seeds: every seed that decides the numbers, by name (``{"seeds": [0, 1, 2],
            "scenario_seeds": [...]}``); the names become keys of the record.
    """

    command: str
    seeds: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    git_revision: str | None = field(default_factory=read_git_revision)
    versions: dict[str, str] = field(default_factory=package_versions)
    host: dict[str, Any] = field(default_factory=host_info)

    @property
    def started_at(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started))

    @property
    def wall_seconds(self) -> float:
        return round(time.time() - self.started, 1)

    def timings(self) -> dict[str, Any]:
        """``{"started": ..., "wall_seconds": ...}`` as of now."""
        return {"started": self.started_at, "wall_seconds": self.wall_seconds}

    def to_json(self, **fields: Any) -> dict[str, Any]:
        """The record as a JSON object: the command, the seeds, then ``fields`` (the
        caller's settings and results), then versions, git revision, host and timings."""
        return {
            "command": self.command,
            **self.seeds,
            **fields,
            "versions": self.versions,
            "git_revision": self.git_revision,
            "host": self.host,
            **self.timings(),
        }

    def write(self, path: str | Path, **fields: Any) -> None:
        """Write :meth:`to_json` (with ``fields``) to ``path`` as indented JSON."""
        Path(path).write_text(json.dumps(self.to_json(**fields), indent=2) + "\n")

    def describe(self) -> str:
        """Two lines for the top of a printed report: the command, then the versions and
        the git revision."""
        versions = ", ".join(f"{name} {v}" for name, v in self.versions.items())
        return (
            f"command: {self.command}\n"
            f"{versions}; git {self.git_revision or 'unknown'}; {self.host['cpus']} CPUs"
        )
