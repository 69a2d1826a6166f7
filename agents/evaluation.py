"""Evaluating agents on the same seeded episodes, with bootstrap confidence intervals.

Every agent plays the same scenarios (episode ``i`` is ``reset(seed=seeds[i])``), so
differences between agents are differences in behaviour, not in luck of the draw.

Held-out scenarios are drawn from seeds at or above :data:`HELD_OUT_SEED_BASE`, far from
the small seeds training uses (0, 1, ...); :func:`held_out_seeds` lists them. Every
evaluation of the project (the comparison harness, ``rlhf-envs retrain --simulate``, the
benchmarks, the examples) takes its seeds from there, so "held out" means one thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_agents.baselines import Agent
from rlhf_envs.statistics import bootstrap_ci

__all__ = [
    "HELD_OUT_SEED_BASE",
    "EpisodeResult",
    "Evaluation",
    "bootstrap_ci",
    "evaluate",
    "held_out_seeds",
    "run_episode",
]

HELD_OUT_SEED_BASE = 1_000_000  # held-out scenarios, apart from training seeds (0, 1, ...)


def held_out_seeds(n: int, offset: int = 0) -> list[int]:
    """The seeds of ``n`` held-out scenarios: ``HELD_OUT_SEED_BASE + offset + i``.

    Args:
        n: how many scenarios.
        offset: where this evaluation's block starts past the base; a study that must
            not share scenarios with another one (say, with the comparison harness's,
            which start at the base) takes its own block.
    """
    start = HELD_OUT_SEED_BASE + offset
    return list(range(start, start + n))


@dataclass
class EpisodeResult:
    """One evaluation episode."""

    seed: int
    ret: float
    gold: float
    success: bool
    satisfaction: float
    turns: int
    transcript: str
    user_left: bool = False  # the user gave up before the task was done
    task: str = ""  # the scenario's task (subflow id)


@dataclass
class Evaluation:
    """All episodes of one agent on one env."""

    agent: str
    env_id: str
    deterministic: bool
    episodes: list[EpisodeResult] = field(default_factory=list)

    def values(self, metric: str) -> np.ndarray:
        return np.array([float(getattr(e, metric)) for e in self.episodes])

    def mean_ci(self, metric: str, seed: int = 0) -> tuple[float, float, float]:
        """Mean of ``metric`` over episodes with a 95% bootstrap interval."""
        return bootstrap_ci(self.values(metric), seed=seed)


def run_episode(
    agent: Agent, env: gym.Env, seed: int, options: dict[str, Any] | None = None
) -> EpisodeResult:
    """Play one episode from ``reset(seed=seed, options=options)``; the env needs
    ``render_mode="ansi"``."""
    if hasattr(agent, "reset"):
        agent.reset()
    obs, start = env.reset(seed=seed, options=options)
    ret = gold = 0.0
    turns = 0
    info: dict[str, Any] = {}
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, env))
        ret += float(reward)
        gold += float(info["gold_reward"])
        turns += 1
        if terminated or truncated:
            break
    return EpisodeResult(
        seed=seed,
        ret=ret,
        gold=gold,
        success=bool(info["success"]),
        satisfaction=float(info["satisfaction"]),
        turns=turns,
        transcript=env.render() or "",
        user_left=bool(info.get("user_left", False)),
        task=str(start.get("subflow", "")),
    )


def evaluate(
    agent: Agent,
    env_id: str,
    seeds: Iterable[int],
    env_kwargs: dict[str, Any] | None = None,
) -> Evaluation:
    """Play ``agent`` on ``env_id`` once per seed.

    Args:
        agent: the agent; whether it acts greedily (its ``deterministic`` attribute, true
            for baselines without one) is recorded with the result.
        env_id: a registered env id.
        seeds: one episode per seed, the same for every agent.
        env_kwargs: extra arguments for ``gymnasium.make``.
    """
    env = gym.make(env_id, render_mode="ansi", **(env_kwargs or {}))
    deterministic = bool(getattr(agent, "deterministic", True))
    result = Evaluation(agent=agent.name, env_id=env_id, deterministic=deterministic)
    try:
        for seed in seeds:
            result.episodes.append(run_episode(agent, env, int(seed)))
    finally:
        env.close()
    return result
