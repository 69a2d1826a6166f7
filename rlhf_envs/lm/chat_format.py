"""Token ids of dialogue turns for a policy LM, built once per turn and never re-encoded.

A multi-turn rollout keeps the ids the model actually saw and produced. The env's turns
(user and system) are encoded once, as they arrive, into the format the model was
trained on; the model's own replies are kept as sampled. Nothing is decoded and encoded
again between turns, which is where tokenisers drift (``encode("Agent:") +
encode(" Hello")`` is not always ``encode("Agent: Hello")``).

Two formats:

- :class:`RoleTextFormat`, the project's (``dialogue.format_turn``): ``"User: text"``
  then the end-of-turn token, and ``"Agent:"`` before a reply. For the reference LM and
  any causal LM without a chat template.
- :class:`ChatTemplateFormat`, for a tokenizer with a chat template: each turn's ids are
  the difference between the template rendered with and without that turn (the usual
  prefix-difference method), so they are exactly what the template would give for the
  whole conversation. The env's system messages become user messages that start
  ``"System: "`` (templates accept a system message only first).

:func:`turn_format` picks the format a tokenizer calls for.
"""

from __future__ import annotations

from typing import Any, Protocol

from rlhf_envs.dialogue import AGENT_PREFIX, ROLES, format_turn


class TurnFormat(Protocol):
    """How a dialogue is laid out in a policy's token ids.

    Attributes:
        reply_prefix: ids between the dialogue and a reply (``"Agent:"``, or the
            template's assistant header).
        stop_ids: tokens that end a reply when the model samples one (kept in the
            reply's ids: the model produced them).
        after_stop: ids the format puts after a finished reply (a template's newline
            after its end-of-message token; empty for the ``Role: text`` format).
        close_cut: ids that close a reply cut at the length cap (the end-of-turn or
            end-of-message token, not produced by the model).
        name: ``"role-text"`` or ``"chat-template"``.
    """

    reply_prefix: list[int]
    stop_ids: frozenset[int]
    after_stop: list[int]
    close_cut: list[int]
    name: str

    def start_ids(self, turns: list[tuple[str, str]]) -> list[int]:
        """Ids of the env's opening turns (before the first reply)."""
        ...

    def turn_ids(self, role: str, text: str) -> list[int]:
        """Ids of one finished env turn (``"user"`` or ``"system"``) after a reply."""
        ...


def render_chat(tokenizer: Any, messages: list[dict[str, str]], generation: bool) -> list[int]:
    """The token ids of ``messages`` under the tokenizer's chat template (with the
    assistant header after them when ``generation``)."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # (a BatchEncoding in transformers 5)
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


class RoleTextFormat:
    """``Role: text<end-of-turn>`` turns, ``"Agent:"`` before a reply.

    Args:
        tokenizer: a ``transformers`` tokenizer with an end-of-sequence token, which
            ends a turn.
    """

    name = "role-text"

    def __init__(self, tokenizer: Any):
        if tokenizer.eos_token_id is None:
            raise ValueError(
                "the tokenizer has no end-of-sequence token, which the Role: text format "
                "needs to end a turn"
            )
        self.tokenizer = tokenizer
        self.eot = tokenizer.eos_token
        self.reply_prefix = _encode(tokenizer, AGENT_PREFIX)
        self.stop_ids = frozenset({int(tokenizer.eos_token_id)})
        self.after_stop: list[int] = []
        self.close_cut = [int(tokenizer.eos_token_id)]

    def start_ids(self, turns: list[tuple[str, str]]) -> list[int]:
        return [i for role, text in turns for i in self.turn_ids(role, text)]

    def turn_ids(self, role: str, text: str) -> list[int]:
        return _encode(self.tokenizer, format_turn(role, text, eot=self.eot))


class ChatTemplateFormat:
    """The tokenizer's chat template, turn by turn (prefix differences).

    Args:
        tokenizer: a ``transformers`` tokenizer whose ``chat_template`` is set.

    Raises:
        ValueError: the template is not prefix-stable (rendering a longer conversation
            changes the ids of the earlier turns), so turns cannot be appended exactly.
    """

    name = "chat-template"
    # A short conversation the differences are taken against, so that every turn is
    # measured in the middle of a dialogue, as it occurs.
    _BASE = ({"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."})

    def __init__(self, tokenizer: Any):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template; use RoleTextFormat")
        self.tokenizer = tokenizer
        base = self._render(list(self._BASE), generation=False)
        user = [*self._BASE, {"role": "user", "content": "Yes."}]
        prompt = self._render(user, generation=False)
        with_header = self._render(user, generation=True)
        self._check_prefix(base, prompt)
        self._check_prefix(prompt, with_header)
        self.reply_prefix = with_header[len(prompt) :]
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no end-of-sequence token to end a reply")
        self.stop_ids = frozenset({int(eos)})
        answered = self._render([*user, {"role": "assistant", "content": "Sure."}], False)
        self._check_prefix(with_header, answered)
        tail = answered[len(with_header) :]
        # What follows the end-of-message token of a finished reply ("\n" in ChatML).
        self.after_stop = tail[tail.index(int(eos)) + 1 :] if int(eos) in tail else []
        self.close_cut = [int(eos)]

    def _render(self, messages: list[dict[str, str]], generation: bool) -> list[int]:
        return render_chat(self.tokenizer, messages, generation)

    @staticmethod
    def _check_prefix(shorter: list[int], longer: list[int]) -> None:
        if longer[: len(shorter)] != shorter:
            raise ValueError(
                "the chat template is not prefix-stable (adding a turn changes the ids of "
                "earlier ones), so a multi-turn rollout cannot append turns exactly; use the "
                "Role: text format (RoleTextFormat) with this model"
            )

    @staticmethod
    def _message(role: str, text: str) -> dict[str, str]:
        if role not in ROLES or role == "agent":
            raise ValueError(f"env turns are 'user' or 'system', got {role!r}")
        return {"role": "user", "content": text if role == "user" else f"{ROLES[role]}: {text}"}

    def start_ids(self, turns: list[tuple[str, str]]) -> list[int]:
        # The whole opening rendered at once: exactly the template's start (a default
        # system prompt included).
        return self._render([self._message(role, text) for role, text in turns], False)

    def turn_ids(self, role: str, text: str) -> list[int]:
        before = self._render(list(self._BASE), generation=False)
        after = self._render([*self._BASE, self._message(role, text)], False)
        self._check_prefix(before, after)
        return after[len(before) :]


def turn_format(tokenizer: Any, chat_template: bool | None = None) -> TurnFormat:
    """The format for ``tokenizer``: its chat template if it has one (or when
    ``chat_template`` is true), the ``Role: text`` format otherwise."""
    use_template = (
        bool(getattr(tokenizer, "chat_template", None)) if chat_template is None else chat_template
    )
    return ChatTemplateFormat(tokenizer) if use_template else RoleTextFormat(tokenizer)
