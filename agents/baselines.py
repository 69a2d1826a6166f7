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
    """Anything that picks an action from an observation.

    An agent with memory (a recurrent policy) may also define ``reset()``; the
    evaluation calls it at the start of every episode.
    """

    name: str

    def act(self, obs: Any, env: gym.Env) -> Any: ...


MAX_RANDOM_REPLY = 80


class RandomAgent:
    """Uniformly random actions, from its own seeded generator: an index of a Discrete
    space, or on a Text space a reply of 1 to ``MAX_RANDOM_REPLY`` random characters.

    Args:
        seed: seeds the agent's generator (independent of the env's).
    """

    name = "random"
    deterministic = False

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Any, env: gym.Env) -> int | str:
        space = env.action_space
        if isinstance(space, gym.spaces.Text):
            # A reply of random characters from the space's charset (at most
            # MAX_RANDOM_REPLY long): the floor for agents that write text.
            length = int(self.rng.integers(1, min(space.max_length, MAX_RANDOM_REPLY) + 1))
            chars = sorted(space.character_set)
            reply = "".join(chars[i] for i in self.rng.integers(len(chars), size=length))
            return reply if reply.strip() else "?"
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"RandomAgent supports Discrete and Text action spaces, got {space}")
        return int(space.start + self.rng.integers(space.n))


class ExpertAgent:
    """The scripted expert: follows the policy book (``env.unwrapped.expert_action()``).

    It reads the env's internals, so it is an upper reference, not a learning agent.
    """

    name = "expert"

    def act(self, obs: Any, env: gym.Env) -> Any:
        return env.unwrapped.expert_action()


class SB3Agent:
    """A trained Stable-Baselines3 or sb3-contrib model as an agent.

    Recurrent policies (``RecurrentPPO``) carry their LSTM state through an episode;
    ``MaskablePPO`` gets the env's ``action_masks()`` each step.

    Args:
        model: the SB3 model (``PPO``, ``A2C``, ``DQN``, ``MaskablePPO``, ``RecurrentPPO``).
        name: how the leaderboard calls it.
        deterministic: act greedily (the default for evaluation) or sample.
    """

    def __init__(self, model, name: str, deterministic: bool = True):
        self.model = model
        self.name = name
        self.deterministic = deterministic
        self._recurrent = hasattr(model.policy, "lstm_actor")
        self._maskable = type(model).__name__ == "MaskablePPO"
        self.reset()

    def reset(self) -> None:
        """Start of an episode: forget the recurrent state."""
        self._state = None
        self._episode_start = np.ones((1,), dtype=bool)

    def act(self, obs: Any, env: gym.Env) -> Any:
        kwargs: dict[str, Any] = {}
        if self._recurrent:
            kwargs = {"state": self._state, "episode_start": self._episode_start}
        if self._maskable:
            kwargs["action_masks"] = env.unwrapped.action_masks()
        action, state = self.model.predict(obs, deterministic=self.deterministic, **kwargs)
        if self._recurrent:
            self._state, self._episode_start = state, np.zeros((1,), dtype=bool)
        return int(action) if np.ndim(action) == 0 else action
