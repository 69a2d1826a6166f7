"""A native vector env: N conversations stepped together, their replies scored in one batch.

With a learned reward model, scoring dominates the cost of a step, and a transformer
scores 16 replies in one forward pass far faster than in 16 passes. Gymnasium's
``SyncVectorEnv`` steps each sub-env (and so calls the reward model) one at a time; this
env splits each sub-env's step in two (:meth:`DialogueEnv.begin_turn`,
:meth:`DialogueEnv.finish_turn`) and makes one reward-model call and one gold-model call
per vector step in between. The sub-envs share one reward model.

Registered as every id's ``vector_entry_point``, so
``gymnasium.make_vec("RLHF-Chat-v0", num_envs=16, reward="learned:runs/rm")`` builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from rlhf_envs.env import CanonicalRewardSpecs, DialogueEnv, default_gold, score_turns
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model


class DialogueVectorEnv(CanonicalRewardSpecs, gym.vector.VectorEnv):
    """``num_envs`` copies of :class:`DialogueEnv` with batched reward scoring.

    ## Action Space

    ``MultiDiscrete([K] * num_envs)`` for the select interface, ``MultiDiscrete([V] *
    num_envs)`` for tokens: one action per sub-env.

    ## Observation Space

    The sub-env's ``Dict`` observation with every array stacked on a leading
    ``num_envs`` axis.

    ## Rewards

    As :class:`DialogueEnv`; all sub-envs' replies of a step are scored in one call of
    the reward model (and one of the gold model), shared by all sub-envs.

    ## Episode End

    Each sub-env terminates as a :class:`DialogueEnv` does and is truncated after
    ``max_episode_steps`` turns. Finished sub-envs are reset automatically, per
    ``autoreset_mode``: ``"NextStep"`` (Gymnasium's default; the next ``step`` resets
    them and ignores their action) or ``"SameStep"`` (reset at once; the last
    observation and info are in ``infos["final_obs"]`` and ``infos["final_info"]``).

    ## Arguments

    - ``num_envs``: number of conversations.
    - ``max_episode_steps``: steps before truncation (default 20, as the registered
      select and text ids; ``gymnasium.make_vec`` passes the registered value).
    - ``autoreset_mode``: ``"NextStep"`` (default) or ``"SameStep"``.
    - ``copy``: return copies of the observation arrays (default ``True``).
    - every :class:`DialogueEnv` argument (``domain``, ``reward``, ``gold``, ...).
    """

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = 20,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        copy: bool = True,
        reward: RewardSpec = "rubric",
        gold: RewardSpec | None = None,
        **env_kwargs: Any,
    ):
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode 'Disabled' is not supported; use 'NextStep' or 'SameStep'")
        self.reward_model = make_reward_model(reward)
        if gold is None:
            gold = default_gold(env_kwargs.get("interface", "select"), env_kwargs.get("lm"))
        self.gold_model = make_reward_model(gold)
        self.envs = [
            DialogueEnv(reward=self.reward_model, gold=self.gold_model, **env_kwargs) for _ in range(int(num_envs))
        ]
        first = self.envs[0]
        self.num_envs = len(self.envs)
        self.max_episode_steps = max_episode_steps
        self.copy = copy
        self.autoreset_mode = mode
        self.metadata = {**first.metadata, "autoreset_mode": mode}
        self.render_mode = first.render_mode
        self.single_action_space = first.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = first.observation_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._observations = create_empty_array(self.single_observation_space, self.num_envs)
        self._obs: list[Any] = [None] * self.num_envs
        self._turns = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        infos: dict[str, Any] = {}
        for i, (env, s) in enumerate(zip(self.envs, seeds)):
            self._obs[i], info = env.reset(seed=s, options=options)
            infos = self._add_info(infos, info, i)
        self._turns[:] = 0
        self._needs_reset[:] = False
        return self._batch(), infos

    def step(self, actions):
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        stepping, exchanges = [], []
        results: dict[int, tuple] = {}
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:  # NextStep autoreset: this step only resets
                self._obs[i], info = env.reset()
                self._turns[i] = 0
                infos = self._add_info(infos, info, i)
                continue
            exchange = env.begin_turn(actions[i])
            if exchange is None:  # a token inside a reply: nothing to score
                results[i] = env.continue_turn()
            else:
                exchanges.append(exchange)
                stepping.append(i)
        if exchanges:
            scores, parts, gold = score_turns(self.reward_model, self.gold_model, exchanges)
            for k, i in enumerate(stepping):
                components = {name: float(values[k]) for name, values in parts.items()}
                results[i] = self.envs[i].finish_turn(float(scores[k]), components, float(gold[k]))
        for i in sorted(results):
            obs, reward, terminated, _, info = results[i]
            self._turns[i] += 1
            # As Gymnasium's TimeLimit: truncated at the limit, even if also terminated.
            truncated = self.max_episode_steps is not None and self._turns[i] >= self.max_episode_steps
            rewards[i], terminations[i], truncations[i] = reward, terminated, truncated
            if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = self.envs[i].reset()
                self._turns[i] = 0
            self._obs[i] = obs
            infos = self._add_info(infos, info, i)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = terminations | truncations
        return self._batch(), rewards, terminations, truncations, infos

    def _batch(self):
        self._observations = concatenate(self.single_observation_space, self._obs, self._observations)
        return deepcopy(self._observations) if self.copy else self._observations

    def render(self) -> tuple[Any, ...] | None:
        """Each sub-env's ``render()`` (per ``render_mode``), or ``None`` without one."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
