"""Hyperparameters for RL Baselines3 Zoo (``rl_zoo3``), one module per algorithm.

rl-zoo3 reads a ``hyperparams`` dict from a Python module given as ``--conf-file``. The
policy is the suite's candidate-scoring policy, named by its import path (rl-zoo3
imports a dotted ``policy`` name; the saved ``config.yml`` then stays plain text)::

    python -m rl_zoo3.train --algo ppo --env RLHF-Chat-v0 --gym-packages rlhf_envs \\
        --conf-file rlhf_agents.zoo.ppo
    python -m rl_zoo3.enjoy --algo ppo --env RLHF-Chat-v0 --gym-packages rlhf_envs \\
        --folder logs --no-render

The values are the suite's own defaults (:data:`rlhf_agents.training.HYPERPARAMS`, the ones
``rlhf-envs compare`` uses), so a zoo run and a harness run train the same agent.
"""

from __future__ import annotations

from typing import Any

from rlhf_agents.training import HYPERPARAMS, policy_class

# Steps after which the agent's held-out success has levelled off on RLHF-Chat-v0
# (rlhf-envs compare, 3 seeds; see the README's leaderboard).
N_TIMESTEPS = {"ppo": 100_000, "a2c": 100_000, "dqn": 100_000}
ENV_IDS = ("RLHF-Chat-v0", "RLHF-Tiny-v0")


def zoo_hyperparams(algo: str) -> dict[str, dict[str, Any]]:
    """rl-zoo3's ``hyperparams`` dict for ``algo``: one entry per select-interface env id."""
    policy = policy_class(algo, "candidate")
    entry = {
        "n_envs": 4,
        "n_timesteps": N_TIMESTEPS[algo],
        "policy": f"{policy.__module__}.{policy.__qualname__}",
        **HYPERPARAMS[algo],
    }
    return {env_id: dict(entry) for env_id in ENV_IDS}
