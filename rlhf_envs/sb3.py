"""Stable-Baselines3 on the native vector env: an adapter with SB3's ``VecEnv`` semantics.

Gymnasium 1.x vector envs reset a finished sub-env on the *next* step by default and
return batched info dicts; SB3 expects the reset in the *same* step, the last
observation in ``infos[i]["terminal_observation"]``, truncation in
``infos[i]["TimeLimit.truncated"]`` and one info dict per sub-env. :class:`SB3VecEnv`
gives SB3 exactly that over :class:`~rlhf_envs.vector.DialogueVectorEnv`, so training
keeps the batched reward-model call per step::

    from stable_baselines3 import PPO
    from rlhf_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(
        "RLHF-Chat-v0", n_envs=16, seed=0, env_kwargs={"reward": "learned:runs/rm"}
    )
    PPO("MultiInputPolicy", venv).learn(100_000)

With the same seeds it yields the same trajectories as SB3's ``make_vec_env``
(``DummyVecEnv`` of single envs), which ``tests/test_vector.py`` checks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv

from rlhf_envs.vector import DialogueVectorEnv

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env.base_vec_env import (
        VecEnvIndices,
        VecEnvObs,
        VecEnvStepReturn,
    )


class SB3VecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` over a :class:`DialogueVectorEnv`.

    ## Action Space

    The sub-env's action space (SB3 passes one action per sub-env as an array).

    ## Observation Space

    The sub-env's observation space; observations are stacked on a leading
    ``num_envs`` axis (a dict of arrays for ``Dict`` spaces), as ``DummyVecEnv`` does.

    ## Rewards

    As the sub-envs, float32, scored in one batched reward-model call per step.

    ## Episode End

    ``dones[i]`` is ``terminated or truncated``; the sub-env is reset in the same step
    and ``infos[i]`` carries ``terminal_observation`` (the episode's last observation)
    and ``TimeLimit.truncated`` (truncated and not terminated). The new episode's reset
    info is in ``reset_infos[i]``.

    ## Arguments

    - ``venv``: a :class:`DialogueVectorEnv` built with ``autoreset_mode="SameStep"``.
    - ``monitor``: add ``infos[i]["episode"]`` (return ``r``, length ``l``, time ``t``)
      at each episode end, as SB3's ``Monitor`` does, for SB3's episode logging
      (default ``True``; ``env_is_wrapped(Monitor)`` then says so). Monitor's own
      methods (``get_episode_rewards``, ...) and CSV log are not provided.

    ``env_method``, ``get_attr`` and ``set_attr`` reach the sub-envs (``DialogueEnv``),
    so sb3-contrib's ``MaskablePPO`` gets ``action_masks`` from each.
    """

    def __init__(self, venv: DialogueVectorEnv, monitor: bool = True):
        if not isinstance(venv, DialogueVectorEnv):
            raise TypeError(
                "SB3VecEnv wraps a rlhf_envs DialogueVectorEnv (gymnasium.make_vec(id, "
                f"num_envs=N)), got {type(venv).__name__}; for other envs use SB3's make_vec_env"
            )
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"SB3 resets a finished sub-env in the same step; build the vector env with "
                f"autoreset_mode='SameStep' (got {venv.autoreset_mode.value!r})"
            )
        self.venv = venv
        self.envs = venv.envs  # for SB3 helpers that look for sub-envs
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self.monitor = monitor
        self._start = time.time()
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    # --- the VecEnv API ------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        try:
            obs, _ = self.venv.reset(
                seed=list(self._seeds), options=[o or None for o in self._options]
            )
        finally:  # seeds and options are used once, as DummyVecEnv does
            self._reset_seeds()
            self._reset_options()
        self.reset_infos = list(self.venv.reset_infos)
        self._returns[:] = 0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() needs a step_async() first")
        steps = self.venv.step_each(self._actions)
        self._actions = None
        rewards = np.array([s.reward for s in steps], dtype=np.float32)
        dones = np.array([s.terminated or s.truncated for s in steps], dtype=bool)
        infos: list[dict[str, Any]] = []
        for i, s in enumerate(steps):
            if s.final_obs is not None:
                assert s.final_info is not None  # (set with final_obs)
                info = dict(s.final_info)
                info["terminal_observation"] = s.final_obs
                self.reset_infos[i] = s.info
            else:
                info = dict(s.info)
            info["TimeLimit.truncated"] = s.truncated and not s.terminated
            self._returns[i] += s.reward
            self._lengths[i] += 1
            if dones[i]:
                if self.monitor:  # as Monitor: rounded return, length, seconds since start
                    info["episode"] = {
                        "r": round(float(self._returns[i]), 6),
                        "l": int(self._lengths[i]),
                        "t": round(time.time() - self._start, 6),
                    }
                self._returns[i], self._lengths[i] = 0.0, 0
            infos.append(info)
        return self.venv._batch(), rewards, dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None] * self.num_envs
        images = self.venv.render()
        assert images is not None  # (the vector env has this adapter's render_mode)
        return list(images)

    def _targets(self, indices: VecEnvIndices) -> list[gym.Env]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for env in self._targets(indices):
            setattr(env, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        return [
            getattr(env, method_name)(*method_args, **method_kwargs)
            for env in self._targets(indices)
        ]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        # Sub-envs are bare DialogueEnvs; with ``monitor`` the adapter records what SB3's
        # Monitor does, so evaluate_policy and EvalCallback see a monitored env.
        wrapped = self.monitor and issubclass(Monitor, wrapper_class)
        return [wrapped for _ in self._targets(indices)]


def make_sb3_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    monitor: bool = True,
) -> VecEnv:
    """``n_envs`` conversations of ``env_id`` for Stable-Baselines3, with batched reward
    scoring: the counterpart of SB3's ``make_vec_env`` (same seeds: sub-env ``i`` is
    seeded ``seed + i``; episode statistics as ``Monitor`` records them).

    Args:
        env_id: a registered rlhf-envs id (``"RLHF-Chat-v0"``, ...).
        n_envs: number of sub-envs.
        seed: seed of the first reset (``None``: drawn from numpy's global generator).
        env_kwargs: arguments of the env (``reward``, ``domain``, ...).
        monitor: add ``info["episode"]`` at episode ends (SB3's episode logging).
    """
    kwargs = dict(env_kwargs or {})
    kwargs.setdefault("render_mode", None)
    # (as gym.make: None means the registered limit)
    if kwargs.get("max_episode_steps", 0) is None:
        del kwargs["max_episode_steps"]
    venv = gym.make_vec(
        env_id,
        num_envs=n_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **kwargs,
    )
    if not isinstance(venv, DialogueVectorEnv):
        raise TypeError(
            f"{env_id!r} is not an rlhf-envs id (its vector env is {type(venv).__name__})"
        )
    adapter = SB3VecEnv(venv, monitor=monitor)
    # As make_vec_env: seed() always (None draws from numpy's global generator, so
    # set_random_seed makes it reproducible), and each sub-env's action space.
    adapter.seed(seed)
    if seed is not None:
        for i, env in enumerate(venv.envs):
            env.action_space.seed(seed + i)
    return adapter
