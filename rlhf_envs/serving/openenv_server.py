"""Any registered id as an OpenEnv environment server (``rlhf-envs serve ID``).

OpenEnv clients (``openenv.core.EnvClient``/``GenericEnvClient``, TRL's OpenEnv
integration, verifiers' ``openenv`` taskset) drive an environment over a WebSocket
(``/ws``): one session per connection, each with its own env, ``reset``/``step``/``state``
messages. (OpenEnv's HTTP ``/reset`` and ``/step`` make a fresh env per request, so an
episode cannot be played over HTTP: use the WebSocket.) This module builds that server
from OpenEnv's own classes (``Environment``, ``Action``, ``Observation``, ``State``,
``create_app``); it needs the ``openenv`` extra (``pip install 'rlhf-envs[openenv]'``).

Action Space (the typed action of the id's interface):

- text ids: :class:`ReplyAction` ``{"message": str}``, the agent's reply (its one required
  field, so a client that sends plain text as the action's only field works);
- select ids: :class:`ChoiceAction` ``{"index": int}``, a proposal of ``candidates``;
- tokens ids: :class:`TokenAction` ``{"token": int}``, one token of the reference LM.

Observation (:class:`DialogueObservation`): ``transcript`` (the dialogue as ``Role: text``
lines; on text ids the interface's observation, which ends ``"Agent:"`` even after the
last step; on the others ``"Agent:"`` ends it while the agent is to speak), ``candidates``
(select ids: the proposals' texts), ``observation`` (select and tokens ids: the Gymnasium
observation as JSON lists; on text ids it is the transcript, sent once), ``turn``, ``done`` and
``reward`` (the env's training reward for the step), and ``metadata``: the step's ``info``
(``gold_reward``, ``reward_components``, ``success``, ``satisfaction``, the policy steps
done and missed, ...) with ``terminated`` and ``truncated``; after ``reset``, the reset
``info`` (domain, flow, subflow, persona). OpenEnv sends ``metadata`` inside the
observation, so a client that shows the whole observation to a model shows it the
grading too: serve such clients with ``info=False`` (``rlhf-envs serve --no-info``), which
leaves ``metadata`` empty.

Episode End: as the Gymnasium env; ``done`` is ``terminated or truncated``.

Errors (OpenEnv answers them as an ``error`` message; the session stays usable): an action
of the wrong type or shape (``VALIDATION_ERROR``), a reply or index the env refuses, a
step before ``reset``, after the episode ended, or after the idle reaper closed the
session (``EXECUTION_ERROR``, with a message that says what to do).

Arguments of :func:`create_openenv_app`: ``env_id``, ``reward`` (a reward spec for the
training reward; default the id's), ``max_sessions`` (concurrent sessions, default 8),
``idle_timeout`` (seconds after which an idle session's env is closed; default off),
``info`` (whether ``metadata`` carries the env's ``info``; default true), ``make_kwargs``
(more ``gymnasium.make`` arguments).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import gymnasium as gym
import numpy as np
from openenv.core.env_server import (
    Action,
    ConcurrencyConfig,
    Environment,
    Observation,
    State,
    create_app,
)
from openenv.core.env_server.types import EnvironmentMetadata
from pydantic import Field

from rlhf_envs.dialogue import format_transcript
from rlhf_envs.env_ids import check_env_id

DEFAULT_MAX_SESSIONS = 8


class ReplyAction(Action):
    """The agent's reply, as text (text ids)."""

    message: str = Field(description="the agent's reply to the user")


class ChoiceAction(Action):
    """The index of one of the proposals in ``candidates`` (select ids)."""

    index: int = Field(description="which proposal of the observation's candidates to send")


class TokenAction(Action):
    """One token id of the reference LM (tokens ids); the end-of-turn token sends the reply."""

    token: int = Field(description="a token id of the reference LM's vocabulary")


ACTIONS: dict[str, type[Action]] = {
    "text": ReplyAction,
    "select": ChoiceAction,
    "tokens": TokenAction,
}
_ACTION_FIELD = {ReplyAction: "message", ChoiceAction: "index", TokenAction: "token"}


class DialogueObservation(Observation):
    """What the agent sees after ``reset`` or a step (see the module docstring)."""

    transcript: str = ""
    candidates: list[str] = Field(default_factory=list)
    observation: Any = None
    turn: int = 0  # agent turns so far


class DialogueState(State):
    """The session's episode: its id, steps taken, the env id and whether it has ended."""

    env_id: str = ""
    done: bool = False
    task: str | None = None


