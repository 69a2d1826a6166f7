"""Every domain's data is consistent: the expert follows its policy, every branch is
reachable, and every candidate does what its failure type says (as the shared reading
of replies sees it). Runs over all built-in domains."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rlhf_envs.tasks import BUILTIN_DOMAINS, get_domain
from rlhf_envs.tasks.assessment import Assessment
from rlhf_envs.tasks.candidates import CORRECT, FAILURE_TYPES, propose
from rlhf_envs.tasks.expert import expert_reply
from rlhf_envs.tasks.state import DialogueState
from rlhf_envs.tasks.user_simulator import UserSimulator

VERBOSE_WORDS = 45


def start(domain, seed, subflows=None):
    rng = np.random.default_rng(seed)
    scenario = domain.sample_scenario(rng, subflows)
    sim = UserSimulator(domain)
    state = DialogueState.start(domain, scenario, sim.opening(scenario, rng))
    return rng, sim, state, sim.mood(scenario)


def label_holds(label: str, a: Assessment, domain) -> bool:
    """What each candidate label promises about the reply."""
    rule = domain.policy.rules.get(label)
    if rule is not None:
        return label in (a.violations if rule.severity == "critical" else a.minor)
    if label == "missing_disclosure":
        return "missing_disclosure" in a.violations and bool(a.undisclosed)
    if label == CORRECT:
        return a.completes and not a.violations and not a.rude and not a.wrong_refusal
    if label == "rude":
        return a.rude
    if label == "invented_fact":
        return "invented_fact" in a.violations
    if label == "off_policy":
        return "off_policy" in a.violations or a.wrong_refusal
    if label == "skipped_verification":
        return "skipped_verification" in a.violations
    if label == "privacy_leak":
        return "privacy_leak" in a.violations
    if label == "verbose":
        return a.completes and a.analysis.words > VERBOSE_WORDS
    if label in ("evasive", "off_topic"):
        return not a.completes and not a.violations
    if label == "repeated":
        return a.repeated
    raise AssertionError(label)


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_expert_completes_every_subflow_without_violations(name):
    domain = get_domain(name)
    for seed in range(300):
        rng, sim, state, mood = start(domain, seed)
        for _ in range(len(state.path) + 1):
            reply = expert_reply(state, rng)
            a = state.assess(reply)
            assert label_holds(CORRECT, a, domain), (state.scenario.subflow, state.current_step.id, reply, a)
            user = sim.respond(state, a, mood, rng)
            state = state.after(reply, a, user.text, user.ended)
            if user.ended:
                break
        assert state.success, [t.text for t in state.history]


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_every_step_of_every_subflow_is_reached(name):
    domain = get_domain(name)
    reached = {sub: set() for sub in domain.subflow_ids}
    for seed in range(40 * len(domain.subflow_ids)):
        rng = np.random.default_rng(seed)
        scenario = domain.sample_scenario(rng)
        path = domain.policy.subflows[scenario.subflow].path(scenario.facts, domain.decisions)
        reached[scenario.subflow].update(s.id for s in path)
    for sub_id, sub in domain.policy.subflows.items():
        unreached = {s.id for s in sub.steps()} - reached[sub_id]
        assert not unreached, f"{sub_id}: steps never on a sampled path: {sorted(unreached)}"


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_candidates_do_what_their_labels_say(name):
    """Walk random trajectories (so non-expert states are visited too) and check each
    proposed candidate against its label."""
    domain = get_domain(name)
    seen = Counter()
    for seed in range(150):
        rng, sim, state, mood = start(domain, seed)
        for _ in range(12):
            candidates = propose(state, 6, rng)
            assert len(candidates) == 6 and len({c.text for c in candidates}) == 6
            assert sum(c.label == CORRECT for c in candidates) == 1
            for c in candidates:
                a = state.assess(c.text)
                assert label_holds(c.label, a, domain), (state.scenario.subflow, state.current_step.id, c, a)
                seen[c.label] += 1
            choice = candidates[int(rng.integers(len(candidates)))]
            a = state.assess(choice.text)
            user = sim.respond(state, a, mood, rng)
            state = state.after(choice.text, a, user.text, user.ended)
            if user.ended:
                break
    assert set(FAILURE_TYPES) <= set(domain.failure_types)
    missing = set(domain.failure_types) - set(seen)
    assert not missing, f"failure types never proposed: {missing}"
