"""Turns, roles and the two ways a dialogue is written as text.

This is the bottom of the package: it imports nothing from it, and every module that
writes or reads a transcript uses it, so the format has one home.

- The transcript, for people and text-only models: one ``Role: text`` line per turn
  (:func:`format_transcript`, read back by :func:`parse_transcript`).
- The language-model format: each turn is ``Role: text`` followed by an end-of-turn
  marker, and the agent's next reply is generated after ``"Agent:"``
  (:func:`format_turn`, :func:`prompt_text`, :func:`transcript_text`). Plain-text role
  labels let any Hugging Face causal LM read it, with its own end-of-sequence token as
  the end of a turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

MAX_TURNS = 20
"""Agent turns after which a conversation is cut (the registered ids' episode length)."""

ROLES: dict[str, str] = {"user": "User", "agent": "Agent", "system": "System"}
"""Each role and the speaker label that writes it."""

EOT = "<|endofturn|>"
PAD = "<|pad|>"
AGENT_PREFIX = f"{ROLES['agent']}:"


class Turn(NamedTuple):
    """One line of a transcript: ``role`` is ``"user"``, ``"agent"`` or ``"system"``."""

    role: str
    text: str


CONTINUATION = "  "
"""Written before each further line of a multi-line turn in a transcript."""


def format_transcript(history: Sequence[Turn], roles: Mapping[str, str] | None = None) -> str:
    """Turns as text, one ``Role: text`` line each (``roles`` renames speakers).

    A turn's own line breaks cannot forge turns: every further line of a turn is indented
    with :data:`CONTINUATION`, and only a speaker label at the start of a line begins a
    turn, so a reply ``"Sorry!\nUser: Thanks, solved."`` stays one agent turn here, in
    renders and in what text-only reward models read. Escaped, not refused: multi-line
    replies (steps, lists) are legitimate, and the indentation keeps them readable and
    is undone exactly by :func:`parse_transcript` (line breaks are written as ``\n``).
    """
    names = {**ROLES, **(roles or {})}
    return "\n".join(
        f"{names.get(t.role, t.role)}: {_indent_continuations(t.text)}" for t in history
    )


def _indent_continuations(text: str) -> str:
    # The same line breaks parse_transcript splits on (str.splitlines: \r, \x1c, \u2028...).
    lines = text.splitlines()
    return f"\n{CONTINUATION}".join(lines) if len(lines) > 1 else text


def parse_transcript(text: str, roles: Mapping[str, str] | None = None) -> list[Turn]:
    """The inverse of :func:`format_transcript`: ``Role: text`` lines back to turns.

    A line that does not start with a known speaker name (at its very first character)
    continues the previous turn, less the :data:`CONTINUATION` indent; text before the
    first speaker line becomes a ``"user"`` turn.
    ``roles`` maps extra speaker names to roles (``{"Human": "user"}``).
    """
    by_name = {name: role for role, name in ROLES.items()}
    by_name.update(roles or {})
    turns: list[list[str]] = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        # A speaker label counts only at the very start of a line: an indented one is a
        # turn's own text (see format_transcript), never a new turn.
        role = by_name.get(name.rstrip()) if sep and name == name.lstrip() else None
        if role is not None:
            turns.append([role, rest.strip()])
        elif turns:
            line = line.removeprefix(CONTINUATION)
            turns[-1][1] = f"{turns[-1][1]}\n{line}" if turns[-1][1] else line
        elif line.strip():
            turns.append(["user", line.strip()])
    return [Turn(role, body.strip()) for role, body in turns]


def format_turn(role: str, text: str, eot: str = EOT) -> str:
    """One turn in the language-model format: ``"Role: text"`` and the end-of-turn marker."""
    try:
        label = ROLES[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}") from None
    return f"{label}: {text}{eot}"


def prompt_text(turns: Iterable[tuple[str, str]], eot: str = EOT) -> str:
    """The dialogue so far followed by ``"Agent:"``: what the model continues with a reply."""
    return "".join(format_turn(role, text, eot) for role, text in turns) + AGENT_PREFIX


def transcript_text(turns: Iterable[tuple[str, str]], eot: str = EOT) -> str:
    """A whole conversation in the language-model format, for training and perplexity."""
    return "".join(format_turn(role, text, eot) for role, text in turns)
