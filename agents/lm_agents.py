"""Language-model agents for the text interface: a local model folder or a chat endpoint.

Both read the observation (the transcript, ``Role: text`` lines ending ``"Agent:"``),
turn it into chat messages after a system prompt written from the domain's policy book
(:func:`rlhf_envs.domains.instructions.agent_instructions`), and send back the model's
reply as the action:

- :class:`LocalLMAgent` (``hf:PATH`` in ``rlhf-envs compare``): any Hugging Face causal LM
  folder, run in process (its chat template if it has one, the ``Role: text`` format
  otherwise; see :mod:`rlhf_envs.lm.chat`);
- :class:`EndpointLMAgent` (``openai:MODEL@URL``): any OpenAI-compatible
  chat-completions endpoint (``rlhf-envs serve-lm``, vLLM, a hosted API), with a key from
  an environment variable, timeouts, and retries with backoff.

The same folder served by ``rlhf-envs serve-lm`` and run in process gives the same
replies: both build the prompt with :class:`~rlhf_envs.lm.chat.ChatModel` and draw with
the same seed (the agent's seed, the episode count and the transcript).

A model's reply is made acceptable to the text interface, not refused: characters outside
its charset become ``?``, a reply longer than the limit is cut, and an empty one is sent
as ``"..."`` (a turn the rubric scores as saying nothing).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from rlhf_envs.dialogue import AGENT_PREFIX, ROLES, parse_transcript
from rlhf_envs.domains.instructions import agent_instructions
from rlhf_envs.interfaces.text import REPLY_CHARSET, UNKNOWN_CHARACTER
from rlhf_envs.lm.chat import ChatModel, chat_messages
from rlhf_envs.words import stable_hash

EMPTY_REPLY = "..."
_TURN_START = re.compile(rf"^(?:{'|'.join(ROLES.values())}):", re.MULTILINE)
DEFAULT_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class LMEndpointError(RuntimeError):
    """A chat endpoint could not be reached or gave no usable answer (the URL and why)."""


class _ChatAgent:
    """What both LM agents share: observation -> messages, reply -> valid action.

    Args:
        name: how the leaderboard calls it.
        max_tokens: the longest reply, in tokens.
        temperature: sampling temperature (0 = greedy).
        instructions: whether a system prompt from the policy book comes first.
        seed: mixed with the episode count and the transcript into each request's seed.
    """

    deterministic = False

    def __init__(
        self,
        name: str,
        max_tokens: int = 64,
        temperature: float = 1.0,
        instructions: bool = True,
        seed: int = 0,
    ):
        if int(max_tokens) < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        if not 0 <= float(temperature) <= 2:
            raise ValueError(f"temperature must be from 0 to 2, got {temperature}")
        self.name, self.max_tokens, self.temperature = name, int(max_tokens), float(temperature)
        self.instructions, self.seed = bool(instructions), int(seed)
        self._episodes = -1
        self._instructions_of: dict[str, str] = {}

    def reset(self) -> None:
        """Start of an episode (the count is part of each request's seed, so tries at the
        same scenario draw different replies)."""
        self._episodes += 1

    def messages(self, obs: str, env: gym.Env) -> list[dict[str, str]]:
        """The chat messages for the reply ``obs`` asks for."""
        if not isinstance(obs, str):
            raise TypeError(
                f"{self.name} acts on the text interface (a transcript string); got "
                f"{type(obs).__name__}: use an RLHF-*Text-v0 id"
            )
        transcript = obs.rstrip().removesuffix(AGENT_PREFIX)
        if len(obs) >= env.unwrapped.interface.max_context_chars:
            # The oldest text was cut, mid-turn: start at the first whole turn, so a cut
            # agent or system line is never read as the user speaking.
            first = _TURN_START.search(transcript)
            transcript = transcript[first.start() :] if first else transcript
        instructions = None
        if self.instructions:
            domain = env.unwrapped.domain
            if domain.name not in self._instructions_of:
                self._instructions_of[domain.name] = agent_instructions(domain)
            instructions = self._instructions_of[domain.name]
        return chat_messages(parse_transcript(transcript), instructions)

    def request_seed(self, obs: str) -> int:
        return stable_hash(obs, stable_hash(str(max(self._episodes, 0)), self.seed))

    def reply(self, messages: list[dict[str, str]], seed: int) -> str:
        raise NotImplementedError

    def act(self, obs: Any, env: gym.Env) -> str:
        text = self.reply(self.messages(obs, env), self.request_seed(obs))
        return valid_reply(text, env.unwrapped.interface.max_reply_chars)


def valid_reply(text: str, max_chars: int) -> str:
    """``text`` as the text interface accepts it (see the module docstring)."""
    text = "".join(c if c in REPLY_CHARSET else UNKNOWN_CHARACTER for c in text).strip()
    return text[:max_chars].strip() or EMPTY_REPLY


class LocalLMAgent(_ChatAgent):
    """A local Hugging Face causal LM folder writing the agent's replies (``hf:PATH``).

    Args:
        path: the model folder (``config.json``, safetensors weights, tokenizer files).
        name: how the leaderboard calls it (default ``hf:PATH``).
        max_tokens, temperature, instructions, seed: as :class:`_ChatAgent`.
    """

    def __init__(self, path: str, name: str | None = None, **settings: Any):
        super().__init__(name or f"hf:{path}", **settings)
        self.model = ChatModel(path)

    def reply(self, messages: list[dict[str, str]], seed: int) -> str:
        completions, _ = self.model.complete(
            messages, max_tokens=self.max_tokens, temperature=self.temperature, seed=seed
        )
        return completions[0].text


def parse_endpoint(spec: str) -> tuple[str, str]:
    """``MODEL@URL`` -> (model, base URL); a bare ``MODEL`` takes ``OPENAI_BASE_URL`` or
    OpenAI's URL."""
    model, at, url = spec.rpartition("@")
    if not at or not url.startswith(("http://", "https://")):
        model, url = spec, os.environ.get("OPENAI_BASE_URL", DEFAULT_URL)
    if not model:
        raise ValueError(f"openai agent {spec!r}: give MODEL or MODEL@http://HOST:PORT/v1")
    return model, url.rstrip("/")


