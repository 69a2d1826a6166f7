"""rlhf-envs: Gymnasium environments for reinforcement learning from human feedback.

``import rlhf_envs`` registers every environment id with Gymnasium::

    import gymnasium as gym
    import rlhf_envs

    env = gym.make("RLHF-Chat-v0", reward="rubric:warm")

``gymnasium.make("rlhf_envs:RLHF-Chat-v0")`` works without the import.
"""

from __future__ import annotations

import gymnasium as gym

from rlhf_envs.dialogue import MAX_TURNS
from rlhf_envs.env_ids import check_env_id

__version__ = "0.1.0"

MAX_REPLY_TOKENS = 40  # the tokens interface's default length cap of one reply

# Registered ids are presets of DialogueEnv's arguments (any of them can be overridden
# with gymnasium.make(id, **kwargs)).
# Each domain gets a select id and its Tokens and Text variants.
DOMAIN_IDS = {"Chat": "customer_service", "Finance": "finance", "Medical": "medical"}
ENV_PRESETS: dict[str, dict] = {
    f"RLHF-{prefix}{suffix}-v0": {"domain": domain, "interface": interface}
    for prefix, domain in DOMAIN_IDS.items()
    for suffix, interface in (("", "select"), ("Tokens", "tokens"), ("Text", "text"))
}
ENV_PRESETS["RLHF-Tiny-v0"] = {
    "domain": "tiny",
    "interface": "select",
    "num_candidates": 3,
    "encoding_dim": 64,
}


def max_episode_steps(kwargs: dict) -> int:
    """Steps before truncation: 20 turns, and for the tokens interface 20 turns of
    ``MAX_REPLY_TOKENS`` tokens (one step is one token there)."""
    if kwargs.get("interface") == "tokens":
        return MAX_TURNS * MAX_REPLY_TOKENS
    return MAX_TURNS


def _register_envs() -> None:
    for env_id, kwargs in ENV_PRESETS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="rlhf_envs.env:DialogueEnv",
            # gymnasium.make_vec builds the native vector env (batched reward scoring).
            vector_entry_point="rlhf_envs.vector:DialogueVectorEnv",
            kwargs=dict(kwargs),
            max_episode_steps=max_episode_steps(kwargs),
        )


_register_envs()


from rlhf_envs.env import DialogueEnv  # noqa: E402  (after registration: cheap imports first)

__all__ = [
    "DOMAIN_IDS",
    "check_env_id",
    "DialogueEnv",
    "ENV_PRESETS",
    "MAX_REPLY_TOKENS",
    "MAX_TURNS",
    "__version__",
    "max_episode_steps",
]
