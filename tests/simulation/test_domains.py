"""Every domain's data is consistent: the expert follows its policy, every branch is
reachable, and every candidate does what its failure type says (as the shared reading
of replies sees it). Runs over all built-in domains."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from rlhf_envs.domain_check import check_domain, label_holds
from rlhf_envs.simulation import BUILTIN_DOMAINS, get_domain
from rlhf_envs.simulation.candidates import CORRECT, FAILURE_TYPES, propose
from rlhf_envs.simulation.conversation import Conversation
from rlhf_envs.simulation.expert import expert_reply


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_expert_completes_every_subflow_without_violations(name):
    domain = get_domain(name)
    for seed in range(300):
        rng = np.random.default_rng(seed)
        conversation = Conversation(domain, rng)
        for _ in range(len(conversation.state.path) + 1):
            state = conversation.state
            reply = expert_reply(state, rng)
            a = state.assess(reply)
            assert label_holds(CORRECT, a, domain), (
                state.scenario.subflow,
                state.current_step.id,
                reply,
                a,
            )
            if conversation.turn(reply).ended:
                break
        assert conversation.state.success, [t.text for t in conversation.state.history]


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_check_domain_finds_no_problem_in_a_built_in_domain(name):
    """Every step reachable, every failure type proposed and doing what it says, every
    distractor below the correct reply under every persona, expert and random rates."""
    report = check_domain(name, episodes=150)
    assert not report.problems, report.summary()
    assert report.expert_success >= 0.95 and report.random_success <= 0.3


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_candidates_do_what_their_labels_say(name):
    """Walk random trajectories (so non-expert states are visited too) and check each
    proposed candidate against its label."""
    domain = get_domain(name)
    seen = Counter()
    for seed in range(150):
        rng = np.random.default_rng(seed)
        conversation = Conversation(domain, rng)
        for _ in range(12):
            state = conversation.state
            candidates = propose(state, 6, rng)
            assert len(candidates) == 6 and len({c.text for c in candidates}) == 6
            assert sum(c.label == CORRECT for c in candidates) == 1
            for c in candidates:
                a = state.assess(c.text)
                assert label_holds(c.label, a, domain), (
                    state.scenario.subflow,
                    state.current_step.id,
                    c,
                    a,
                )
                seen[c.label] += 1
            if conversation.turn(candidates[int(rng.integers(len(candidates)))].text).ended:
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
    agent = agent.replace(
        'evasive: ["Libraries are wonderful places."]', 'evasive: ["I\'ll renew it for you."]'
    )
    (broken / "agent.yaml").write_text(agent)
    policy = (
        (broken / "policy.yaml")
        .read_text()
        .replace('fines: ["$0", "$0", "$3", "$7"]', 'fines: ["$0"]')
    )
    (broken / "policy.yaml").write_text(policy)
    report = check_domain(str(broken), episodes=60)
    text = "\n".join(report.problems)
    assert "task renew_book: steps never on a sampled path: ['decline_renewal']" in text
    assert (
        "a candidate labelled 'evasive' does not do what its label says: \"I'll renew it for you.\""
        in text
    )
