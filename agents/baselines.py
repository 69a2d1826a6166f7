"""Agents that need no training: uniform random and the scripted expert.

Every agent in ``agents/`` has the same small interface, ``act(obs, env) -> action``, so
the evaluation harness treats baselines and trained SB3 models alike. ``env`` is the
(possibly wrapped) Gymnasium env the observation came from.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np


class Agent(Protocol):
    """Anything that picks an action from an observation."""

    name: str

    def act(self, obs: Any, env: gym.Env) -> Any: ...


class RandomAgent:
    """Uniformly random actions, from its own seeded generator.

    Args:
        seed: seeds the agent's generator (independent of the env's).
    """

    name = "random"
    deterministic = False

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, env: gym.Env) -> int:
        space = env.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"RandomAgent supports Discrete action spaces, got {space}")
        return int(space.start + self.rng.integers(space.n))


class ExpertAgent:
    """The scripted expert: follows the policy book (``env.unwrapped.expert_action()``).

    It reads the env's internals, so it is an upper reference, not a learning agent.
    """

    name = "expert"

    def act(self, obs: Any, env: gym.Env) -> Any:
        return env.unwrapped.expert_action()


class SB3Agent:
    """A trained Stable-Baselines3 model as an agent.

    Args:
        model: the SB3 model (``PPO``, ``A2C``, ``DQN``, ...).
        name: how the leaderboard calls it.
        deterministic: act greedily (the default for evaluation) or sample.
    """

    def __init__(self, model, name: str, deterministic: bool = True):
        self.model = model
        self.name = name
        self.deterministic = deterministic

    def act(self, obs: Any, env: gym.Env) -> Any:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return int(action) if np.ndim(action) == 0 else action
