"""An OpenAI-compatible chat-completions server over a local causal LM (``rlhf-envs serve-lm``).

Any client of the chat-completions API (the ``openai`` package, verifiers, the suite's own
``openai:`` agent, curl) can then talk to a model on this machine: the project's
reference LM, an SFT or RL-tuned policy written by ``rlhf-envs train-lm``, or any Hugging
Face causal LM folder. Replies come from :class:`rlhf_envs.lm.chat.ChatModel`, so a
served model answers exactly as it does in process.

Routes:

- ``POST /v1/chat/completions``: ``model``, ``messages`` (roles system, developer, user,
  assistant; string or text-part content), ``max_tokens`` or ``max_completion_tokens``
  (default 64), ``temperature`` (0-2, default 1; 0 = greedy), ``n`` (1-64), ``seed``
  (replies are reproducible from it; without it each request draws anew), ``stop`` (a
  string or up to 4),
  ``logprobs`` (the sampled tokens' log-probabilities), ``stream`` (server-sent events
  in the API's chunk format, ending ``data: [DONE]``; ``stream_options.include_usage``
  adds the usage chunk; the whole reply arrives in one content chunk, since replies are
  generated in a batch). The OpenAI settings the server cannot honour (tools, ``top_p``
  below 1, penalties, ``logit_bias``, more than 0 ``top_logprobs``, a ``response_format``)
  are refused with a 400 naming them; other engines' extras (``top_k``, ...) are ignored.
  ``n`` x ``max_tokens`` is at most 8,192. ``stop`` strings cut the reply after generation
  (``usage`` counts what was generated).
- ``GET /v1/models``: the one model served.
- ``GET /health``: ``{"status": "ok"}``.

Errors use the API's shape (``{"error": {"message", "type", "param", "code"}}``).
With an API key set, every ``/v1`` route needs ``Authorization: Bearer KEY``.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rlhf_envs.lm.chat import ChatModel, ChatRequestError

DEFAULT_MAX_TOKENS = 64
# One request holds the model while it generates: n x max_tokens is bounded so that no
# request can keep the others waiting for long.
MAX_BATCH_TOKENS = 8192
# Settings whose effect the server does not implement, with the value that means "off".
_UNSUPPORTED = {
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "top_logprobs": 0,
    "response_format": None,
}


class APIError(Exception):
    """An error answered in the chat-completions API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def _error(
    status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": None}},
        status_code=status,
    )


def _number(body: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, kind | int):
        raise APIError(400, f"{key} must be a {kind.__name__}, got {value!r}", key)
    return value


def _unsupported(body: dict[str, Any]) -> list[str]:
    bad = []
    for key, off in _UNSUPPORTED.items():
        value = body.get(key)
        if value is None or value == off or value in ([], {}):
            continue
        if key == "top_p" and isinstance(value, int | float) and value >= 1:
            continue
        # The values that ask for plain text replies, as this server gives anyway.
        if (key == "response_format" and value == {"type": "text"}) or (
            key == "tool_choice" and value in ("none", "auto") and not body.get("tools")
        ):
            continue
        bad.append(f"{key}={value!r}")
    return bad


def _token_texts(model: ChatModel, ids: list[int]) -> list[str]:
    """Each generated id as text (only when log-probabilities are asked for)."""
    return [str(model.lm.tokenizer.decode([i])) for i in ids]


def _chunks(answer: dict[str, Any], usage: bool) -> Iterator[str]:
    """A finished answer as the API's stream: per choice a role chunk, a content chunk and
    a finish chunk; then the usage chunk when asked for; then ``[DONE]``."""
    head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    for choice in answer["choices"]:
        i, text = choice["index"], choice["message"]["content"]
        yield event(
            [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        content = {"index": i, "delta": {"content": text}, "finish_reason": None}
        if choice["logprobs"] is not None:
            content["logprobs"] = choice["logprobs"]
        yield event([content])
        yield event([{"index": i, "delta": {}, "finish_reason": choice["finish_reason"]}])
    if usage:
        yield event([], usage=answer["usage"])
    yield "data: [DONE]\n\n"


def create_app(
    model: ChatModel, model_name: str | None = None, api_key: str | None = None
) -> FastAPI:
    """The FastAPI app serving ``model`` under ``model_name`` (default: its folder's name).

    Args:
        model: the chat model.
        model_name: what clients pass as ``model``; requests for another name get a 404.
        api_key: when given, ``/v1`` routes need ``Authorization: Bearer <api_key>``.
    """
    name = model_name or model.name
    app = FastAPI(title=f"rlhf-envs serve-lm: {name}")

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.param, exc.kind)

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> JSONResponse:
        return _error(
            500, f"the server failed to answer: {type(exc).__name__}: {exc}", kind="server_error"
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, f"the request is not valid JSON of the expected shape: {exc.errors()}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(
            exc.status_code,
            str(exc.detail),
            kind="not_found_error" if exc.status_code == 404 else "invalid_request_error",
        )

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return _error(
                    401,
                    "a valid API key is needed: send Authorization: Bearer KEY",
                    kind="authentication_error",
                )
        return await call_next(request)

    # Async: answered on the event loop, never queued behind replies being generated.
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "rlhf-envs"}],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict[str, Any]) -> Any:
        # A sync route: FastAPI runs it in a worker thread; the model's lock orders them.
        if body.get("model") != name:
            raise APIError(
                404,
                f"model {body.get('model')!r} is not served here; this server serves {name!r}",
                "model",
                "not_found_error",
            )
        bad = _unsupported(body)
        if bad:
            raise APIError(
                400,
                f"not supported by this server: {', '.join(bad)}; it answers with whole "
                "(non-streamed) text replies and samples with temperature only",
                bad[0].split("=")[0],
            )
        max_tokens = _number(body, "max_completion_tokens", None, int)
        if max_tokens is None:
            max_tokens = _number(body, "max_tokens", DEFAULT_MAX_TOKENS, int)
        temperature = _number(body, "temperature", 1.0, float)
        n = _number(body, "n", 1, int)
        # Without a seed each request draws anew (n rollouts of a prompt must differ);
        # with one, the same request gives the same replies.
        seed = _number(body, "seed", None, int)
        if seed is None:
            seed = secrets.randbits(63)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise APIError(
                400,
                f"stop must be a string or a list of at most 4 strings, got {body.get('stop')!r}",
                "stop",
            )
        if isinstance(n, int) and isinstance(max_tokens, int) and n * max_tokens > MAX_BATCH_TOKENS:
            raise APIError(
                400,
                f"n x max_tokens is {n * max_tokens}; this server generates at most "
                f"{MAX_BATCH_TOKENS} tokens per request",
                "n",
            )
        want_logprobs = bool(body.get("logprobs"))
        try:
            completions, prompt_tokens = model.complete(
                body.get("messages"),  # type: ignore[arg-type]  # (checked by split_messages)
                max_tokens=max_tokens,
                temperature=temperature,
                n=n,
                seed=seed,
                stop=stop,
            )
        except ChatRequestError as exc:
            raise APIError(400, str(exc)) from exc
        choices = []
        for i, c in enumerate(completions):
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
            if want_logprobs:
                choice["logprobs"] = {
                    "content": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                        for t, lp in zip(_token_texts(model, c.ids), c.logprobs, strict=True)
                    ]
                }
            choices.append(choice)
        completion_tokens = sum(len(c.ids) for c in completions)
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if body.get("stream"):
            options = body.get("stream_options") or {}
            usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return StreamingResponse(_chunks(answer, usage), media_type="text/event-stream")
        return answer

    return app
