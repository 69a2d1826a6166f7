"""Every built-in domain's data is consistent: the expert follows its policy and finishes
every task, and every proposed candidate does what its failure type says (as the shared
reading of replies sees it)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rlhf_envs.domain_check import label_holds
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
