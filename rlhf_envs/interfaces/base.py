"""What every interface provides: how an agent writes its turn and what it observes.

The env runs the conversation; an interface turns the agent's action into reply text
and the dialogue state into an observation. One env step is one interface action: a
whole reply for *select* and *text*, one token for *tokens*.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np

from rlhf_envs.simulation.state import DialogueState


class Interface(ABC):
    """Base class of the select, tokens and text interfaces.

    Attributes:
        action_space: the env's action space.
        observation_space: the env's observation space.
    """

    name: str
    action_space: gym.Space
    observation_space: gym.Space
    # Set by ``reply`` for the env to pass on: reward added to the step's (KL shaping,
    # masked-token penalty) and extra ``info`` entries.
    shaping: float = 0.0
    step_info: dict[str, Any] = {}

    def partial_reply(self) -> str:
        """The reply written so far when a reply takes several steps (tokens)."""
        return ""

    # (an optional hook: interfaces without per-episode state need not override it)
    def reset(self) -> None:  # noqa: B027
        """Forget the previous episode (called by the env's ``reset``)."""

    @abstractmethod
    def observe(self, state: DialogueState, rng: np.random.Generator) -> Any:
        """The observation of ``state`` at the start of the agent's turn (also after the
        episode ends). May draw from ``rng`` (e.g. to propose candidates)."""

    @abstractmethod
    def reply(self, action: Any, state: DialogueState) -> str | None:
        """The agent's reply text for ``action``, or ``None`` if its turn goes on.

        Raises:
            ValueError: ``action`` is not in the action space (saying what is accepted).
        """

    def expert_action(self, state: DialogueState, rng: np.random.Generator) -> Any:
        """The action the scripted expert takes now."""
        raise NotImplementedError(f"the {self.name} interface has no scripted expert action")
