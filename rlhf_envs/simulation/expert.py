"""The scripted expert: writes the policy-correct reply for the step that is due.

It is a baseline, the source of demonstrations for supervised fine-tuning, and the
"correct" candidate of the select interface. Wording varies with the random generator;
content follows the policy book exactly.
"""

from __future__ import annotations

import numpy as np

from rlhf_envs.simulation.policy import Step
from rlhf_envs.simulation.sampling import pick
from rlhf_envs.simulation.state import DialogueState


def join_phrases(phrases: list[str], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return f"{', '.join(phrases[:-1])} {conjunction} {phrases[-1]}"


def opening(state: DialogueState, rng: np.random.Generator) -> str:
    """How the next reply opens: a greeting first, then an acknowledgement of the user."""
    agent = state.domain.agent
    if state.last_event == "start":
        greetings = agent["greetings"]
        return pick(rng, greetings.get(state.scenario.flow, greetings["default"]))
    if state.last_event == "after_complaint":
        return pick(rng, agent["acks"]["after_complaint"])
    return state.domain.fill(pick(rng, agent["acks"][state.last_event]), state.scenario)


def step_text(step: Step, state: DialogueState, rng: np.random.Generator) -> str:
    """The core of a correct reply for ``step`` (without the opening)."""
    domain = state.domain
    if step.say:
        return domain.fill(pick(rng, step.say), state.scenario)
    agent = domain.agent
    if step.kind == "ask":
        slots = list(step.slots)
        if step.need < len(slots):
            if step.need == 1:
                # "your full name or account ID": any one will do.
                return _ask(
                    state, step, join_phrases([domain.slots[s].ask for s in slots], "or"), rng
                )
            chosen = sorted(rng.choice(len(slots), size=step.need, replace=False))
            slots = [slots[i] for i in chosen]
        return _ask(state, step, join_phrases([domain.slots[s].ask for s in slots]), rng)
    if step.kind == "check":
        return pick(rng, agent["check"])
    if step.kind == "close":
        return pick(rng, agent["close"])
    raise AssertionError(f"step {step.id!r} of kind {step.kind!r} needs 'say' templates")


def _ask(state: DialogueState, step: Step, ask: str, rng: np.random.Generator) -> str:
    agent = state.domain.agent
    if step.purpose:
        return pick(rng, agent["ask_with_purpose"]).format(purpose=step.purpose, ask=ask)
    return pick(rng, agent["ask"]).format(ask=ask)


def compose(*parts: str) -> str:
    """Join reply parts with single spaces, skipping empty ones."""
    return " ".join(p for p in parts if p)


def expert_reply(state: DialogueState, rng: np.random.Generator) -> str:
    """The policy-correct reply to ``state`` (empty once the conversation is over)."""
    step = state.current_step
    if step is None:
        return ""
    return compose(opening(state, rng), step_text(step, state, rng))
