"""Candidate replies for the select interface: the correct one and named distractors.

Every turn proposes the expert's reply plus distractors of named failure types, drawn
without repetition from those that make sense in the context, in an order shuffled by
the env's random generator. The labels are for tests and analysis only: nothing that
scores or answers a reply ever sees them.

Failure types:

- ``rude``: the right content said rudely, or just rudeness;
- ``invented_fact``: a made-up order, amount or date, or the right act with wrong figures;
- ``off_policy``: a promise the policy forbids here (a refund outside the window), or a
  refusal of what it allows;
- ``skipped_verification``: the final action before the checks it requires;
- ``privacy_leak``: the right content plus a private detail the user has not given;
- ``verbose``: the right content buried in filler;
- ``evasive`` and ``off_topic``: no progress at all;
- ``repeated``: the agent's previous reply again;
- ``missing_disclosure`` (domains whose steps require disclosures): the right act with
  its risk warning or safety-netting sentence left out;
- one type per rule of the domain that ``agent.yaml`` gives distractor phrasings for
  (``guaranteed_return``, ``missed_red_flag``, ...), proposed only where the rule applies.

``Domain.failure_types`` lists a domain's types.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlhf_envs.simulation.assessment import rule_applies
from rlhf_envs.simulation.domain import CORRECT, template_fields
from rlhf_envs.simulation.domain import FAILURE_TYPES as FAILURE_TYPES  # (re-exported)
from rlhf_envs.simulation.expert import compose, expert_reply, opening, pick
from rlhf_envs.simulation.policy import Step
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.simulation.understanding import SENTENCE_RE
from rlhf_envs.simulation.values import extract_values


@dataclass(frozen=True)
class Candidate:
    """A proposed reply and how it was made (``"correct"`` or a failure type)."""

    text: str
    label: str


def propose(state: DialogueState, k: int, rng: np.random.Generator) -> list[Candidate]:
    """``k`` candidates for the due step: one correct, ``k - 1`` distractors, shuffled.

    Distractor texts are distinct as long as the context allows; with a large ``k`` in a
    small domain, no-progress replies may repeat.
    """
    correct = expert_reply(state, rng)
    chosen = [Candidate(correct, CORRECT)]
    texts = {correct}
    types = state.domain.failure_types
    for index in rng.permutation(len(types)).tolist():  # (Python ints: cheaper to use)
        if len(chosen) == k:
            break
        label = types[index]
        text = _MAKERS.get(label, _rule_breach)(state, correct, rng, label)
        if text and text not in texts:
            chosen.append(Candidate(text, label))
            texts.add(text)
    # Few types apply (e.g. the first turn): fill up with more no-progress replies.
    for attempt in range(50):
        if len(chosen) == k:
            break
        label = _FILLERS[attempt % len(_FILLERS)]
        text = _MAKERS[label](state, correct, rng, label)
        if text and (text not in texts or attempt >= 40):
            chosen.append(Candidate(text, label))
            texts.add(text)
    order = rng.permutation(len(chosen)).tolist()
    return [chosen[i] for i in order]


def perturb(value: object, rng: np.random.Generator, avoid: frozenset[str] = frozenset()) -> str:
    """A plausible but wrong version of a value: another date, amount or number, none of
    whose normalised values is in ``avoid`` (the values the context supports)."""
    for _ in range(100):
        fake = _perturb_once(str(value), rng)
        if not extract_values(fake) & avoid:
            return fake
    raise RuntimeError(f"could not invent a value unlike {value!r}")


def _perturb_once(text: str, rng: np.random.Generator) -> str:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        shift = int(rng.integers(3, 90)) * (1 if rng.random() < 0.5 else -1)
        return (dt.date.fromisoformat(text) + dt.timedelta(days=shift)).isoformat()
    money = re.fullmatch(r"\$(\d+)", text)
    if money:
        amount = int(money.group(1))
        other = amount
        while other == amount:
            other = int(rng.integers(max(1, amount // 3), amount * 2 + 12))
        return f"${other}"

    def new_digits(match: re.Match[str]) -> str:
        digits = match.group(0)
        while True:
            fresh = str(int(rng.integers(1, 10))) + "".join(
                map(str, rng.integers(0, 10, len(digits) - 1).tolist())
            )
            if fresh != digits:
                return fresh

    return re.sub(r"\d+", new_digits, text)


def _due_step(state: DialogueState) -> Step:
    """The step the candidates are for (proposed only while one is due)."""
    step = state.current_step
    assert step is not None, "candidates are proposed only while a step is due"
    return step


def _rude(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    d = state.domain.agent["distractors"]
    if rng.random() < 0.6:
        return pick(rng, d["rude"]).format(core=correct)
    return pick(rng, d["rude_alone"])


def _verbose(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    fillers = state.domain.agent["distractors"]["filler"]
    picked = rng.choice(len(fillers), size=min(3, len(fillers)), replace=False)
    return compose(correct, *(fillers[i] for i in picked))


def _evasive(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    return pick(rng, state.domain.agent["distractors"]["evasive"])


def _off_topic(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    return pick(rng, state.domain.agent["distractors"]["off_topic"])


def _repeated(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    for turn in reversed(state.history):
        if turn.role == "agent":
            return turn.text if turn.text != correct else None
    return None


def _privacy_leak(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    step = _due_step(state)
    facts = state.scenario.facts
    options = [
        name
        for name in state.domain.private_facts
        if name not in state.revealed and name not in step.mention and facts.get(name) is not None
    ]
    if not options:
        return None
    name = pick(rng, options)
    slot = state.domain.slots.get(name)
    slot_name = slot.name if slot else name.replace("_", " ")
    return pick(rng, state.domain.agent["distractors"]["leak"]).format(
        core=correct, name=slot_name, value=facts[name]
    )


def _invented_fact(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    facts = state.scenario.facts
    step = _due_step(state)
    stated = [
        name
        for name in step.mention
        if extract_values(str(facts[name])) and str(facts[name]) in correct
    ]
    if stated and rng.random() < 0.5:
        text = correct
        for name in stated:
            text = text.replace(str(facts[name]), perturb(facts[name], rng, state.grounded_values))
        return text
    usable = _usable_templates(state, "invented")
    if not usable:
        return None
    template = pick(rng, usable)
    fields = {"core": correct}
    for field in template_fields(template):
        if field.startswith("fake_"):
            fields[field] = perturb(facts[field[len("fake_") :]], rng, state.grounded_values)
    return template.format(**fields)


def _skipped_verification(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    # The next action of the path, done now although checks come before it.
    for step in state.path[state.pos + 1 :]:
        if step.kind == "act":
            return compose(
                opening(state, rng), state.domain.fill(pick(rng, step.say), state.scenario)
            )
        if step.kind == "close":
            return None
    return None


def _off_policy(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    domain = state.domain
    other_branch, promises = state.episode_fact("off_policy_options", _off_policy_options)
    if other_branch and (rng.random() < 0.6 or not promises):
        text = domain.fill(pick(rng, pick(rng, other_branch).say), state.scenario)
    elif promises:
        text = pick(rng, promises)
    else:
        return None
    return compose(opening(state, rng), text)


def _off_policy_options(state: DialogueState) -> tuple[list[Step], list[str]]:
    # The other branch's actions and the promises of actions not on the path: the same
    # for the whole episode.
    domain = state.domain
    in_path = {s.id for s in state.path}
    path_actions = {s.action for s in state.path if s.kind == "act"}
    other_branch = [
        s
        for s in domain.policy.subflows[state.scenario.subflow].steps()
        if s.id not in in_path and s.kind in ("act", "decline") and s.action not in path_actions
    ]
    promises = [
        spec["promise"]
        for action, spec in domain.actions.items()
        if action not in path_actions and "promise" in spec
    ]
    return other_branch, promises


def _missing_disclosure(
    state: DialogueState, correct: str, rng: np.random.Generator, label: str | None = None
) -> str | None:
    # The correct reply without the sentences that make its disclosures.
    step = _due_step(state)
    if not step.disclose:
        return None
    patterns = [p for d in step.disclose for p in state.domain.policy.disclosures[d]]
    kept = [s for s in SENTENCE_RE.split(correct) if not any(p.search(s.lower()) for p in patterns)]
    text = " ".join(kept)
    return text if kept and text != correct else None


def _usable_templates(state: DialogueState, kind: str, rule: bool = False) -> list[str]:
    """The distractor templates of ``kind`` that this scenario has facts for (the same
    for the whole episode): those of its invented values (``{fake_...}``), and with
    ``rule`` (a rule's templates) of every other field besides the core and the opening."""

    def usable(state: DialogueState) -> list[str]:
        facts = state.scenario.facts
        return [
            t
            for t in state.domain.agent["distractors"][kind]
            if all(
                facts.get(f.removeprefix("fake_")) is not None
                for f in template_fields(t)
                if (f not in ("core", "opening") if rule else f.startswith("fake_"))
            )
        ]

    return state.episode_fact(f"usable_{kind}_{rule}", usable)


def _rule_breach(
    state: DialogueState, correct: str, rng: np.random.Generator, rule_id: str
) -> str | None:
    # A reply that breaks the domain rule ``rule_id``, proposed only where the rule applies.
    domain = state.domain
    rule = domain.policy.rules[rule_id]
    done = {s.id for s in state.path[: state.pos]}
    if not rule_applies(rule, state.scenario.facts, done, domain.decisions):
        return None
    facts = state.scenario.facts
    usable = _usable_templates(state, rule_id, rule=True)
    if not usable:
        return None
    template = pick(rng, usable)
    fields = {"core": correct, "opening": opening(state, rng)}
    for field in template_fields(template):
        if field.startswith("fake_"):
            fields[field] = perturb(facts[field.removeprefix("fake_")], rng, state.grounded_values)
    # An empty opening (after a check) must not leave a leading space as a tell.
    return " ".join(domain.fill(template, state.scenario, **fields).split())


_MAKERS: dict[str, Callable[..., str | None]] = {
    "rude": _rude,
    "invented_fact": _invented_fact,
    "off_policy": _off_policy,
    "skipped_verification": _skipped_verification,
    "privacy_leak": _privacy_leak,
    "verbose": _verbose,
    "evasive": _evasive,
    "off_topic": _off_topic,
    "repeated": _repeated,
    "missing_disclosure": _missing_disclosure,
}
_FILLERS = ("evasive", "off_topic", "rude")
