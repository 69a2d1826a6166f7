"""Stable-Baselines3 training helpers for the suite's envs.

``make_model("ppo", env, policy="candidate")`` builds an SB3 model with the project's
tuned defaults; ``train(...)`` does the usual vectorised training run with a progress
bar. Policies: ``"candidate"`` is the permutation-equivariant candidate scorer
(``agents/candidate_policy.py``), ``"mlp"`` SB3's plain ``MultiInputPolicy``.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from rlhf_agents.candidate_policy import (
    CandidateActorCriticPolicy,
    CandidateQPolicy,
    MaskableCandidateActorCriticPolicy,
)
from rlhf_envs.sb3 import make_sb3_vec_env
from rlhf_envs.vector import DialogueVectorEnv

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "maskable-ppo": MaskablePPO,
    "recurrent-ppo": RecurrentPPO,
}
POLICY_KINDS = ("candidate", "mlp")
# (algorithm, policy kind) -> SB3 policy; RecurrentPPO has no candidate scorer (its LSTM
# policy flattens the observation), so only "mlp" is offered there.
POLICIES: dict[tuple[str, str], Any] = {
    ("ppo", "candidate"): CandidateActorCriticPolicy,
    ("a2c", "candidate"): CandidateActorCriticPolicy,
    ("dqn", "candidate"): CandidateQPolicy,
    ("maskable-ppo", "candidate"): MaskableCandidateActorCriticPolicy,
    ("ppo", "mlp"): "MultiInputPolicy",
    ("a2c", "mlp"): "MultiInputPolicy",
    ("dqn", "mlp"): "MultiInputPolicy",
    ("maskable-ppo", "mlp"): "MultiInputPolicy",
    ("recurrent-ppo", "mlp"): "MultiInputLstmPolicy",
}

# Defaults for the select interface (K=6 candidates, episodes of 5-10 turns).
HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": dict(
        n_steps=256,
        batch_size=256,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.95,
        gae_lambda=0.9,
        ent_coef=0.01,
        clip_range=0.2,
    ),
    "a2c": dict(n_steps=16, learning_rate=1e-3, gamma=0.95, gae_lambda=0.9, ent_coef=0.01),
    "dqn": dict(
        learning_rate=5e-4,
        buffer_size=50_000,
        learning_starts=1_000,
        batch_size=64,
        gamma=0.95,
        train_freq=4,
        target_update_interval=1_000,
        exploration_fraction=0.3,
        exploration_final_eps=0.02,
    ),
    "maskable-ppo": dict(
        n_steps=256,
        batch_size=256,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.95,
        gae_lambda=0.9,
        ent_coef=0.01,
        clip_range=0.2,
    ),
    # Whole-episode sequences are short (5-10 turns): a small LSTM, fewer epochs.
    "recurrent-ppo": dict(
        n_steps=256,
        batch_size=256,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.95,
        gae_lambda=0.9,
        ent_coef=0.01,
        clip_range=0.2,
        policy_kwargs=dict(lstm_hidden_size=64, net_arch=[64]),
    ),
}


def policy_class(algo: str, policy: str):
    """The SB3 policy for ``algo`` (a key of :data:`ALGORITHMS`) and kind ("candidate", "mlp").

    Raises:
        ValueError: an unknown kind, or one the algorithm does not offer.
    """
    if policy not in POLICY_KINDS:
        raise ValueError(f"policy {policy!r} is unknown; choose from {POLICY_KINDS}")
    if (algo, policy) not in POLICIES:
        offered = [kind for (a, kind) in POLICIES if a == algo]
        raise ValueError(f"{algo} has no {policy!r} policy; it offers {offered}")
    return POLICIES[algo, policy]


def make_model(
    algo: str, env: gym.Env | Any, policy: str = "candidate", seed: int = 0, **overrides: Any
) -> BaseAlgorithm:
    """An SB3 model on ``env`` with the suite's defaults (``overrides`` win).

    Raises:
        ValueError: unknown ``algo`` or ``policy``.
    """
    algo = algo.lower()
    if algo not in ALGORITHMS:
        raise ValueError(f"algorithm {algo!r} is unknown; choose from {', '.join(ALGORITHMS)}")
    params = {**HYPERPARAMS[algo], **overrides}
    return ALGORITHMS[algo](
        policy_class(algo, policy), env, seed=seed, device="cpu", verbose=0, **params
    )


class ProgressBar(BaseCallback):
    """A tqdm bar over environment steps; ``position`` stacks bars of parallel runs."""

    def __init__(self, total: int, desc: str, position: int = 0):
        super().__init__()
        self.bar = tqdm(
            total=total, desc=desc, position=position, unit="step", leave=True, dynamic_ncols=True
        )
        self._last = 0

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self._last)
        self._last = self.num_timesteps
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class EpisodeLog(BaseCallback):
    """Records every finished training episode: its return under the training reward
    (the proxy), its gold return (``info["gold_reward"]`` summed) and success.

    ``rows`` holds ``(timesteps, proxy_return, gold_return, success)`` tuples, in the
    order episodes end; plotting them against timesteps shows whether optimising a
    proxy reward also raises the gold one.
    """

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[int, float, float, bool]] = []
        self._proxy: list[float] = []
        self._gold: list[float] = []

    def _on_step(self) -> bool:
        rewards, infos, dones = self.locals["rewards"], self.locals["infos"], self.locals["dones"]
        if not self._proxy:
            self._proxy = [0.0] * len(rewards)
            self._gold = [0.0] * len(rewards)
        for i, info in enumerate(infos):
            self._proxy[i] += float(rewards[i])
            self._gold[i] += float(info.get("gold_reward", 0.0))
            if dones[i]:
                self.rows.append(
                    (
                        self.num_timesteps,
                        self._proxy[i],
                        self._gold[i],
                        bool(info.get("success", False)),
                    )
                )
                self._proxy[i] = self._gold[i] = 0.0
        return True


def make_training_env(
    env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any] | None = None
) -> VecEnv:
    """SB3 vector env of ``n_envs`` copies: for rlhf-envs ids the batched vector env
    through :class:`rlhf_envs.sb3.SB3VecEnv` (one reward-model call per step), for
    other ids SB3's ``make_vec_env``. Both seed sub-env ``i`` with ``seed + i``."""
    kwargs = dict(env_kwargs or {}, render_mode=None)
    if is_dialogue_env(env_id):
        return make_sb3_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs)


