"""The fluency reward on free text: the gold reward of the text ids includes it, so
keyword stuffing and garbled replies do not pay, and each reply is compared with the
expert's replies of its own domain."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.rewards import Exchange
from rlhf_envs.rewards.fluency import FluencyRewardModel, expert_baseline, mean_logprobs

pytestmark = pytest.mark.lm


@pytest.mark.parametrize(
    "env_id", ["RLHF-ChatText-v0", "RLHF-FinanceText-v0", "RLHF-MedicalText-v0"]
)
def test_free_text_gold_includes_fluency_so_keyword_stuffing_does_not_pay(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=3)
    good = env.expert_action()
    results = {}
    for name, reply in {
        "expert": good,
        "stuffed": " ".join([good] * 3),
        "garbled": " ".join(good.split()[::-1]),
    }.items():
        env.reset(seed=3)
        _, _, _, _, info = env.step(reply)
        results[name] = info
    assert set(results["expert"]["reward_components"]) >= {"task", "grounding"}
    for bad in ("stuffed", "garbled"):
        assert results[bad]["gold_reward"] < results["expert"]["gold_reward"] - 0.5, bad
    assert env.gold_model.spec == {"rubric": 1.0, "fluency": 1.0}


def test_fluency_compares_each_reply_with_the_expert_of_its_own_domain():
    """The likelihood part of the fluency penalty measures a reply against the mean
    log-probability of the expert's replies in the reply's own domain."""
    fluency = FluencyRewardModel()
    baselines = {}
    for env_id in ("RLHF-ChatText-v0", "RLHF-FinanceText-v0", "RLHF-MedicalText-v0"):
        env = gym.make(env_id).unwrapped
        env.reset(seed=0)
        exchanges = [
            Exchange(env.state.scenario, env.state.history, reply, env.state)
            for reply in (env.expert_action(), "ok fine whatever then")
        ]
        baseline = baselines[env.domain.name] = expert_baseline(fluency.lm, env.domain.name)
        below = baseline - mean_logprobs(fluency.lm, exchanges) - fluency.tolerance
        expected = -np.clip(fluency.per_nat * below, 0.0, fluency.max_penalty)
        np.testing.assert_allclose(fluency.components(exchanges)["fluency"], expected, rtol=1e-6)
    assert len(set(baselines.values())) == 3, baselines


def test_expert_baseline_reads_a_few_replies_per_forward(monkeypatch):
    """The baseline is the mean over 64 expert replies, scored a few per forward: one
    padded batch of all 64 took about 180 MB at its peak, most of a text env's peak
    memory. The mean is the one of a single batch (rows read as they would alone)."""
    from rlhf_envs.rewards import fluency as fluency_module
    from rlhf_envs.rewards.fluency import _BASELINE_BATCH, _BASELINE_REPLIES

    lm = FluencyRewardModel().lm
    batches: list[int] = []
    replies: list[Exchange] = []

    def spy(model, batch):
        batches.append(len(batch))
        replies.extend(batch)
        return mean_logprobs(model, batch)

    monkeypatch.setattr(fluency_module, "_baselines", {})
    monkeypatch.setattr(fluency_module, "mean_logprobs", spy)
    found = expert_baseline(lm, "finance")
    assert sum(batches) == _BASELINE_REPLIES and max(batches) <= _BASELINE_BATCH, batches
    assert found == pytest.approx(float(np.mean(mean_logprobs(lm, replies))), abs=1e-6)
