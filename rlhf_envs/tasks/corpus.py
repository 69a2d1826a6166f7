"""Expert transcripts: the demonstrations a reference language model is fine-tuned on.

The scripted expert plays whole conversations against the user simulator, as the env
would run them, and the transcripts are the supervised data of the "initialise the
policy" step of RLHF. Everything is drawn from one seed, so a corpus is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from rlhf_envs.rewards.protocol import Turn
from rlhf_envs.tasks.domain import get_domain
from rlhf_envs.tasks.expert import expert_reply
from rlhf_envs.tasks.state import DialogueState
from rlhf_envs.tasks.user_simulator import UserSimulator

MAX_TURNS = 20  # agent turns after which a conversation is cut, as in the registered envs


def expert_transcript(domain_name: str, rng: np.random.Generator) -> tuple[Turn, ...]:
    """One conversation of the scripted expert with the simulated user of a domain."""
    domain = get_domain(domain_name)
    user = UserSimulator(domain)
    scenario = domain.sample_scenario(rng, None)
    state = DialogueState.start(domain, scenario, user.opening(scenario, rng))
    mood = user.mood(scenario)
    for _ in range(MAX_TURNS):
        if state.current_step is None:
            break
        reply = expert_reply(state, rng)
        assessment = state.assess(reply)
        answer = user.respond(state, assessment, mood, rng)
        state = state.after(reply, assessment, answer.text, answer.ended)
    return state.history


def expert_transcripts(domains: Sequence[str], episodes: int, seed: int = 0) -> Iterator[tuple[Turn, ...]]:
    """``episodes`` expert conversations, taking the domains in turn, all from ``seed``."""
    if not domains:
        raise ValueError("expert_transcripts needs at least one domain")
    rng = np.random.default_rng(seed)
    for i in range(int(episodes)):
        yield expert_transcript(domains[i % len(domains)], rng)
