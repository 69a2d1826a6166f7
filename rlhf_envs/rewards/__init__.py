"""Reward models: the plugin surface of the suite.

A reward model scores a batch of replies in context (``Exchange``) and returns one float
each (``RewardModel``). Name one in ``gymnasium.make(..., reward=SPEC)``; see
``registry.py`` for the accepted forms and for registering your own.
"""

from rlhf_envs.dialogue import Turn
from rlhf_envs.rewards.protocol import ComponentRewardModel, Exchange, RewardModel
from rlhf_envs.rewards.registry import (
    RewardModelError,
    UnknownRewardError,
    is_serialisable,
    make_reward_model,
    register,
    registered_names,
)
from rlhf_envs.rewards.rubric import RubricRewardModel, personas

__all__ = [
    "ComponentRewardModel",
    "Exchange",
    "RewardModel",
    "RewardModelError",
    "RubricRewardModel",
    "Turn",
    "UnknownRewardError",
    "is_serialisable",
    "make_reward_model",
    "personas",
    "register",
    "registered_names",
]
