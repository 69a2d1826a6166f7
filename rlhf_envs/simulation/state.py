"""The dialogue state: the transcript so far and how far along the policy it is.

Everything here follows from the scenario and the visible transcript (which steps were
completed, what the user has disclosed), so a rater could work it out too; it is kept
up to date rather than re-derived so that judging a reply costs microseconds. The
state is immutable: each turn makes a new one, and an ``Exchange`` keeps the state its
reply was judged in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rlhf_envs.dialogue import Turn
from rlhf_envs.simulation.assessment import Assessment, assess
from rlhf_envs.simulation.policy import Step
from rlhf_envs.simulation.scenario import Scenario
from rlhf_envs.simulation.values import extract_values, fact_probe, states

if TYPE_CHECKING:
    from rlhf_envs.simulation.domain import Domain

T = TypeVar("T")
_MISSING = object()

# What the previous agent turn achieved; the next reply opens accordingly
# ("Thanks, Crystal." after an answer, "Sorry about that." after a complaint).
EVENT_OF_KIND = {
    "ask": "after_answer",
    "act": "after_thanks",
    "inform": "after_thanks",
    "decline": "after_decline",
    "check": "after_check",
    "close": "after_thanks",
}


@dataclass(frozen=True)
class DialogueState:
    """A conversation in progress.

    Attributes:
        domain: the domain (policy book, language, templates).
        scenario: the episode's case.
        path: the policy steps this scenario requires, branches resolved.
        pos: index in ``path`` of the step that is due (``len(path)`` when all are done).
        history: the transcript.
        agent_words: word sets of the agent's replies (for repetition checks).
        revealed: private facts disclosed by the user or the company's systems.
        seen_values: fact-like values stated by the user or the systems.
        violations: critical violations so far.
        last_event: what the previous agent turn achieved (see ``EVENT_OF_KIND``).
        ended: the user has left or said goodbye.
    """

    domain: Domain
    scenario: Scenario
    path: tuple[Step, ...]
    pos: int = 0
    history: tuple[Turn, ...] = ()
    agent_words: tuple[frozenset[str], ...] = ()
    revealed: frozenset[str] = frozenset()
    seen_values: frozenset[str] = frozenset()
    violations: tuple[str, ...] = ()
    last_event: str = "start"
    ended: bool = False
    _assessed: dict[str, Assessment] = field(default_factory=dict, compare=False, repr=False)
    # This state's own derived values (its grounded values), computed when first needed.
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # Shared by every state of one episode (``replace`` keeps the same dict): facts that
    # are costly to derive and never change, computed when first needed.
    _episode: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def start(cls, domain: Domain, scenario: Scenario, opening: str) -> DialogueState:
        """The state after the user's opening message."""
        path = domain.policy.subflows[scenario.subflow].path(scenario.facts, domain.decisions)
        state = cls(domain=domain, scenario=scenario, path=path)
        return state._heard((Turn("user", opening),))

    @property
    def current_step(self) -> Step | None:
        """The step due next, or ``None`` when the conversation is over."""
        if self.ended or self.pos >= len(self.path):
            return None
        return self.path[self.pos]

    def episode_fact(self, name: str, derive: Callable[[DialogueState], T]) -> T:
        """``derive(self)``, computed once per episode: for facts that depend only on the
        scenario and its path (the candidates' options, the grounded values)."""
        found = self._episode.get(name, _MISSING)
        if found is _MISSING:
            found = self._episode[name] = derive(self)
        return found

    @property
    def private_facts(self) -> tuple[tuple[str, Any], ...]:
        """The domain's private facts that this scenario has, with their values, in the
        domain's order (the same for the whole episode)."""
        return self.episode_fact("private_facts", _private_facts)

    @property
    def private_probes(self) -> tuple[tuple[str, tuple[frozenset[str], str]], ...]:
        """:attr:`private_facts` as ``(name, fact_probe(value))``, for finding them in
        texts (the same for the whole episode)."""
        return self.episode_fact(
            "private_probes",
            lambda state: tuple(
                (name, fact_probe(str(value))) for name, value in state.private_facts
            ),
        )

    @property
    def grounded_values(self) -> frozenset[str]:
        """Values a reply may state: the scenario's, the policy's and the dialogue's."""
        found = self._memo.get("grounded_values")
        if found is None:
            base = self.episode_fact(
                "base_values", lambda state: state.domain.grounded_values(state.scenario)
            )
            found = self._memo["grounded_values"] = base | self.seen_values
        return found

    @property
    def success(self) -> bool:
        """Every required step done, none of them by breaking the policy."""
        return self.pos >= len(self.path) and not self.violations

    @property
    def steps_done(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.path[: self.pos])

    @property
    def steps_missed(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.path[self.pos :])

    def assess(self, reply: str) -> Assessment:
        """Judge ``reply`` as the agent's next turn (cached per reply)."""
        found = self._assessed.get(reply)
        if found is None:
            found = self._assessed[reply] = assess(self, reply)
        return found

    def after(
        self, reply: str, assessment: Assessment, user_text: str, ended: bool
    ) -> DialogueState:
        """The state after the agent's ``reply`` and the user's answer ``user_text``.

        When the reply completed a step with a system action, its result line follows.
        """
        step = assessment.step
        turns = [Turn("agent", reply), Turn("user", user_text)]
        if assessment.completes and step is not None and step.system and not ended:
            turns.append(Turn("system", self.domain.system_line(step, self.scenario)))
        return self._heard(
            tuple(turns),
            pos=self.pos + int(assessment.completes),
            agent_words=self.agent_words + (assessment.analysis.word_set,),
            violations=self.violations + assessment.violations,
            last_event=EVENT_OF_KIND[step.kind]
            if assessment.completes and step
            else "after_complaint",
            ended=ended,
        )

    def _heard(self, turns: tuple[Turn, ...], **changes: Any) -> DialogueState:
        """A new state with ``turns`` added to the transcript (noting what the user and
        the systems disclosed) and the other ``changes`` made."""
        seen = self.seen_values
        revealed = self.revealed
        probes = self.private_probes
        for turn in turns:
            if turn.role == "agent":
                continue
            stated = extract_values(turn.text)
            if not stated <= seen:  # (unchanged sets stay the same object: cheap cache keys)
                seen = seen | stated
            lower = turn.text.lower()
            disclosed = [
                name
                for name, probe in probes
                if name not in revealed and states(probe, lower, stated)
            ]
            if disclosed:
                revealed = revealed.union(disclosed)
        # (what dataclasses.replace gives, without running the frozen __init__ again)
        new = object.__new__(DialogueState)
        fields = new.__dict__
        fields.update(self.__dict__)
        fields.update(
            history=self.history + turns,
            seen_values=seen,
            revealed=revealed,
            _assessed={},
            _memo={},
            **changes,
        )
        return new

    def summary(self) -> dict[str, Any]:
        """How the episode is going, as reported in ``info``."""
        return {
            "success": self.success,
            "steps_done": self.steps_done,
            "steps_missed": self.steps_missed,
            "violations": self.violations,
        }


def _private_facts(state: DialogueState) -> tuple[tuple[str, Any], ...]:
    """The scenario's private facts that have a value, with it."""
    facts = state.scenario.facts
    return tuple(
        (name, facts[name]) for name in state.domain.private_facts if facts.get(name) is not None
    )
