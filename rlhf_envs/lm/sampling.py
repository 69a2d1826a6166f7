"""Batched sampling of replies from a causal LM, with the log-probability of each token.

Used by multi-turn rollouts (:mod:`rlhf_envs.rollouts`), where many conversations at
different lengths are continued at once: prompts are left-padded, position ids count
real tokens only and the key/value cache grows one token per step, so each row gets the
numbers it would get alone. The log-probabilities are those of the distribution the
tokens were drawn from (``softmax(logits / temperature)``), which is also what TRL's
GRPO computes again in its loss; a fresh forward pass over prompt + reply
(:func:`rlhf_envs.lm.reference.continuation_logprobs`) gives them back (tests check to
1e-4).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from rlhf_envs.lm.reference import cache_keyword_of, cache_of, left_padded, position_ids


@dataclass
class SampledReply:
    """One sampled reply: its token ids (the stop token included when one was drawn),
    the log-probability of each, and whether a stop token ended it."""

    ids: list[int]
    logprobs: list[float]
    stopped: bool


@torch.no_grad()
def sample_replies(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_ids: Collection[int],
    pad_id: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[SampledReply]:
    """Sample one reply after each prompt (batched; prompts may differ in length).

    Args:
        model: a ``transformers`` causal LM (put in eval mode by the caller).
        prompts: token ids, each no longer than the model's positions minus
            ``max_new_tokens``.
        max_new_tokens: the length cap of a reply.
        stop_ids: tokens that end a reply (kept as its last token).
        pad_id: the padding id of the left-padded batch (never attended to).
        temperature: the sampling temperature; 0 picks the most likely token (greedy
            decoding; the log-probabilities are then those of ``softmax(logits)``).
        generator: the random source (a seeded ``torch.Generator`` for reproducibility).
    """
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    n = len(prompts)
    ids, mask = left_padded(prompts, pad_id)
    stops = torch.as_tensor(sorted(int(s) for s in stop_ids), dtype=torch.long)
    keyword = cache_keyword_of(model)
    out: list[SampledReply] = [SampledReply([], [], False) for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    step_ids, step_positions, cache = ids, position_ids(mask), None
    for _ in range(int(max_new_tokens)):
        result = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_positions,
            use_cache=True,
            **{keyword: cache},
        )
        cache = cache_of(result)
        logits = result.logits[:, -1, :].float()
        if temperature == 0:
            logp = torch.log_softmax(logits, dim=-1)
            token = logp.argmax(dim=-1)
        else:
            logp = torch.log_softmax(logits / float(temperature), dim=-1)
            token = torch.multinomial(logp.exp(), 1, generator=generator)[:, 0]
        chosen = logp.gather(-1, token[:, None])[:, 0]
        for i in range(n):
            if not done[i]:
                out[i].ids.append(int(token[i]))
                out[i].logprobs.append(float(chosen[i]))
        stopped = torch.isin(token, stops)
        for i in torch.nonzero(stopped & ~done).flatten().tolist():
            out[i].stopped = True
        done |= stopped
        if bool(done.all()):
            break
        step_ids = token[:, None]
        step_positions = step_positions[:, -1:] + 1
        mask = torch.cat((mask, torch.ones((n, 1), dtype=torch.long)), dim=1)
    return out
