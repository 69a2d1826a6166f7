"""Policy books are checked when they load: mistakes name the file and the entry."""

from __future__ import annotations

import pytest

from rlhf_envs.simulation.policy import PolicyBook, PolicyBookError

HOOKS = {"a": lambda f: True, "b": lambda f: False}
STEPS = {
    "decide_a": {"kind": "check", "decide": "a", "system": "A: {verdict}."},
    "decide_b": {"kind": "check", "decide": "b", "system": "B: {verdict}."},
    "act": {"kind": "act", "action": "do", "say": "I've done it."},
    "close": {"kind": "close"},
}


def book(plan, steps=STEPS):
    data = {"steps": steps, "flows": {"f": {"subflows": {"s": {"goal": "g", "plan": plan}}}}}
    return PolicyBook.from_data(
        data, source="policy.yaml", hooks=HOOKS, slots=(), facts=(), actions=("do",)
    )


def test_a_valid_plan_resolves_its_branches():
    policy = book(["decide_a", {"if": "a", "then": ["act"], "else": []}, "close"])
    path = policy.subflows["s"].path({}, HOOKS)
    assert [s.id for s in path] == ["decide_a", "act", "close"]


def test_a_branch_decided_on_only_one_arm_is_rejected():
    plan = [
        "decide_a",
        {"if": "a", "then": ["decide_b"], "else": []},
        {"if": "b", "then": ["act"]},
        "close",
    ]
    with pytest.raises(
        PolicyBookError, match="branch on 'b' comes before any step that decides it"
    ):
        book(plan)


@pytest.mark.parametrize(
    ("plan", "steps", "message"),
    [
        (["nope", "close"], STEPS, "plan names unknown step 'nope'"),
        (["decide_a", "act"], STEPS, "a plan must end with a close step"),
        (["decide_a", {"if": "c", "then": []}, "close"], STEPS, "branch hook 'c' is not defined"),
        (["close"], {**STEPS, "bad": {"kind": "shout"}}, "kind 'shout' is not one of"),
        (["close"], {**STEPS, "bad": {"kind": "ask"}}, "an ask step needs slots"),
        (
            ["close"],
            {**STEPS, "bad": {"kind": "act", "action": "fly"}},
            "needs an action defined in actions.yaml",
        ),
        (
            ["close"],
            {**STEPS, "bad": {"kind": "close", "colour": "red"}},
            "unknown field(s) ['colour']",
        ),
    ],
)
def test_mistakes_are_named(plan, steps, message):
    with pytest.raises(PolicyBookError) as err:
        book(plan, steps)
    assert message in str(err.value) and "policy.yaml" in str(err.value)
