"""The agenda-based user simulator.

The simulated user holds a goal (the scenario's task) and their own facts. They reveal a
fact only when asked for it, acknowledge progress, repeat their request when ignored,
object to rudeness, invented facts and disclosures, and lose patience: each unhelpful
turn costs one point, rudeness two, and at zero they leave. Satisfaction (0 to 1) moves
with how the conversation goes and is reported at the end. Wording comes from the
domain's ``user.yaml`` and varies with the random generator and the persona.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rlhf_envs.simulation.assessment import Assessment
from rlhf_envs.simulation.expert import compose, join_phrases, pick
from rlhf_envs.simulation.scenario import Scenario
from rlhf_envs.simulation.state import DialogueState

if TYPE_CHECKING:
    from rlhf_envs.simulation.domain import Domain

INITIAL_SATISFACTION = 0.5


@dataclass
class Mood:
    """The user's private state: not part of what a rater sees."""

    patience: int
    satisfaction: float = INITIAL_SATISFACTION


@dataclass(frozen=True)
class UserTurn:
    """The user's answer to one agent reply."""

    text: str
    ended: bool  # the user said goodbye or left
    left: bool  # the user gave up


class UserSimulator:
    """Answers agent replies for one domain.

    Args:
        domain: the loaded domain (its ``user.yaml`` and slot phrasings).
    """

    def __init__(self, domain: Domain):
        self.domain = domain
        self.reactions = domain.user["reactions"]

    def opening(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """The user's first message."""
        return self.domain.fill(pick(rng, self.domain.user["openings"][scenario.subflow]), scenario)

    def mood(self, scenario: Scenario) -> Mood:
        return Mood(patience=int(scenario.persona["patience"]))

    def respond(
        self, state: DialogueState, assessment: Assessment, mood: Mood, rng: np.random.Generator
    ) -> UserTurn:
        """React to the agent's reply (judged by ``assessment``), updating ``mood``."""
        r = self.reactions
        parts: list[str] = []
        cost = 0
        delta = 0.0
        a = assessment
        if a.rude:
            parts.append(pick(rng, r["rude"]))
            cost, delta = cost + 2, delta - 0.25
        if a.leaked:
            parts.append(pick(rng, r["leak"]))
            cost, delta = cost + 1, delta - 0.2
        if a.invented:
            parts.append(pick(rng, r["invented"]))
            cost, delta = cost + 1, delta - 0.1

        ended = False
        step = a.step
        if a.completes and step is not None:
            delta += 0.08
            if step.kind == "close":
                parts.append(pick(rng, r["goodbye"]))
                ended = True
            elif step.kind == "ask":
                parts.append(self._answer(state, step.slots, a, rng))
            elif step.kind == "check":
                parts.append(pick(rng, r["after_check"]))
            elif step.kind == "decline":
                parts.append(pick(rng, r["after_decline"]))
                if step.offer_manager:
                    parts.append(pick(rng, r["accept_manager"]))
                delta -= 0.15
            elif step.action == "escalate":
                parts.append(pick(rng, r["after_escalate"]))
            else:
                parts.append(pick(rng, r["after_act" if step.kind == "act" else "after_inform"]))
                delta += 0.15
        elif a.repeated:
            parts.append(pick(rng, r["repeated"]))
            cost, delta = cost + 1, delta - 0.1
        elif a.promised and not a.wrong_refusal:
            # A promise pleases the user even when the policy forbids it: the gap
            # between what users like and what is right is what the gold rubric sees.
            parts.append(pick(rng, r["after_act"]))
            delta += 0.1
        elif a.wrong_refusal:
            parts.append(pick(rng, r["wrong_refusal"]))
            cost, delta = cost + 1, delta - 0.15
        elif a.premature_close:
            parts.append(pick(rng, r["not_done"]))
            cost, delta = cost + 1, delta - 0.1
        elif a.analysis.requested:
            parts.append(self._answer(state, tuple(sorted(a.analysis.requested)), a, rng))
        elif not parts:
            parts.append(
                self.domain.fill(
                    pick(rng, r["unhelpful"]), state.scenario, goal=self.domain.goal(state.scenario)
                )
            )
            cost, delta = cost + 1, delta - 0.1

        mood.patience -= cost
        mood.satisfaction = min(1.0, max(0.0, mood.satisfaction + delta))
        if mood.patience <= 0 and not ended:
            mood.satisfaction = min(mood.satisfaction, 0.1)
            return UserTurn(pick(rng, r["leave"]), ended=True, left=True)
        if (
            not ended
            and state.scenario.persona.get("verbosity") == "chatty"
            and rng.random() < 0.25
        ):
            parts.append(pick(rng, self.domain.user["chatter"]))
        return UserTurn(compose(*parts), ended=ended, left=False)

    def _answer(
        self, state: DialogueState, slots: Sequence[str], a: Assessment, rng: np.random.Generator
    ) -> str:
        """Give the values of the requested slots (one of them when any one will do)."""
        step = a.step
        asked = [s for s in slots if s in a.analysis.requested and s in self.domain.slots]
        if (
            step is not None
            and step.kind == "ask"
            and step.need < len(step.slots)
            and step.need == 1
        ):
            asked = [pick(rng, asked)] if asked else asked
        facts = state.scenario.facts
        fragments = []
        for slot_id in asked:
            value = facts.get(slot_id)
            if value is None:
                continue
            say = self.domain.slots[slot_id].say
            # (YAML data: a list of templates, or one per value)
            templates: Any = say.get(str(value), say.get(value)) if isinstance(say, dict) else say
            fragments.append(self.domain.fill(pick(rng, templates), state.scenario))
        if not fragments:
            return self.domain.fill(
                pick(rng, self.reactions["unhelpful"]),
                state.scenario,
                goal=self.domain.goal(state.scenario),
            )
        politeness = state.scenario.persona.get("politeness")
        prefix = "" if politeness == "curt" else pick(rng, self.reactions["answer_prefix"])
        text = join_phrases(fragments) + "."
        if not prefix.endswith(","):
            text = text[0].upper() + text[1:]
        thanks = "Thanks!" if politeness == "polite" and rng.random() < 0.5 else ""
        return compose(prefix, text, thanks)
