"""Reward plugins as a user plugs them into an env: every accepted form trains the env's
reward, the gold reward stays the rubric's, and broken plugins fail with their name."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.rewards import RewardModelError, RubricRewardModel, register, registry


@pytest.fixture(autouse=True)
def _restore_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    registry.refresh_plugins()


def expert_rollout(env, steps=4):
    env.reset(seed=2)
    out = []
    for _ in range(steps):
        _, reward, terminated, _, info = env.step(env.unwrapped.expert_action())
        out.append((reward, info))
        if terminated:
            break
    return out


def reply_length(exchange) -> float:
    return -len(exchange.reply) / 100.0


class Politeness:
    """A registered class: +1 for every "please" or "thank"."""

    name = "politeness"

    def __init__(self, bonus: str = "1"):
        self.bonus = float(bonus)

    def score(self, batch):
        return np.array(
            [
                self.bonus * (("please" in e.reply.lower()) + ("thank" in e.reply.lower()))
                for e in batch
            ]
        )


def test_a_plain_function_is_the_training_reward_and_gold_stays_the_rubric():
    env = gym.make("RLHF-Chat-v0", reward=reply_length)
    for reward, info in expert_rollout(env):
        assert reward == pytest.approx(-len(info["reply"]) / 100.0)
        assert info["gold_reward"] > 0  # the expert's replies are good by the rubric
        assert list(info["reward_components"]) == [f"function {__name__}.reply_length"]


def test_a_registered_class_with_an_argument():
    register("politeness", Politeness, argument="bonus")
    env = gym.make("RLHF-Chat-v0", reward="politeness:2.5")
    for reward, info in expert_rollout(env):
        text = info["reply"].lower()
        assert reward == 2.5 * (("please" in text) + ("thank" in text))


def test_a_weighted_mix_adds_up_and_reports_each_member():
    register("politeness", Politeness, argument="bonus")
    env = gym.make("RLHF-Chat-v0", reward={"rubric": 1.0, "politeness": 0.5})
    rubric = gym.make("RLHF-Chat-v0")
    for (mixed, info), (plain, _) in zip(expert_rollout(env), expert_rollout(rubric), strict=True):
        comps = info["reward_components"]
        text = info["reply"].lower()
        assert comps["politeness"] == pytest.approx(0.5 * (("please" in text) + ("thank" in text)))
        rubric_parts = {k: v for k, v in comps.items() if k.startswith("rubric/")}
        assert set(rubric_parts) == {
            "rubric/task",
            "rubric/grounding",
            "rubric/politeness",
            "rubric/conciseness",
            "rubric/safety",
            "rubric/repetition",
            "rubric/conduct",
        }
        assert sum(rubric_parts.values()) == pytest.approx(plain)
        assert (
            mixed
            == pytest.approx(plain + comps["politeness"])
            == pytest.approx(sum(comps.values()))
        )


def test_an_instance_works_and_is_reported_as_not_serialisable():
    from rlhf_envs.rewards import is_serialisable

    model = RubricRewardModel("warm")
    env = gym.make("RLHF-Chat-v0", reward=model)
    (reward, info), *_ = expert_rollout(env)
    named = gym.make("RLHF-Chat-v0", reward="rubric:warm")
    (same, _), *_ = expert_rollout(named)
    assert reward == pytest.approx(same)
    assert not is_serialisable(model) and is_serialisable("rubric:warm")
    with pytest.raises(TypeError, match="not JSON serializable"):
        env.spec.to_json()  # an instance in the kwargs cannot be written as JSON
    named.spec.to_json()


def test_an_entry_point_plugin_from_an_installed_distribution(tmp_path, monkeypatch):
    (tmp_path / "shouty_rm.py").write_text(
        textwrap.dedent("""
        import numpy as np

        class Shouty:
            def __init__(self, arg="1"):
                self.weight = float(arg)
            def score(self, batch):
                return np.array([self.weight * e.reply.count("!") for e in batch])
    """)
    )
    dist = tmp_path / "shouty_rm-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shouty-rm\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlhf_envs.rewards]\nshouty = shouty_rm:Shouty\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry.refresh_plugins()
    assert "shouty" in rlhf_envs.rewards.registered_names()
    env = gym.make("RLHF-Chat-v0", reward="shouty:3")
    for reward, info in expert_rollout(env):
        assert reward == 3 * info["reply"].count("!")
    monkeypatch.delitem(sys.modules, "shouty_rm", raising=False)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda e: float("nan"), "returned nan at index 0"),
        (lambda e: 1 / 0, "raised ZeroDivisionError"),
        (lambda e: "great", "returned 'great' (str) at index 0; expected a finite float"),
    ],
)
def test_broken_functions_fail_with_their_name_at_the_first_step(fn, message):
    env = gym.make("RLHF-Chat-v0", reward=fn)
    env.reset(seed=0)
    with pytest.raises(RewardModelError) as err:
        env.step(0)
    assert "<lambda>" in str(err.value) and message in str(err.value)


def test_a_model_returning_the_wrong_shape_is_named():
    class TwoPerReply:
        name = "two_per_reply"

        def score(self, batch):
            return np.zeros((len(batch), 2))

    env = gym.make("RLHF-Chat-v0", reward=TwoPerReply())
    env.reset(seed=0)
    with pytest.raises(
        RewardModelError, match=r"'two_per_reply' returned shape \(1, 2\) for a batch of 1"
    ):
        env.step(0)


def test_a_function_reward_runs_once_per_step():
    calls = []

    def counting(exchange):
        calls.append(exchange.reply)
        return 1.0

    env = gym.make("RLHF-Chat-v0", reward=counting)
    steps = expert_rollout(env)
    assert len(calls) == len(steps)


def test_the_gold_model_can_be_a_persona():
    """The gold reward is the named persona's score of the same reply, whatever the
    training reward."""
    from rlhf_envs.rewards import Exchange

    env = gym.make("RLHF-Chat-v0", reward=reply_length, gold="rubric:stickler").unwrapped
    env.reset(seed=2)
    stickler = RubricRewardModel("stickler")
    for _ in range(3):
        state = env.state
        reward, info = env.step(env.expert_action())[1::3]
        expected = stickler.score([Exchange(state.scenario, state.history, info["reply"], state)])[
            0
        ]
        assert info["gold_reward"] == pytest.approx(expected)
        assert info["gold_reward"] != pytest.approx(reward)
