"""The native vector env: same trajectories as Gymnasium's SyncVectorEnv, one batched
reward-model call per vector step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.rewards.rubric import RubricRewardModel
from rlhf_envs.vector import DialogueVectorEnv


def _same(a, b, t):
    obs_a, rew_a, term_a, trunc_a, info_a = a
    obs_b, rew_b, term_b, trunc_b, info_b = b
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=f"step {t}, {key}")
    np.testing.assert_allclose(rew_a, rew_b, err_msg=f"step {t}")
    np.testing.assert_array_equal(term_a, term_b)
    np.testing.assert_array_equal(trunc_a, trunc_b)
    assert set(info_a) == set(info_b)
    if "reply" in info_a:  # absent when every sub-env only reset this step
        assert list(info_a["reply"]) == list(info_b["reply"])
        np.testing.assert_allclose(info_a["gold_reward"], info_b["gold_reward"])


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
def test_matches_sync_vector_env(mode):
    native = gym.make_vec("RLHF-Tiny-v0", num_envs=3, vector_kwargs=None, autoreset_mode=mode)
    sync = gym.make_vec("RLHF-Tiny-v0", num_envs=3, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode})
    assert isinstance(native, DialogueVectorEnv)
    obs_a, _ = native.reset(seed=11)
    obs_b, _ = sync.reset(seed=11)
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(150):
        actions = rng.integers(3, size=3)
        a, b = native.step(actions), sync.step(actions)
        _same(a, b, t)
        ended += int(a[2].sum() + a[3].sum())
        if mode == "SameStep" and (a[2] | a[3]).any():
            done = np.flatnonzero(a[2] | a[3])
            for i in done:
                np.testing.assert_array_equal(a[4]["final_obs"][i]["turn"], b[4]["final_obs"][i]["turn"])
                assert a[4]["final_info"]["success"][i] == b[4]["final_info"]["success"][i]
    assert ended > 10  # episodes ended and were reset along the way


def test_time_limit_matches_gymnasium_time_limit():
    native = gym.make_vec("RLHF-Tiny-v0", num_envs=3, max_episode_steps=2)
    sync = gym.make_vec("RLHF-Tiny-v0", num_envs=3, vectorization_mode="sync", max_episode_steps=2)
    native.reset(seed=4)
    sync.reset(seed=4)
    rng = np.random.default_rng(1)
    for t in range(40):
        actions = rng.integers(3, size=3)
        _same(native.step(actions), sync.step(actions), t)


def test_truncates_after_max_episode_steps():
    env = DialogueVectorEnv(num_envs=2, domain="tiny", num_candidates=3, encoding_dim=64, max_episode_steps=2)
    env.reset(seed=0)
    *_, truncated, _ = env.step(np.array([0, 0]))
    assert not truncated.any()
    _, _, terminated, truncated, _ = env.step(np.array([0, 0]))
    assert np.all(terminated | truncated)


class CountingRubric(RubricRewardModel):
    def __init__(self, persona="balanced"):
        super().__init__(persona=persona)
        self.calls: list[int] = []

    def _points(self, batch):  # behind both score() and components()
        self.calls.append(len(batch))
        return super()._points(batch)


def test_one_batched_reward_call_per_step():
    counting, gold = CountingRubric(), CountingRubric("stickler")
    env = DialogueVectorEnv(num_envs=4, domain="tiny", num_candidates=3, encoding_dim=64, reward=counting, gold=gold)
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros(4, dtype=np.int64))
    for model in (counting, gold):
        assert model.calls and max(model.calls) == 4
        assert len(model.calls) <= 5  # one call per vector step (fewer when all reset)


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        DialogueVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match="'Disabled' is not supported"):
        DialogueVectorEnv(num_envs=1, autoreset_mode="Disabled")
    env = DialogueVectorEnv(num_envs=2, domain="tiny", num_candidates=3, encoding_dim=64)
    with pytest.raises(ValueError, match="got 3 seeds for 2 sub-envs"):
        env.reset(seed=[1, 2, 3])
