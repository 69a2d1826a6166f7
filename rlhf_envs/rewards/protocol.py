"""The reward-model plugin surface: what a reward model is given and what it returns.

A reward model is anything with ``score(batch) -> np.ndarray`` (one finite float per
exchange). It sees what a human rater sees: the scenario (who the user is, the facts, the
policy that applies), the dialogue so far and the candidate reply. It never sees how a
candidate was produced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rlhf_envs.dialogue import Turn, format_transcript

if TYPE_CHECKING:  # imported for type hints only: reward models never need the env
    from rlhf_envs.simulation.scenario import Scenario
    from rlhf_envs.simulation.state import DialogueState


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

    scenario: Scenario | None
    history: tuple[Turn, ...]
    reply: str
    state: DialogueState | None = None

    def transcript(self, roles: Mapping[str, str] | None = None) -> str:
        """The history as text, one ``Role: text`` line per turn (for text-only models)."""
        return format_transcript(self.history, roles)


@runtime_checkable
class RewardModel(Protocol):
    """Scores a batch of replies in context; one float per exchange.

    Batching is part of the protocol so that learned models score many envs' turns in one
    forward pass. Implementations must return a 1-D array of ``len(batch)`` finite values.
    """

    def score(self, batch: Sequence[Exchange]) -> np.ndarray: ...


# A reward model may also define ``check_domain(domain) -> None``, raising ``ValueError``
# when it cannot score that domain's replies (the rubric: a persona the domain does not
# define). The env calls it when it is made, so such a mistake fails at gymnasium.make
# rather than at the first step. It is optional, so it is not part of the protocol class.


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
