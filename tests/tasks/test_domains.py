"""Every domain's data is consistent: the expert follows its policy, every branch is
reachable, and every candidate does what its failure type says (as the shared reading
of replies sees it). Runs over all built-in domains."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from rlhf_envs.tasks import BUILTIN_DOMAINS, get_domain
from rlhf_envs.tasks.candidates import CORRECT, FAILURE_TYPES, propose
from rlhf_envs.tasks.check import check_domain, label_holds
from rlhf_envs.tasks.expert import expert_reply
from rlhf_envs.tasks.state import DialogueState
from rlhf_envs.tasks.user_simulator import UserSimulator

def start(domain, seed, subflows=None):
    rng = np.random.default_rng(seed)
    scenario = domain.sample_scenario(rng, subflows)
    sim = UserSimulator(domain)
    state = DialogueState.start(domain, scenario, sim.opening(scenario, rng))
    return rng, sim, state, sim.mood(scenario)


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


def test_check_domain_passes_the_built_in_domains_and_names_what_is_wrong_in_a_broken_one(tmp_path):
    assert not check_domain("tiny", episodes=60).problems
    broken = tmp_path / "library"
    shutil.copytree(get_domain("tiny").folder, broken, ignore=shutil.ignore_patterns("__pycache__"))
    agent = (broken / "agent.yaml").read_text()
    # An "evasive" distractor that in fact renews the book, and a step no fact can reach.
    agent = agent.replace('evasive: ["Libraries are wonderful places."]', 'evasive: ["I\'ll renew it for you."]')
    (broken / "agent.yaml").write_text(agent)
    policy = (broken / "policy.yaml").read_text().replace('fines: ["$0", "$0", "$3", "$7"]', 'fines: ["$0"]')
    (broken / "policy.yaml").write_text(policy)
    report = check_domain(str(broken), episodes=60)
    text = "\n".join(report.problems)
    assert "task renew_book: steps never on a sampled path: ['decline_renewal']" in text
    assert "a candidate labelled 'evasive' does not do what its label says: \"I'll renew it for you.\"" in text
