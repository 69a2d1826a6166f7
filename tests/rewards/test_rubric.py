"""The scripted rubric ranks replies the way the policy book and careful raters would."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from rlhf_envs.rewards import Exchange, RubricRewardModel, Turn, personas
from rlhf_envs.rewards.rubric import COMPONENTS
from rlhf_envs.simulation import BUILTIN_DOMAINS, get_domain
from rlhf_envs.simulation.candidates import CORRECT, propose
from rlhf_envs.simulation.conversation import Conversation
from rlhf_envs.simulation.expert import expert_reply
from rlhf_envs.simulation.state import DialogueState

DOMAIN = get_domain("customer_service")


def exchange(state: DialogueState, reply: str) -> Exchange:
    return Exchange(state.scenario, state.history, reply, state)


def expert_states(seeds, domain=DOMAIN, subflows=None):
    """Every state along expert conversations (the contexts raters would see)."""
    for seed in seeds:
        rng = np.random.default_rng(seed)
        conversation = Conversation(domain, rng, subflows)
        while not conversation.over:
            yield conversation.state, rng
            conversation.turn(expert_reply(conversation.state, rng))


PERSONAS = [(d, p) for d in BUILTIN_DOMAINS if d != "tiny" for p in personas(d)]


def _distractors_score_below_the_correct_reply(domain_name: str, persona: str, seeds) -> None:
    """On every turn of expert conversations from ``seeds``, ten proposed candidates:
    every failure type of the domain shows up, and each scores below the correct reply."""
    domain = get_domain(domain_name)
    rubric = RubricRewardModel(persona)
    margins = defaultdict(list)
    for state, rng in expert_states(seeds, domain):
        candidates = propose(state, 10, rng)
        scores = rubric.score([exchange(state, c.text) for c in candidates])
        correct = scores[[c.label for c in candidates].index(CORRECT)]
        for c, s in zip(candidates, scores, strict=True):
            if c.label != CORRECT:
                margins[c.label].append(correct - s)
    assert set(margins) == set(domain.failure_types)
    for label, values in margins.items():
        assert min(values) > 0, (
            f"{persona}: a {label} reply scored at least as high as the correct one"
        )


@pytest.mark.parametrize("domain_name, persona", PERSONAS)
def test_every_distractor_scores_below_the_correct_reply(domain_name, persona):
    """30 expert conversations per persona (check-domain, in test_domain_check.py, plays
    150 per domain under every persona)."""
    _distractors_score_below_the_correct_reply(domain_name, persona, range(30))


@pytest.mark.slow
@pytest.mark.parametrize("domain_name, persona", PERSONAS)
def test_every_distractor_scores_below_the_correct_reply_in_120_conversations(domain_name, persona):
    _distractors_score_below_the_correct_reply(domain_name, persona, range(120))


def test_branches_are_scored_as_the_policy_says():
    """Where a check decides the branch, the reply the policy requires beats the other
    branch's reply (e.g. declining a return outside the window beats accepting it)."""
    rubric = RubricRewardModel()
    compared = defaultdict(int)
    for state, rng in expert_states(range(400)):
        step = state.current_step
        subflow = DOMAIN.policy.subflows[state.scenario.subflow]
        if not subflow.branch_hooks() or step.kind not in ("act", "decline"):
            continue
        on_path = {s.id for s in state.path}
        others = [
            s for s in subflow.steps() if s.id not in on_path and s.kind in ("act", "decline")
        ]
        for other in others:
            right = expert_reply(state, rng)
            wrong = DOMAIN.fill(other.say[0], state.scenario)
            r, w = rubric.score([exchange(state, right), exchange(state, wrong)])
            assert r > w, (state.scenario.subflow, step.id, right, wrong)
            compared[(state.scenario.subflow, step.kind)] += 1
    # Both sides of the branches were exercised: accepting and declining.
    kinds = {kind for (_, kind) in compared}
    assert kinds == {"act", "decline"}
    assert len({sub for (sub, _) in compared}) >= 5


def test_return_outside_the_window_is_penalised():
    def outside_window(f):
        return (
            f["membership_level"] == "bronze"
            and f["has_receipt"] == "no"
            and f["days_since_purchase"] > 120
        )

    state, rng = next(
        (s, r)
        for s, r in expert_states(range(2000), subflows=("return_size",))
        if outside_window(s.scenario.facts) and s.current_step.id == "decline_return"
    )
    rubric = RubricRewardModel()
    promise = (
        "Good news: I've processed the return by mail, and the shipping label is on its way "
        "to your email."
    )
    decline = expert_reply(state, rng)
    comps = rubric.components([exchange(state, promise)])
    assert comps["safety"][0] < 0
    assert (
        rubric.score([exchange(state, decline)])[0]
        > rubric.score([exchange(state, promise)])[0] + 2
    )


def test_free_text_is_judged_by_what_it_says():
    state = next(
        s
        for s, _ in expert_states(range(50))
        if s.current_step.kind == "ask"
        and "order_id" in s.current_step.slots
        and s.current_step.need == 2
    )
    rubric = RubricRewardModel()
    good = "Thank you! Could you share your order number and your postal code, please?"
    assert state.assess(good).completes
    rude = "Give me your order number. Hurry up, I don't have all day."
    assert rubric.score([exchange(state, good)])[0] > rubric.score([exchange(state, rude)])[0]


def test_components_sum_to_the_score_and_personas_differ():
    states = [s for s, _ in expert_states(range(5))]
    batch = [
        exchange(s, expert_reply(s, np.random.default_rng(0)) + " " + "Truly, we value you. " * 8)
        for s in states
    ]
    scores = {p: RubricRewardModel(p).score(batch) for p in personas()}
    for p in personas():
        comps = RubricRewardModel(p).components(batch)
        assert set(comps) == set(COMPONENTS)
        np.testing.assert_allclose(sum(comps.values()), scores[p])
    # A busy rater minds long replies more than a warm one.
    assert scores["busy"].mean() < scores["warm"].mean()


def test_rubric_explains_what_it_needs():
    with pytest.raises(ValueError, match="needs the dialogue state"):
        RubricRewardModel().score([Exchange(None, (Turn("user", "hi"),), "hello")])
    with pytest.raises(ValueError, match="unknown rubric persona 'grumpy'"):
        RubricRewardModel("grumpy").check_domain(get_domain("customer_service"))
