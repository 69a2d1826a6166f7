"""The *text* interface: the agent writes each reply as a string.

For LLM agents, scripted agents and people typing. One step is one reply. The
observation is the transcript so far as text, ending with ``"Agent:"``, the prompt an
LLM continues. Stable-Baselines3 cannot train on string spaces; Gymnasium's tools and
any agent that reads and writes text can.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

from rlhf_envs.dialogue import Turn, format_transcript
from rlhf_envs.interfaces.base import Interface
from rlhf_envs.simulation.expert import expert_reply
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.words import stable_hash

# Printable ASCII (letters, digits, punctuation, space, tab, newline) and the
# typographic characters people and LLMs type: curly quotes, dashes, ellipsis,
# currency, degrees and common accented letters. Gymnasium's default charset
# (letters and digits only) could not hold "Sure, I can help!".
REPLY_CHARSET = frozenset(
    set(string.printable) - set("\x0b\x0c") | set("‘’“”–—…£€¥°±×·éèêëàâäçîïôöûüñÉÀ")
)
UNKNOWN_CHARACTER = "?"


class TextInterface(Interface):
    """Write each reply as a string.

    Action space: ``Text(max_reply_chars, min_length=1, charset=REPLY_CHARSET)``.
    Observation space: ``Text(max_context_chars, min_length=0, charset=REPLY_CHARSET)``:
    the transcript, one ``Role: text`` line per turn, then ``"Agent:"``; the oldest text
    is cut when it is longer than ``max_context_chars`` (characters outside the charset
    are shown as ``?``).

    Args:
        max_reply_chars: the longest reply accepted.
        max_context_chars: the longest observation.
    """

    name = "text"

    def __init__(self, max_reply_chars: int = 1000, max_context_chars: int = 4000):
        if int(max_reply_chars) < 1 or int(max_context_chars) < 16:
            raise ValueError(
                f"max_reply_chars must be at least 1 and max_context_chars at least 16; got "
                f"{max_reply_chars} and {max_context_chars}"
            )
        charset = "".join(sorted(REPLY_CHARSET))
        self.max_reply_chars = int(max_reply_chars)
        self.max_context_chars = int(max_context_chars)
        self.action_space = spaces.Text(self.max_reply_chars, min_length=1, charset=charset)
        self.observation_space = spaces.Text(self.max_context_chars, min_length=0, charset=charset)
        self.reset()

    def reset(self) -> None:
        # The transcript's lines so far, charset-cleaned, and the turns they came from:
        # each turn is formatted once, so a step costs the same at turn 2 and turn 20.
        self._lines: list[str] = []
        self._turns: tuple[Turn, ...] = ()

    def observe(self, state: DialogueState, rng: np.random.Generator) -> str:
        history = state.history
        done = len(self._turns)
        # (states of one episode share their turns: anything else starts over)
        if len(history) < done or (done and history[done - 1] is not self._turns[-1]):
            self.reset()
            done = 0
        for turn in history[done:]:
            line = format_transcript((turn,))
            self._lines.append(
                "".join(c if c in REPLY_CHARSET else UNKNOWN_CHARACTER for c in line)
            )
        self._turns = history
        # (the prompt line "Agent:" is within the charset)
        return "\n".join([*self._lines, "Agent:"])[-self.max_context_chars :]

    def reply(self, action: Any, state: DialogueState) -> str:
        if not isinstance(action, str):
            raise ValueError(
                f"action {type(action).__name__} {action!r:.60} is not valid for the text "
                f"interface: expected the reply as a str of 1 to {self.max_reply_chars} characters"
            )
        bad = sorted({c for c in action if c not in REPLY_CHARSET})
        if bad or not 1 <= len(action) <= self.max_reply_chars or not action.strip():
            problem = (
                f"characters outside the charset: {''.join(bad)!r}"
                if bad
                else "it is empty or blank"
                if not action.strip()
                else f"it has {len(action)} characters"
            )
            raise ValueError(
                f"reply not accepted ({problem}); a reply is 1 to {self.max_reply_chars} "
                "characters of printable text (letters, digits, punctuation, spaces, newlines, "
                "typographic quotes and dashes, common accented letters), not blank"
            )
        return action.strip()

    def expert_action(self, state: DialogueState, rng: np.random.Generator) -> str:
        """The scripted expert's reply (its wording drawn from the transcript's hash, so
        asking for it does not change the episode)."""
        return expert_reply(
            state, np.random.default_rng(stable_hash(format_transcript(state.history)))
        )
