"""Expert transcripts: the demonstrations a reference language model is fine-tuned on.

The scripted expert plays whole conversations against the user simulator, as the env
would run them, and the transcripts are the supervised data of the "initialise the
policy" step of RLHF. Everything is drawn from one seed, so a corpus is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rlhf_envs.dialogue import MAX_TURNS, Turn
from rlhf_envs.simulation.conversation import Conversation
from rlhf_envs.simulation.domain import get_domain
from rlhf_envs.simulation.expert import expert_reply


def expert_transcript(domain_name: str, rng: np.random.Generator) -> tuple[Turn, ...]:
    """One conversation of the scripted expert with the simulated user of a domain."""
    conversation = Conversation(get_domain(domain_name), rng)
    for _ in range(MAX_TURNS):
        if conversation.over:
            break
        conversation.turn(expert_reply(conversation.state, rng))
    return conversation.state.history


def expert_transcripts(
    domains: Sequence[str], episodes: int, seed: int = 0
) -> Iterator[tuple[Turn, ...]]:
    """``episodes`` expert conversations, taking the domains in turn, all from ``seed``."""
    if not domains:
        raise ValueError("expert_transcripts needs at least one domain")
    rng = np.random.default_rng(seed)
    for i in range(int(episodes)):
        yield expert_transcript(domains[i % len(domains)], rng)
