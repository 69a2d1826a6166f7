"""A native vector env: N conversations stepped together, their replies scored in one batch.

With a learned reward model, scoring dominates the cost of a step, and a transformer
scores 16 replies in one forward pass far faster than in 16 passes. Gymnasium's
``SyncVectorEnv`` steps each sub-env (and so calls the reward model) one at a time; this
env splits each sub-env's step in two (:meth:`DialogueEnv.begin_turn`,
:meth:`DialogueEnv.finish_turn`) and makes one reward-model call and one gold-model call
per vector step in between. The sub-envs share one reward model. With KL shaping on the
tokens interface, the reference LM's forward passes of all sub-envs run as one batch too.

Stable-Baselines3 trains on it through :class:`rlhf_envs.sb3.SB3VecEnv`.

Registered as every id's ``vector_entry_point``, so
``gymnasium.make_vec("RLHF-Chat-v0", num_envs=16, reward="learned:runs/rm")`` builds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from rlhf_envs.dialogue import MAX_TURNS
from rlhf_envs.env import CanonicalRewardSpecs, DialogueEnv, StepResult, default_gold, score_turns
from rlhf_envs.lm.reference import feed_batch
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model

if TYPE_CHECKING:
    from rlhf_envs.rewards.protocol import Exchange


@dataclass
class SubEnvStep:
    """What one sub-env did in a vector step.

    ``obs``/``info`` are what the caller sees next: after an automatic reset, the new
    episode's first observation and reset info. ``final_obs``/``final_info`` hold the
    ended episode's last ones when the reset happened in this same step (SameStep).
    ``reset`` says the sub-env was reset in this step.
    """

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    reset: bool = False
    final_obs: Any = None
    final_info: dict[str, Any] | None = None


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
    - ``max_episode_steps``: steps before truncation (default ``MAX_TURNS`` = 20, as the registered
      select and text ids; ``gymnasium.make_vec`` passes the registered value).
    - ``autoreset_mode``: ``"NextStep"`` (default) or ``"SameStep"``.
    - ``copy``: return copies of the observation arrays (default ``True``).
    - every :class:`DialogueEnv` argument (``domain``, ``reward``, ``gold``, ...).
    """

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int | None = MAX_TURNS,
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
            raise ValueError(
                "autoreset_mode 'Disabled' is not supported; use 'NextStep' or 'SameStep'"
            )
        self.reward_model = make_reward_model(reward)
        if gold is None:
            gold = default_gold(env_kwargs.get("interface", "select"), env_kwargs.get("lm"))
        self.gold_model = make_reward_model(gold)
        self.envs = [
            DialogueEnv(reward=self.reward_model, gold=self.gold_model, **env_kwargs)
            for _ in range(int(num_envs))
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
        # (the batched observation: arrays, or a dict or tuple of them, as the space says)
        self._observations: Any = create_empty_array(self.single_observation_space, self.num_envs)
        single = self.single_observation_space
        self._box_keys: list[str] | None = (
            list(single.spaces)
            if isinstance(single, spaces.Dict)
            and all(isinstance(s, spaces.Box) for s in single.spaces.values())
            else None
        )
        self._obs: list[Any] = [None] * self.num_envs
        self._turns = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every sub-env. ``seed``: one int (sub-env ``i`` gets ``seed + i``) or one
        per sub-env. ``options``: one dict for all, or one per sub-env (as SB3's
        ``set_options`` gives them)."""
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} sub-envs")
        if options is None or isinstance(options, dict):
            per_env = [options] * self.num_envs
        else:
            per_env = list(options)
            if len(per_env) != self.num_envs:
                raise ValueError(f"got {len(per_env)} options dicts for {self.num_envs} sub-envs")
        infos: dict[str, Any] = {}
        self.reset_infos: list[dict[str, Any]] = []  # per sub-env, for the SB3 adapter
        for i, (env, s) in enumerate(zip(self.envs, seeds, strict=True)):
            self._obs[i], info = env.reset(seed=s, options=per_env[i] or None)
            self.reset_infos.append(info)
            infos = self._add_info(infos, info, i)
        self._turns[:] = 0
        self._needs_reset[:] = False
        return self._batch(), infos

    @property
    def spec(self) -> EnvSpec | None:
        return getattr(self, "_spec", None)

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        # The vector env's spec (set by make_vec), and for each sub-env the spec of the
        # single env it stands for: what SB3's get_attr("spec") returns on make_vec_env.
        CanonicalRewardSpecs._set_spec(self, value)
        single = None
        if self._spec is not None:
            vector_only = (
                "num_envs",
                "vectorization_mode",
                "autoreset_mode",
                "max_episode_steps",
                "copy",
            )
            kwargs = {k: v for k, v in self._spec.kwargs.items() if k not in vector_only}
            single = dataclasses.replace(
                self._spec, kwargs=kwargs, max_episode_steps=self.max_episode_steps
            )
        for env in getattr(self, "envs", ()):
            env.spec = single

    def step_each(self, actions: Sequence[Any] | np.ndarray) -> list[SubEnvStep]:
        """Step every sub-env (one batched reward-model call, one batched reference-LM
        forward) and apply ``autoreset_mode``; one :class:`SubEnvStep` per sub-env.

        :meth:`step` batches these for Gymnasium; :class:`rlhf_envs.sb3.SB3VecEnv` turns
        them into Stable-Baselines3's format without going through batched infos.
        """
        if len(actions) != self.num_envs:
            raise ValueError(f"got {len(actions)} actions for {self.num_envs} sub-envs")
        steps: dict[int, SubEnvStep] = {}  # by sub-env: every one is stepped or reset
        stepping = [i for i in range(self.num_envs) if not self._needs_reset[i]]
        # KL shaping: the reference LM's pending tokens of every sub-env in one forward.
        scorers = [getattr(self.envs[i].interface, "reference_scorer", None) for i in stepping]
        feed_batch([s for s in scorers if s is not None])
        for i in range(self.num_envs):
            if self._needs_reset[i]:  # NextStep autoreset: this step only resets
                obs, info = self.envs[i].reset()
                self._turns[i] = 0
                steps[i] = SubEnvStep(obs, 0.0, False, False, info, reset=True)
        exchanges: list[Exchange] = []
        scoring: list[int] = []
        results: dict[int, StepResult] = {}
        for i in stepping:
            exchange = self.envs[i].begin_turn(actions[i])
            if exchange is None:  # a token inside a reply: nothing to score
                results[i] = self.envs[i].continue_turn()
            else:
                exchanges.append(exchange)
                scoring.append(i)
        if exchanges:
            scores, parts, gold = score_turns(self.reward_model, self.gold_model, exchanges)
            for k, i in enumerate(scoring):
                components = {name: float(values[k]) for name, values in parts.items()}
                results[i] = self.envs[i].finish_turn(float(scores[k]), components, float(gold[k]))
        for i in stepping:
            obs, reward, terminated, _, info = results[i]
            self._turns[i] += 1
            # As Gymnasium's TimeLimit: truncated at the limit, even if also terminated.
            truncated = (
                self.max_episode_steps is not None and self._turns[i] >= self.max_episode_steps
            )
            step = SubEnvStep(obs, float(reward), bool(terminated), bool(truncated), info)
            if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                step.final_obs, step.final_info = obs, info
                step.obs, step.info = self.envs[i].reset()
                step.reset = True
                self._turns[i] = 0
            steps[i] = step
        ordered = [steps[i] for i in range(self.num_envs)]
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = np.array([s.terminated or s.truncated for s in ordered], dtype=bool)
        for i, step in enumerate(ordered):
            self._obs[i] = step.obs
        return ordered

    def step_replies(
        self, replies: Sequence[Any | None], score: Sequence[bool] | None = None
    ) -> list[StepResult | None]:
        """Send one whole reply to each sub-env that gets one (``None``: left as it is),
        scoring all of them in one reward-model call and one gold call.

        For multi-turn rollouts of language-model policies (:mod:`rlhf_envs.rollouts`),
        which write whole replies. A reply is a string on the text interface and token
        ids on the tokens interface (fed one by one, as a policy acting token by token
        would; the turn ends at end-of-turn or the length cap, and a reply that stops
        short of both is closed with end-of-turn). Rewards of a reply's tokens are summed
        into its step's reward. Sub-envs with ``score[i]`` false are stepped without
        calling the reward models (rewards 0; replaying a known reply to reach a state),
        which changes nothing in the conversation: the user reacts to the reply, not to
        its score. No automatic reset and no step limit: the caller ends episodes.

        Returns:
            per sub-env, ``step()``'s 5-tuple for its reply, or ``None``.
        """
        if len(replies) != self.num_envs:
            raise ValueError(f"got {len(replies)} replies for {self.num_envs} sub-envs")
        scored = [True] * self.num_envs if score is None else [bool(s) for s in score]
        results: list[StepResult | None] = [None] * self.num_envs
        shaping = np.zeros(self.num_envs)
        exchanges: list[Exchange] = []
        scoring: list[int] = []
        for i, reply in enumerate(replies):
            if reply is None:
                continue
            env = self.envs[i]
            if isinstance(reply, str):
                exchange = env.begin_turn(reply)
            else:
                tokens = [int(t) for t in reply]
                lm = env.reference_lm
                if lm is None:
                    raise ValueError(
                        f"sub-env {i} has the {env.interface.name} interface: send a str reply"
                    )
                exchange = None
                for token in [*tokens, lm.eot_id]:
                    exchange = env.begin_turn(token)
                    if exchange is not None:
                        break
                    shaping[i] += env.continue_turn()[1]
            assert exchange is not None  # (end-of-turn always ends a tokens turn)
            if scored[i]:
                exchanges.append(exchange)
                scoring.append(i)
            else:
                results[i] = env.finish_turn(0.0, {}, 0.0)
        if exchanges:
            scores, parts, gold = score_turns(self.reward_model, self.gold_model, exchanges)
            for k, i in enumerate(scoring):
                components = {name: float(values[k]) for name, values in parts.items()}
                results[i] = self.envs[i].finish_turn(float(scores[k]), components, float(gold[k]))
        for i, result in enumerate(results):
            if result is not None and shaping[i]:
                obs, reward, terminated, truncated, info = result
                results[i] = (obs, reward + shaping[i], terminated, truncated, info)
        return results

    def step(
        self, actions: Sequence[Any] | np.ndarray
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        steps = self.step_each(actions)
        infos: dict[str, Any] = {}
        for i, step in enumerate(steps):
            if step.final_obs is not None:
                infos = self._add_info(
                    infos, {"final_obs": step.final_obs, "final_info": step.final_info}, i
                )
            infos = self._add_info(infos, step.info, i)
        return (
            self._batch(),
            np.array([s.reward for s in steps], dtype=np.float64),
            np.array([s.terminated for s in steps], dtype=bool),
            np.array([s.truncated for s in steps], dtype=bool),
            infos,
        )

    def _batch(self) -> Any:
        keys = self._box_keys
        if keys is not None:
            # A dict of arrays (the select interface): row assignments into the batch's
            # arrays cost less than Gymnasium's generic ``concatenate`` (np.stack per key),
            # and copying each array less than ``deepcopy`` of the dict.
            batch = self._observations
            for i, obs in enumerate(self._obs):
                for key in keys:
                    row = batch[key][i]
                    value = obs[key]
                    if value.shape != row.shape:  # (an assignment would broadcast it)
                        raise ValueError(
                            f"sub-env {i} observation {key!r} has shape {value.shape}; "
                            f"its space has shape {row.shape}"
                        )
                    row[...] = value
            return {key: batch[key].copy() for key in keys} if self.copy else batch
        space = self.single_observation_space
        self._observations = concatenate(space, self._obs, self._observations)
        return deepcopy(self._observations) if self.copy else self._observations

    def render(self) -> tuple[Any, ...] | None:
        """Each sub-env's ``render()`` (per ``render_mode``), or ``None`` without one."""
        if self.render_mode is None:
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in getattr(self, "envs", ()):  # (absent when __init__ raised)
            env.close()
