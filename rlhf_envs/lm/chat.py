"""A local causal LM answering chat messages, the way a chat-completions API does.

Chat clients speak in messages (``{"role": "system" | "user" | "assistant", "content":
...}``); the suite's dialogues are turns (``user``, ``agent``, ``system``). This module
maps one to the other and lets any local Hugging Face causal LM folder (the project's
reference LM included) answer a list of messages. The language-model agent
(:mod:`rlhf_agents.lm_agents`) and the OpenAI-compatible server (``rlhf-envs
serve-lm``) both use it, so a model served over HTTP answers exactly as it does in
process.

The mapping, in both directions:

- user turn <-> ``user`` message; agent turn <-> ``assistant`` message;
- the env's system lines ("System: Account pulled up.") <-> ``user`` messages that start
  ``"System: "`` (chat templates take a system message only first, and these lines are
  what the agent's lookups returned, news from outside like the user's words);
- a ``system`` (or ``developer``) message, the instructions, has no turn: a model with a
  chat template gets it as its system message; a ``Role: text`` model gets it as a
  ``System:`` line at the start, only when the whole conversation fits with it.

The prompt is cut to the model's positions less the reply's length: a chat template
drops the oldest messages first (the instructions last); the ``Role: text`` format keeps
the newest tokens, as the tokens interface and best-of-n read a dialogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlhf_envs.dialogue import ROLES, Turn
from rlhf_envs.lm.chat_format import RoleTextFormat, render_chat
from rlhf_envs.lm.reference import ReferenceLM, load_reference_lm
from rlhf_envs.lm.sampling import sample_replies

SYSTEM_LINE = f"{ROLES['system']}: "
MESSAGE_ROLES = ("system", "developer", "user", "assistant")


class ChatRequestError(ValueError):
    """Messages or sampling settings a chat model cannot take (what and what is accepted)."""


def chat_messages(
    turns: Sequence[Turn | tuple[str, str]], instructions: str | None = None
) -> list[dict[str, str]]:
    """A dialogue's turns as chat messages, after the ``instructions`` (a system message)."""
    out = [{"role": "system", "content": instructions}] if instructions else []
    for role, text in turns:
        if role == "agent":
            out.append({"role": "assistant", "content": text})
        elif role == "user":
            out.append({"role": "user", "content": text})
        elif role == "system":
            out.append({"role": "user", "content": SYSTEM_LINE + text})
        else:
            raise ValueError(f"a turn's role is 'user', 'agent' or 'system', got {role!r}")
    return out


def message_text(message: Mapping[str, Any], index: int) -> str:
    """The text of one message: a string, or a list of ``{"type": "text"}`` parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise ChatRequestError(
        f"messages[{index}].content must be a string or a list of text parts "
        f'({{"type": "text", "text": ...}}); got {type(content).__name__}'
    )


def split_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str | None, list[Turn]]:
    """The instructions (``system``/``developer`` messages, joined) and the dialogue turns.

    Raises:
        ChatRequestError: a message is not a mapping with a known role and text content,
            or there is no user or assistant message.
    """
    if not isinstance(messages, Sequence) or isinstance(messages, str | bytes):
        raise ChatRequestError("messages must be a list of {role, content} objects")
    instructions: list[str] = []
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ChatRequestError(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise ChatRequestError(
                f"messages[{i}].role is {role!r}; accepted: {', '.join(MESSAGE_ROLES)}"
            )
        text = message_text(message, i)
        if role in ("system", "developer"):
            instructions.append(text)
        elif role == "assistant":
            turns.append(Turn("agent", text))
        elif text.startswith(SYSTEM_LINE):
            turns.append(Turn("system", text.removeprefix(SYSTEM_LINE)))
        else:
            turns.append(Turn("user", text))
    if not turns:
        raise ChatRequestError("messages need at least one user or assistant message")
    return ("\n\n".join(instructions) or None), turns


def _alternating(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Neighbouring messages of one role joined (an env's system line after the user's
    words are both ``user``), since many chat templates require the roles to alternate."""
    out: list[dict[str, str]] = []
    for message in messages:
        if out and out[-1]["role"] == message["role"]:
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n{message['content']}"}
        else:
            out.append(dict(message))
    return out


@dataclass
class Completion:
    """One generated reply.

    Attributes:
        text: the reply (stop token and anything from a stop string on removed).
        finish_reason: ``"stop"`` (the model ended it, or a stop string did) or
            ``"length"`` (cut at ``max_tokens``).
        ids: the generated token ids (the stop token included when drawn).
        logprobs: the log-probability of each id under the sampling distribution.
    """

    text: str
    finish_reason: str
    ids: list[int]
    logprobs: list[float]