def _jsonable(value: Any) -> Any:
    """An observation or ``info`` value as plain JSON (arrays as lists, tuples as lists)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class DialogueEnvironment(Environment):
    """One session's env: an rlhf-envs id behind OpenEnv's ``Environment`` interface.

    Args:
        env_id: a registered id.
        make_kwargs: ``gymnasium.make`` arguments (a ``reward`` spec, ...).
        idle_timeout: the server's idle limit, named in the error after a reaped session.
        info: whether observations carry the env's ``info`` in ``metadata``.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session makes its own env

    def __init__(
        self,
        env_id: str,
        make_kwargs: dict[str, Any] | None = None,
        idle_timeout: float | None = None,
        info: bool = True,
    ):
        super().__init__()
        self.env_id, self.idle_timeout, self.info = env_id, idle_timeout, info
        self.env = gym.make(env_id, render_mode="ansi", **(make_kwargs or {}))
        dialogue: Any = self.env.unwrapped  # (the DialogueEnv: its state and interface)
        self.dialogue = dialogue
        self.interface = str(dialogue.interface.name)
        self._state = DialogueState(env_id=env_id)
        self._started = self._closed = False

    # --- OpenEnv's interface ---------------------------------------------------------

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> DialogueObservation:
        """Start an episode: ``seed`` as Gymnasium's; ``options`` (``{"scenario_seed":
        N}``) as the env's reset options."""
        self._check_open()
        options = kwargs.pop("options", None)
        if kwargs:
            raise ValueError(
                f"reset takes seed, episode_id and options; got {sorted(kwargs)} as well"
            )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        obs, info = self.env.reset(seed=seed, options=options)
        self._started = True
        self._state = DialogueState(
            episode_id=episode_id or uuid.uuid4().hex,
            step_count=0,
            env_id=self.env_id,
            done=False,
            task=info.get("subflow"),
        )
        return self._observation(obs, reward=None, done=False, metadata=info)

    def step(
        self, action: Action, timeout_s: float | None = None, **kwargs: Any
    ) -> DialogueObservation:
        """Play one action (the typed action of the id's interface)."""
        self._check_open()
        if not self._started:
            raise RuntimeError("step before reset: send reset first to start an episode")
        if self._state.done:
            raise RuntimeError(
                "the episode is over (terminated or truncated); send reset to start another"
            )
        expected = ACTIONS[self.interface]
        if not isinstance(action, expected):
            raise TypeError(
                f"{self.env_id} takes {expected.__name__} actions, got {type(action).__name__}"
            )
        value = getattr(action, _ACTION_FIELD[expected])
        obs, reward, terminated, truncated, info = self.env.step(value)
        done = bool(terminated or truncated)
        self._state.step_count += 1
        self._state.done = done
        metadata = {**info, "terminated": bool(terminated), "truncated": bool(truncated)}
        return self._observation(obs, reward=float(reward), done=done, metadata=metadata)

    @property
    def state(self) -> DialogueState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        doc = (type(self.dialogue).__doc__ or "").strip().split("\n\n")[0]
        from importlib.metadata import version

        return EnvironmentMetadata(
            name=self.env_id,
            description=" ".join(doc.split()) or f"rlhf-envs {self.env_id}",
            version=version("rlhf-envs"),
            author="rlhf-envs developers",
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()

    # --- helpers ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            idle = (
                f" after {self.idle_timeout:g} s without a reset or step"
                if self.idle_timeout
                else ""
            )
            raise RuntimeError(
                f"this session's env was closed{idle}; open a new session (connect again) and reset"
            )

    def _observation(
        self, obs: Any, reward: float | None, done: bool, metadata: dict[str, Any]
    ) -> DialogueObservation:
        state = self.dialogue.state
        transcript = obs if isinstance(obs, str) else format_transcript(state.history)
        if not done and not isinstance(obs, str):
            transcript += "\nAgent:"
        candidates = (
            [c.text for c in self.dialogue.interface.candidates]
            if self.interface == "select" and not done
            else []
        )
        return DialogueObservation(
            transcript=transcript,
            candidates=candidates,
            observation=None if isinstance(obs, str) else _jsonable(obs),
            turn=sum(1 for t in state.history if t.role == "agent"),
            done=done,
            reward=reward,
            metadata=_jsonable(metadata) if self.info else {},
        )


def create_openenv_app(
    env_id: str,
    reward: str | None = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    idle_timeout: float | None = None,
    make_kwargs: dict[str, Any] | None = None,
    info: bool = True,
) -> Any:
    """The OpenEnv FastAPI app serving ``env_id`` (see the module docstring).

    Raises:
        ValueError: an unknown id, a bad reward spec (checked by making one env now), or
            ``max_sessions`` / ``idle_timeout`` out of range.
    """
    check_env_id(env_id)
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ValueError(f"max_sessions must be a positive integer, got {max_sessions!r}")
    if idle_timeout is not None and not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be a positive number of seconds, got {idle_timeout!r}")
    kwargs = dict(make_kwargs or {})
    if reward is not None:
        kwargs["reward"] = reward
    probe = DialogueEnvironment(env_id, kwargs)  # a bad spec fails here, not in a session
    action_cls = ACTIONS[probe.interface]
    probe.close()
    factory = functools.partial(DialogueEnvironment, env_id, kwargs, idle_timeout, info)
    return create_app(
        factory,
        action_cls,
        DialogueObservation,
        env_name=env_id,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=idle_timeout
        ),
        state_cls=DialogueState,
    )
