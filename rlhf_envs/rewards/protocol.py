"""The reward-model plugin surface: what a reward model is given and what it returns.

A reward model is anything with ``score(batch) -> np.ndarray`` (one finite float per
exchange). It sees what a human rater sees: the scenario (who the user is, the facts, the
policy that applies), the dialogue so far and the candidate reply. It never sees how a
candidate was produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # imported for type hints only: reward models never need the env
    from rlhf_envs.tasks.scenario import Scenario
    from rlhf_envs.tasks.state import DialogueState


ROLE_NAMES = {"user": "User", "agent": "Agent", "system": "System"}


class Turn(NamedTuple):
    """One line of a transcript: ``role`` is ``"user"``, ``"agent"`` or ``"system"``."""

    role: str
    text: str


@dataclass(frozen=True)
class Exchange:
    """One reply in context, as a rater sees it.

    Attributes:
        scenario: the episode's scenario (domain, task, facts, policy), or ``None`` when
            the exchange comes from a data file rather than an env.
        history: the dialogue before the reply, oldest first.
        reply: the candidate reply being judged.
        state: the domain's reading of the dialogue so far (which policy steps are done,
            what the user has revealed), derived from ``history`` and ``scenario``. Set by
            the env; ``None`` for exchanges read from files. Scripted rubrics need it,
            text-only models ignore it.
    """

    scenario: "Scenario | None"
    history: tuple[Turn, ...]
    reply: str
    state: "DialogueState | None" = None

    def transcript(self, roles: Mapping[str, str] | None = None) -> str:
        """The history as text, one ``Role: text`` line per turn (for text-only models)."""
        return format_transcript(self.history, roles)


def format_transcript(history: Sequence[Turn], roles: Mapping[str, str] | None = None) -> str:
    """Turns as text, one ``Role: text`` line each (``roles`` renames speakers)."""
    names = {**ROLE_NAMES, **(roles or {})}
    return "\n".join(f"{names.get(t.role, t.role)}: {t.text}" for t in history)


def parse_transcript(text: str, roles: Mapping[str, str] | None = None) -> list[Turn]:
    """The inverse of :func:`format_transcript`: ``Role: text`` lines back to turns.

    A line that does not start with a known speaker name continues the previous turn
    (multi-line messages); text before the first speaker line becomes a ``"user"`` turn.
    ``roles`` maps extra speaker names to roles (``{"Human": "user"}``).
    """
    by_name = {name: role for role, name in ROLE_NAMES.items()}
    by_name.update(roles or {})
    turns: list[list[str]] = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        role = by_name.get(name.strip()) if sep else None
        if role is not None:
            turns.append([role, rest.strip()])
        elif turns:
            turns[-1][1] = f"{turns[-1][1]}\n{line}" if turns[-1][1] else line
        elif line.strip():
            turns.append(["user", line.strip()])
    return [Turn(role, body.strip()) for role, body in turns]


@runtime_checkable
class RewardModel(Protocol):
    """Scores a batch of replies in context; one float per exchange.

    Batching is part of the protocol so that learned models score many envs' turns in one
    forward pass. Implementations must return a 1-D array of ``len(batch)`` finite values.
    """

    def score(self, batch: Sequence[Exchange]) -> np.ndarray: ...


@runtime_checkable
class ComponentRewardModel(RewardModel, Protocol):
    """A reward model that can also explain its score as named parts (shown in ``info``).

    ``components(batch)`` returns ``{name: array of len(batch)}``; ``score`` must equal
    their sum (the env computes only the components and adds them up).
    """

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]: ...


def describe(obj: Any) -> str:
    """A short human-readable name of a reward model or function, for error messages."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    if callable(obj) and hasattr(obj, "__qualname__"):
        return f"function {obj.__module__}.{obj.__qualname__}"
    return f"{type(obj).__module__}.{type(obj).__qualname__} instance"
