"""The default harness of the ``rlhf-verifiers`` seats: one chat-completions call per turn,
in process, without streaming.

verifiers' own ``null`` harness runs a script under ``uv`` for every turn (a fresh Python
process, and packages fetched on its first run) and always streams. A dialogue turn is
one reply to the whole conversation, so this harness makes that one call itself, through
verifiers' interception endpoint (which records the turn and forwards it to the model).
"""

from __future__ import annotations

from typing import Any

import verifiers.v1 as vf
from openai import AsyncOpenAI
from verifiers.v1.dialects.chat import message_to_wire


class ChatHarness(vf.Harness[vf.HarnessConfig]):
    """One model reply per segment: the system prompt, then the conversation so far."""

    APPENDS_SYSTEM_PROMPT = True  # the policy book as the system message
    SUPPORTS_RESUME = True  # each turn relaunches on the whole conversation
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: Any,
        trace: Any,
        runtime: Any,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: Any,
        tool_interception_url: str | None = None,
    ) -> vf.ProgramResult:
        system, prompt = self.resolve_prompt(data)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt:
            messages += [message_to_wire(m) for m in prompt]
        # Two retries: a transient failure should not cost the whole conversation.
        async with AsyncOpenAI(base_url=endpoint, api_key=secret, max_retries=2) as client:
            await client.chat.completions.create(model=ctx.model, messages=messages)
        return vf.ProgramResult(exit_code=0, stdout="", stderr="")
