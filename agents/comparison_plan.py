"""What a comparison runs, where each run is stored, and which runs are already done.

A comparison is agents x envs x reward specs x training seeds (:class:`CompareConfig`);
each cell is a :class:`Run` with a folder of its own under ``runs/``. A run is redone
only when its stored ``result.json`` is missing, unreadable or made with other settings
(:func:`load_finished`); when only the evaluation settings changed, its saved agent is
re-evaluated instead of retrained (:func:`previous_training`).

Seeds: held-out scenario ``j`` is ``held_out_seeds(scenarios)[j]`` (from
:mod:`rlhf_agents.evaluation`), played ``tries`` times with episode seeds
``scenario_seed + (try + 1) * TRY_SEED_STRIDE``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path
from typing import Any

import gymnasium as gym

import rlhf_envs  # noqa: F401  (registers the ids that plan() checks)
from rlhf_agents.evaluation import held_out_seeds
from rlhf_agents.registry import AgentSpec

FORMAT = "rlhf-envs-compare/1"
TRY_SEED_STRIDE = 10_000_000  # episode seed of try t at scenario c: c + (t + 1) * stride
# What a result holds per episode: (key in result.json, label in the leaderboard).
METRICS = (
    ("ret", "return"),
    ("gold", "gold"),
    ("success", "success"),
    ("satisfaction", "satisfaction"),
)


@dataclass
class CompareConfig:
    """What to compare and how (see ``rlhf-envs compare --help``).

    Args:
        agents: the agents (see :mod:`rlhf_agents.registry`).
        envs: registered env ids.
        rewards: reward specs given to ``gymnasium.make(id, reward=...)``; ``None`` keeps
            the env's default.
        seeds: training seeds; every agent runs once per seed.
        steps: training steps per run of a learning agent.
        scenarios: held-out scenarios every agent is evaluated on.
        tries: tries per scenario (pass^k needs k <= tries).
        deterministic: trained agents act greedily (else they sample).
        curve_points: held-out evaluations during training (the learning curve).
        curve_scenarios: scenarios per curve point (the first of the held-out ones).
        n_envs: parallel envs per training run.
        transcripts: scenarios whose dialogues are kept per agent.
        jobs: parallel processes.
        reference: the agent P(improvement) is measured against (default: ``random`` if
            compared, else the first agent).
    """

    agents: list[AgentSpec]
    envs: list[str]
    rewards: list[str | None] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    steps: int = 100_000
    scenarios: int = 100
    tries: int = 4
    deterministic: bool = True
    curve_points: int = 10
    curve_scenarios: int = 20
    n_envs: int = 4
    transcripts: int = 3
    jobs: int = max(1, os.cpu_count() or 1)
    reference: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "scenarios",
            "tries",
            "curve_points",
            "curve_scenarios",
            "n_envs",
            "jobs",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.agents or not self.envs or not self.seeds or not self.rewards:
            raise ValueError("need at least one agent, env, reward spec and seed")
        for label, values in (
            ("seeds", self.seeds),
            ("envs", self.envs),
            ("reward specs", self.rewards),
            ("agents", [a.name for a in self.agents]),
        ):
            repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(
                    f"{label} are listed more than once: {repeated}; each run must be unique"
                )
        names = [a.name for a in self.agents]
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference agent {self.reference!r} is not among the agents {names}")
        self.curve_scenarios = min(self.curve_scenarios, self.scenarios)
        self.transcripts = min(self.transcripts, self.scenarios)

    @property
    def reference_agent(self) -> str:
        names = [a.name for a in self.agents]
        return self.reference or ("random" if "random" in names else names[0])


@dataclass(frozen=True)
class Run:
    """One (agent, env, reward spec, seed) cell of a comparison."""

    agent: AgentSpec
    env_id: str
    reward: str | None
    seed: int

    def folder(self, out: Path) -> Path:
        return (
            out
            / "runs"
            / slug(self.env_id)
            / reward_slug(self.reward)
            / slug(self.agent.name)
            / f"seed-{self.seed}"
        )

    def env_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``gymnasium.make`` for this run's env."""
        return {} if self.reward is None else {"reward": self.reward}

    def train_settings(self, cfg: CompareConfig) -> dict[str, Any]:
        """Everything that determines the trained agent and its learning curve."""
        return {
            "format": FORMAT,
            "agent": self.agent.to_json(),
            "hyperparams": self.agent.resolved_hyperparams(),
            "env_id": self.env_id,
            "reward": self.reward,
            "seed": self.seed,
            "steps": cfg.steps if self.agent.trains else 0,
            "n_envs": cfg.n_envs if self.agent.trains else 0,
            "curve_points": cfg.curve_points,
            "curve_scenarios": cfg.curve_scenarios,
            "deterministic": cfg.deterministic,
        }

    def settings(self, cfg: CompareConfig) -> dict[str, Any]:
        """Everything that determines this run's result; a stored result is reused only
        when it was made with the same settings (with the same training settings only,
        its trained agent is re-evaluated rather than retrained)."""
        return {
            **self.train_settings(cfg),
            "scenarios": cfg.scenarios,
            "tries": cfg.tries,
            "transcripts": cfg.transcripts,
        }