class ChatModel:
    """A local causal LM folder that answers chat messages.

    Uses the tokenizer's chat template when it has one, the ``Role: text`` format of the
    project's reference LM otherwise (see the module docstring for the mapping).

    Args:
        path: a Hugging Face causal LM folder (``config.json``, safetensors weights,
            tokenizer files), loaded once per process.
        max_positions: the longest prompt + reply (default: the model's positions, at
            most 4,096).
    """

    def __init__(self, path: str | Path, max_positions: int | None = None):
        self.lm: ReferenceLM = load_reference_lm(path)
        self.path = self.lm.path
        tokenizer: Any = self.lm.tokenizer
        # The whole conversation is rendered for every reply, so a template need not be
        # prefix-stable (as token-exact rollouts need: rlhf_envs.lm.chat_format).
        self._template = bool(getattr(tokenizer, "chat_template", None))
        self.format_name = "chat-template" if self._template else "role-text"
        self._role_text = None if self._template else RoleTextFormat(tokenizer)
        # A reply ends at end-of-sequence or at any end-of-turn token the model's
        # generation config names (<end_of_turn>, <|end|>, <|eot_id|>, ...).
        stops = {self.lm.eot_id}
        config_eos = getattr(
            getattr(self.lm.model, "generation_config", None), "eos_token_id", None
        )
        stops.update([config_eos] if isinstance(config_eos, int) else list(config_eos or []))
        self.stop_ids = frozenset(int(i) for i in stops)
        self.max_positions = int(max_positions or min(self.lm.max_positions, 4096))

    @property
    def name(self) -> str:
        """The folder's name, as a served model is called by default."""
        return self.path.name

    # --- prompts -------------------------------------------------------------------

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], max_tokens: int) -> list[int]:
        """The token ids the model reads before its reply to ``messages``, cut to leave
        ``max_tokens`` positions for the reply."""
        if not 1 <= int(max_tokens) < self.max_positions:
            raise ChatRequestError(
                f"max_tokens must be between 1 and {self.max_positions - 1} for this model "
                f"({self.max_positions} positions), got {max_tokens}"
            )
        instructions, turns = split_messages(messages)
        budget = self.max_positions - int(max_tokens)
        if self._template:
            return self._template_prompt(instructions, turns, budget)
        return self._role_text_prompt(instructions, turns, budget)

    def _role_text_prompt(
        self, instructions: str | None, turns: list[Turn], budget: int
    ) -> list[int]:
        # (RoleTextFormat writes any role's turn, the agent's included.)
        fmt = self._role_text
        assert fmt is not None
        ids = [i for role, text in turns for i in fmt.turn_ids(role, text)]
        ids += fmt.reply_prefix
        if instructions:
            head = fmt.turn_ids("system", instructions)
            if len(head) + len(ids) <= budget:
                ids = head + ids
        return ids[-budget:]

    def _render(self, messages: list[dict[str, str]]) -> list[int]:
        try:
            return render_chat(self.lm.tokenizer, messages, generation=True)
        except Exception as exc:  # (templates raise their own errors, e.g. on a system role)
            if messages and messages[0]["role"] == "system" and len(messages) > 1:
                # A template without a system role: the instructions open the first message.
                merged = [
                    {
                        "role": messages[1]["role"],
                        "content": f"{messages[0]['content']}\n\n{messages[1]['content']}",
                    }
                ]
                return self._render(merged + messages[2:])
            raise ChatRequestError(
                f"the model's chat template cannot render these messages: {exc}"
            ) from exc

    def _template_prompt(
        self, instructions: str | None, turns: list[Turn], budget: int
    ) -> list[int]:
        head = [{"role": "system", "content": instructions}] if instructions else []
        body = _alternating(chat_messages(turns))
        while True:
            ids = self._render(head + body)
            if len(ids) <= budget:
                return ids
            if len(body) > 1:
                # The oldest message first; a conversation restarts with a user message
                # (templates that want user/assistant alternation refuse anything else).
                body = body[1:]
                while len(body) > 1 and body[0]["role"] != "user":
                    body = body[1:]
            elif head:
                head = []
            else:
                return ids[-budget:]

    # --- replies -------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int = 64,
        temperature: float = 1.0,
        n: int = 1,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> tuple[list[Completion], int]:
        """``n`` replies to ``messages``, and the prompt's length in tokens.

        Args:
            messages: OpenAI-style chat messages (see the module docstring).
            max_tokens: the longest reply, in tokens.
            temperature: sampling temperature; 0 (or below 1e-5) = greedy.
            n: replies drawn (independently) for the same prompt.
            seed: the random seed; the same seed and messages give the same replies.
            stop: strings that end a reply (the reply is cut before the first; the
                reply's ids, log-probabilities and token count still cover what was
                generated past it).

        Raises:
            ChatRequestError: the messages or settings are not accepted (the message says
                what is).
        """
        if not isinstance(temperature, int | float) or not 0 <= float(temperature) <= 2:
            raise ChatRequestError(f"temperature must be a number from 0 to 2, got {temperature!r}")
        if not isinstance(n, int) or not 1 <= n <= 64:
            raise ChatRequestError(f"n must be an integer from 1 to 64, got {n!r}")
        prompt = self.prompt_ids(messages, max_tokens)
        generator = torch.Generator().manual_seed(int(seed) % 2**63)
        with self.lm.lock:
            samples = sample_replies(
                self.lm.model,
                [prompt] * n,
                int(max_tokens),
                self.stop_ids,
                self.lm.pad_id,
                # (Dividing logits by a tiny temperature overflows: that is greedy.)
                temperature=float(temperature) if temperature >= 1e-5 else 0.0,
                generator=generator,
            )
        out = []
        for sample in samples:
            reply_ids = [i for i in sample.ids if i not in self.stop_ids]
            text = self.lm.decode(reply_ids).strip()
            reason = "stop" if sample.stopped else "length"
            cut = min((text.find(s) for s in stop if s and s in text), default=-1)
            if cut >= 0:
                text, reason = text[:cut].rstrip(), "stop"
            out.append(Completion(text, reason, list(sample.ids), list(sample.logprobs)))
        return out, len(prompt)
