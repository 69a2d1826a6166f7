"""How a dialogue is written as one string for a language model.

Each turn is ``"Role: text"`` followed by the end-of-turn token; the agent's next reply
is generated after ``"Agent:"`` and ends with the end-of-turn token. Plain-text role
labels let any Hugging Face causal LM read the same format, with its own end-of-sequence
token as the end of a turn.
"""

from __future__ import annotations

from collections.abc import Iterable

EOT = "<|endofturn|>"
PAD = "<|pad|>"
ROLE_LABELS = {"user": "User", "agent": "Agent", "system": "System"}
AGENT_PREFIX = "Agent:"


def format_turn(role: str, text: str, eot: str = EOT) -> str:
    """One turn: ``"Role: text"`` and the end-of-turn marker."""
    try:
        label = ROLE_LABELS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLE_LABELS)}") from None
    return f"{label}: {text}{eot}"


def prompt_text(turns: Iterable[tuple[str, str]], eot: str = EOT) -> str:
    """The dialogue so far followed by ``"Agent:"``: what the model continues with a reply."""
    return "".join(format_turn(role, text, eot) for role, text in turns) + AGENT_PREFIX


def transcript_text(turns: Iterable[tuple[str, str]], eot: str = EOT) -> str:
    """A whole conversation, for training and perplexity."""
    return "".join(format_turn(role, text, eot) for role, text in turns)