class EndpointLMAgent(_ChatAgent):
    """An OpenAI-compatible chat-completions endpoint writing the agent's replies
    (``openai:MODEL@URL``).

    Args:
        model: the model name the endpoint serves.
        base_url: the API's base URL (``http://127.0.0.1:8000/v1``); requests go to
            ``BASE/chat/completions``.
        key_env: the environment variable holding the API key (sent as a bearer token
            when set; a local server may need none).
        timeout: seconds to wait for one answer.
        retries: further tries after a failed request (connection refused or reset, a 429
            or a 5xx answer), waiting ``backoff * 2**attempt`` seconds between them; a 4xx
            answer other than 429 (the request itself is wrong) and a timeout (the server
            is still busy with it) are not retried.
        name: how the leaderboard calls it (default ``openai:MODEL@URL``).
        max_tokens, temperature, instructions, seed: as :class:`_ChatAgent`.
    """

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_URL,
        key_env: str = DEFAULT_KEY_ENV,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        name: str | None = None,
        **settings: Any,
    ):
        super().__init__(name or f"openai:{model}@{base_url}", **settings)
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(
                "timeout must be > 0, retries and backoff >= 0; "
                f"got {timeout}, {retries}, {backoff}"
            )
        self.model, self.url = model, f"{base_url.rstrip('/')}/chat/completions"
        self.key_env, self.timeout, self.retries, self.backoff = key_env, timeout, retries, backoff

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:
            return json.loads(answer.read())

    def reply(self, messages: list[dict[str, str]], seed: int) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": seed,
        }
        problem, attempts = "", 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            attempts += 1
            try:
                answer = self._post(body)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                problem = f"HTTP {exc.code}: {detail}"
                if exc.code != 429 and exc.code < 500:
                    break  # the request itself is wrong: asking again cannot help
                continue
            except TimeoutError:
                # A slow server is still generating: asking again would queue more work.
                problem = f"no answer within {self.timeout:g} s"
                break
            except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
                problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
                continue
            except ValueError as exc:  # (a 200 whose body is not JSON)
                raise LMEndpointError(
                    f"{self.url} answered with something not JSON: {exc}"
                ) from exc
            try:
                return str(answer["choices"][0]["message"]["content"] or "")
            except (KeyError, IndexError, TypeError) as exc:
                raise LMEndpointError(
                    f"{self.url} answered without choices[0].message.content: {str(answer)[:300]}"
                ) from exc
        tries = "1 try" if attempts == 1 else f"{attempts} tries"
        raise LMEndpointError(
            f"chat endpoint {self.url} (model {self.model!r}) failed after {tries}: {problem}; "
            "is the server running (`rlhf-envs serve-lm PATH --port PORT`) and the URL right?"
        )