def slug(text: str) -> str:
    """``text`` as a folder or file name: runs of other characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "_"


def reward_slug(reward: str | None) -> str:
    """A folder name for a reward spec; long or path-like specs get a hash suffix."""
    if reward is None:
        return "default"
    name = slug(reward)
    if len(name) > 40 or name != reward:
        name = f"{name[:32]}-{sha1(reward.encode()).hexdigest()[:8]}"
    return name


def scenario_seeds(cfg: CompareConfig) -> list[int]:
    return held_out_seeds(cfg.scenarios)


def episode_seed(scenario_seed: int, attempt: int) -> int:
    return scenario_seed + (attempt + 1) * TRY_SEED_STRIDE


def plan(cfg: CompareConfig) -> list[Run]:
    """Every run of the comparison, learning agents first (they take longest).

    Raises:
        ValueError: an agent cannot act on an env (the message says which and why).
    """
    for env_id in cfg.envs:
        if env_id not in gym.registry:
            known = sorted(k for k in gym.registry if k.startswith("RLHF-"))
            raise ValueError(f"env {env_id!r} is not registered; known: {known}")
        spec_kwargs = gym.registry[env_id].kwargs
        interface = spec_kwargs.get("interface", "select")
        for agent in cfg.agents:
            if agent.kind == "sb3" and agent.policy == "candidate" and interface != "select":
                raise ValueError(
                    f"agent {agent.name!r} uses the candidate-scoring policy, which needs the "
                    f"select interface; {env_id} uses {interface!r}"
                )
            if agent.kind == "sb3" and interface == "text":
                raise ValueError(
                    f"agent {agent.name!r} is an SB3 agent; SB3 has no policies for the text "
                    f"action space of {env_id} (use the select or tokens interface)"
                )
            if agent.kind in ("hf", "openai") and interface != "text":
                raise ValueError(
                    f"agent {agent.name!r} writes replies as text; {env_id} uses the "
                    f"{interface!r} interface (use an RLHF-*Text-v0 id)"
                )
    for kind, names, to_folder in (
        ("agent", [a.name for a in cfg.agents], slug),
        ("env", cfg.envs, slug),
        ("reward spec", cfg.rewards, reward_slug),
    ):
        folders: dict[str, Any] = {}
        for name in names:
            other = folders.setdefault(to_folder(name), name)
            if other != name:
                raise ValueError(
                    f"{kind}s {other!r} and {name!r} would share the results folder "
                    f"{to_folder(name)!r}; rename one"
                )
    runs = [
        Run(a, e, r, s)
        for a in cfg.agents
        for e in cfg.envs
        for r in cfg.rewards
        for s in cfg.seeds
    ]
    # Slowest first, so the last runs to finish are short ones.
    cost = {"recurrent-ppo": 3, "dqn": 2}
    return sorted(runs, key=lambda r: (not r.agent.trains, -cost.get(r.agent.algo or "", 1)))


# ---------------------------------------------------------------------------------------
# Resuming: what a previous invocation left in the results folder


def stored_result(folder: Path) -> dict[str, Any] | None:
    """The ``result.json`` in a run's folder, or ``None`` if missing or unreadable."""
    path = folder / "result.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def previous_training(run: Run, cfg: CompareConfig, folder: Path) -> dict[str, Any] | None:
    """A stored result whose agent was trained with the same training settings and whose
    checkpoint is in place (so only the evaluation has to be redone), else ``None``."""
    result = stored_result(folder)
    if result is None or result.get("train_settings") != run.train_settings(cfg):
        return None
    return result if (folder / "checkpoint" / "agent.json").is_file() else None


def load_finished(run: Run, cfg: CompareConfig, out: Path) -> dict[str, Any] | None:
    """The stored result of ``run``, if it exists and was made with the same settings."""
    result = stored_result(run.folder(out))
    return result if result is not None and result.get("settings") == run.settings(cfg) else None
