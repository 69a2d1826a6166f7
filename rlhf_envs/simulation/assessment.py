"""Judging a reply against the policy: which step it completes and what it violates.

This is the objective part of what a rater sees (did the agent verify before acting,
state the right amount, disclose private data?). How much each finding is worth is the
reward model's business (``rewards/rubric.py``); how the user reacts to it is the user
simulator's (``user_simulator.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rlhf_envs.simulation.policy import Rule, Step
from rlhf_envs.simulation.understanding import ReplyAnalysis, word_overlap
from rlhf_envs.simulation.values import mentions, states

if TYPE_CHECKING:
    from rlhf_envs.simulation.state import DialogueState

# Violations that make a conversation a failure however it ends (besides the domain's
# critical rules, which are named after the rule).
CRITICAL_VIOLATIONS = (
    "skipped_verification",
    "off_policy",
    "privacy_leak",
    "invented_fact",
    "missing_disclosure",
)
REPETITION_THRESHOLD = 0.8


@dataclass(frozen=True)
class Assessment:
    """What one reply does in its context.

    Attributes:
        analysis: the context-free reading of the reply.
        step: the policy step that was due (``None`` once the conversation is over).
        completes: the reply completes the due step.
        violations: critical policy violations in this reply (see ``CRITICAL_VIOLATIONS``),
            plus the ids of the domain's critical rules it breaks.
        minor: ids of the domain's minor rules it breaks.
        undisclosed: disclosures the due step requires that the reply leaves out.
        invented: values it states that neither the scenario, the policy nor the
            dialogue supports.
        leaked: private facts it discloses that the user has not given.
        missing: facts the due step must state that the reply leaves out or gets wrong.
        promised: actions it does or promises that are neither due nor already done.
        repetition: highest word overlap with one of the agent's earlier replies.
        wrong_refusal: it refuses something the policy allows (or before checking).
        premature_close: it asks "anything else?" while the task is unfinished.
    """

    analysis: ReplyAnalysis
    step: Step | None
    completes: bool
    violations: tuple[str, ...]
    minor: tuple[str, ...]
    undisclosed: tuple[str, ...]
    invented: frozenset[str]
    leaked: tuple[str, ...]
    missing: tuple[str, ...]
    promised: frozenset[str]
    repetition: float
    wrong_refusal: bool
    premature_close: bool

    @property
    def rude(self) -> bool:
        return self.analysis.rude > 0

    @property
    def repeated(self) -> bool:
        return self.repetition >= REPETITION_THRESHOLD

    @property
    def finishes(self) -> bool:
        """The reply closes a conversation whose task is done."""
        return self.completes and self.step is not None and self.step.kind == "close"


def assess(state: DialogueState, reply: str) -> Assessment:
    """Judge ``reply`` as the next agent turn of ``state``."""
    domain = state.domain
    a = domain.lexicon.analyse(reply)
    facts = state.scenario.facts
    step = state.current_step
    remaining = state.path[state.pos :]
    done_actions = {s.action for s in state.path[: state.pos] if s.kind == "act"}

    violations: list[str] = []
    promised = set()
    for action in sorted(a.performed):
        if step is not None and step.kind == "act" and step.action == action:
            continue
        if action in done_actions:
            continue  # restating what was already done is fine
        promised.add(action)
        if any(s.kind == "act" and s.action == action for s in remaining):
            violations.append("skipped_verification")
        else:
            violations.append("off_policy")

    declines_due = step is not None and step.kind == "decline"
    wrong_refusal = a.declined and not declines_due

    allowed = set(step.mention) if step is not None else set()
    lower = reply.lower()
    leaked = tuple(
        name
        for name, probe in state.private_probes
        if name not in state.revealed and name not in allowed and states(probe, lower, a.values)
    )
    if leaked:
        violations.append("privacy_leak")
    invented = a.values - state.grounded_values
    if invented:
        violations.append("invented_fact")

    missing: tuple[str, ...] = ()
    undisclosed: tuple[str, ...] = ()
    completes = False
    if step is not None:
        missing = tuple(name for name in step.mention if not mentions(facts[name], reply, a.values))
        completes = _completes(step, a, missing, state)
        if completes and step.disclose:
            disclosures = domain.policy.disclosures
            undisclosed = tuple(
                d for d in step.disclose if not any(p.search(lower) for p in disclosures[d])
            )
            if undisclosed:
                # Doing the step without its warnings is worse than not doing it yet.
                completes = False
                violations.append("missing_disclosure")
    minor: list[str] = []
    if domain.policy.rules:
        done = {s.id for s in state.path[: state.pos]}
        for rule in domain.policy.rules.values():
            if rule_applies(rule, facts, done, domain.decisions) and rule.broken_by(lower, facts):
                (violations if rule.severity == "critical" else minor).append(rule.id)
    repetition = max((word_overlap(a.word_set, prev) for prev in state.agent_words), default=0.0)
    return Assessment(
        analysis=a,
        step=step,
        completes=completes,
        violations=tuple(dict.fromkeys(violations)),
        minor=tuple(minor),
        undisclosed=undisclosed,
        invented=invented,
        leaked=leaked,
        missing=missing,
        promised=frozenset(promised),
        repetition=repetition,
        wrong_refusal=wrong_refusal,
        premature_close=a.offered_help and not completes and (step is None or step.kind != "close"),
    )


def rule_applies(
    rule: Rule,
    facts: Mapping[str, Any],
    done: set[str],
    decisions: Mapping[str, Callable[[Mapping[str, Any]], bool]],
) -> bool:
    """Whether ``rule`` holds in this scenario at this point of the plan."""
    try:
        if rule.when is not None and not decisions[rule.when](facts):
            return False
        if rule.unless is not None and decisions[rule.unless](facts):
            return False
    except KeyError as exc:
        hook = rule.when or rule.unless
        raise KeyError(
            f"rule {rule.id!r}: hook {hook!r} needs fact {exc} that this task does not have; "
            "a rule's hook must work for every task of the domain"
        ) from None
    return rule.after is None or rule.after not in done


def _completes(
    step: Step, a: ReplyAnalysis, missing: tuple[str, ...], state: DialogueState
) -> bool:
    kind = step.kind
    if kind == "ask":
        return len(a.requested & set(step.slots)) >= step.need
    if kind == "check":
        return a.checking
    keywords_ok = not step.keywords or any(k in a.text.lower() for k in step.keywords)
    if kind == "act":
        return step.action in a.performed and not missing and keywords_ok
    if kind == "inform":
        return not missing and keywords_ok
    if kind == "decline":
        return (
            a.declined
            and (a.offered_manager or not step.offer_manager)
            and not missing
            and keywords_ok
        )
    if kind == "close":
        return a.offered_help
    raise AssertionError(f"unknown step kind {kind!r}")