def is_dialogue_env(env_id: str) -> bool:
    """Whether ``env_id`` is registered with the batched dialogue vector env."""
    module, _, name = env_id.rpartition(":")
    try:
        if module:  # the "module:id" form imports the module that registers the id
            importlib.import_module(module)
        spec = gym.spec(name)
    except (gym.error.Error, ImportError):
        return False
    return spec.vector_entry_point in (DialogueVectorEnv, "rlhf_envs.vector:DialogueVectorEnv")


def train(
    algo: str,
    env_id: str,
    policy: str = "candidate",
    total_timesteps: int = 100_000,
    seed: int = 0,
    n_envs: int = 4,
    env_kwargs: dict[str, Any] | None = None,
    progress: str | None = None,
    position: int = 0,
    callbacks: list[BaseCallback] | None = None,
    **overrides: Any,
) -> BaseAlgorithm:
    """Train ``algo`` with ``policy`` on ``n_envs`` copies of ``env_id`` (see
    :func:`make_training_env`).

    Args:
        progress: a label to show a progress bar, or ``None`` for none.
        position: the bar's line when several runs train in parallel.
        callbacks: more SB3 callbacks (e.g. :class:`EpisodeLog`).
    """
    env = make_training_env(env_id, n_envs, seed, env_kwargs)
    model = make_model(algo, env, policy, seed=seed, **overrides)
    all_callbacks = list(callbacks or [])
    if progress:
        all_callbacks.append(ProgressBar(total_timesteps, progress, position))
    model.learn(total_timesteps, callback=all_callbacks or None)
    return model
