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
    sync = gym.make_vec(
        "RLHF-Tiny-v0",
        num_envs=3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
    )
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
                np.testing.assert_array_equal(
                    a[4]["final_obs"][i]["turn"], b[4]["final_obs"][i]["turn"]
                )
                assert a[4]["final_info"]["success"][i] == b[4]["final_info"]["success"][i]
    assert ended > 10  # episodes ended and were reset along the way


def test_time_limit_matches_gymnasium_time_limit():
    native = gym.make_vec("RLHF-Tiny-v0", num_envs=3, max_episode_steps=2)
    sync = gym.make_vec("RLHF-Tiny-v0", num_envs=3, vectorization_mode="sync", max_episode_steps=2)
    native.reset(seed=4)
    sync.reset(seed=4)
    rng = np.random.default_rng(1)
    truncated = 0
    for t in range(40):
        actions = rng.integers(3, size=3)
        step = native.step(actions)
        _same(step, sync.step(actions), t)
        truncated += int(step[3].sum())
    # Two-step episodes: the limit, not the user, ends most of them (NextStep autoreset:
    # every third step of a sub-env only resets it).
    assert truncated >= 20


def test_truncates_after_max_episode_steps():
    env = DialogueVectorEnv(
        num_envs=2, domain="tiny", num_candidates=3, encoding_dim=64, max_episode_steps=2
    )
    env.reset(seed=0)
    *_, truncated, _ = env.step(np.array([0, 0]))
    assert not truncated.any()
    _, _, terminated, truncated, _ = env.step(np.array([0, 0]))
    assert np.all(terminated | truncated)


class CountingRubric(RubricRewardModel):
    def __init__(self, persona="balanced"):
        super().__init__(persona=persona)
        self.calls: list[int] = []

    def _weighted(self, batch):  # behind both score() and components()
        self.calls.append(len(batch))
        return super()._weighted(batch)


def test_one_batched_reward_call_per_step():
    counting, gold = CountingRubric(), CountingRubric("stickler")
    env = DialogueVectorEnv(
        num_envs=4, domain="tiny", num_candidates=3, encoding_dim=64, reward=counting, gold=gold
    )
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


# --- many seeds and autoresets, both modes -------------------------------------------------


@pytest.mark.parametrize("mode", ["NextStep", "SameStep"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_single_envs_over_seeds_with_short_time_limits(mode, seed):
    """Equal to N single envs driven by hand with Gymnasium's autoreset rules, episodes
    cut at 1-4 steps so resets of both kinds happen often."""
    limit = 1 + seed % 4
    native = gym.make_vec("RLHF-Tiny-v0", num_envs=4, autoreset_mode=mode, max_episode_steps=limit)
    singles = [gym.make("RLHF-Tiny-v0", max_episode_steps=limit) for _ in range(4)]
    obs, _ = native.reset(seed=seed * 100)
    for i, env in enumerate(singles):
        single_obs, _ = env.reset(seed=seed * 100 + i)
        np.testing.assert_array_equal(obs["candidates"][i], single_obs["candidates"])
    pending = [False] * 4
    rng = np.random.default_rng(seed)
    resets = 0
    for t in range(60):
        actions = rng.integers(3, size=4)
        obs, rewards, terminated, truncated, infos = native.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:  # NextStep: this step only resets sub-env i
                single_obs, _ = env.reset()
                assert rewards[i] == 0 and not terminated[i] and not truncated[i]
                pending[i] = False
                resets += 1
            else:
                single_obs, r, term, trunc, info = env.step(actions[i])
                assert (rewards[i], terminated[i], truncated[i]) == (r, term, trunc), (t, i)
                if term or trunc:
                    if mode == "SameStep":  # the step's info is final_info; the reset's is on top
                        for key in single_obs:
                            np.testing.assert_array_equal(
                                infos["final_obs"][i][key], single_obs[key]
                            )
                        assert infos["final_info"]["reply"][i] == info["reply"]
                        assert infos["final_info"]["gold_reward"][i] == info["gold_reward"]
                        single_obs, _ = env.reset()
                        resets += 1
                    else:
                        assert infos["reply"][i] == info["reply"]
                        pending[i] = True
                else:
                    assert infos["reply"][i] == info["reply"]
            for key in single_obs:
                np.testing.assert_array_equal(
                    obs[key][i], single_obs[key], err_msg=f"step {t}, env {i}, {key}"
                )
    assert resets >= 20


@pytest.mark.lm
def test_tokens_kl_shaping_one_batched_reference_forward_per_step():
    """With kl_coef, all sub-envs' reference log-probabilities come from one forward pass
    per vector step and equal those of single envs (to float rounding)."""
    kwargs = {
        "kl_coef": 0.1,
        "max_reply_tokens": 6,
        "gold": "rubric",
    }  # (fluency would forward too)
    native = gym.make_vec(
        "RLHF-ChatTokens-v0", num_envs=3, autoreset_mode="SameStep", max_episode_steps=25, **kwargs
    )
    singles = [gym.make("RLHF-ChatTokens-v0", max_episode_steps=25, **kwargs) for _ in range(3)]
    obs, _ = native.reset(seed=21)
    for i, env in enumerate(singles):
        env.reset(seed=21 + i)
    model = native.envs[0].reference_lm.model
    calls = []
    handle = model.register_forward_hook(
        lambda module, args, kwargs_, out: calls.append(1), with_kwargs=True
    )
    rng = np.random.default_rng(0)
    mask = native.envs[0].action_masks()
    allowed = np.flatnonzero(mask)
    turns = 0
    try:
        for t in range(40):
            actions = rng.choice(allowed, size=3)
            before = len(calls)
            obs, rewards, terminated, truncated, infos = native.step(actions)
            assert len(calls) - before == 1, f"step {t}: {len(calls) - before} reference forwards"
            for i, env in enumerate(singles):
                handle.remove()
                single_obs, r, term, trunc, _ = env.step(actions[i])
                handle = model.register_forward_hook(
                    lambda m, a, k, o: calls.append(1), with_kwargs=True
                )
                np.testing.assert_allclose(
                    rewards[i], r, rtol=0, atol=1e-5, err_msg=f"step {t}, env {i}"
                )
                assert (terminated[i], truncated[i]) == (term, trunc)
                if term or trunc:
                    single_obs, _ = env.reset()
                for key in single_obs:
                    np.testing.assert_array_equal(obs[key][i], single_obs[key])
            turns += int(np.sum(infos.get("_reply", [])))
    finally:
        handle.remove()
    assert turns >= 6  # replies ended (and new turns' contexts were fed) along the way


@pytest.mark.parametrize("copy", [True, False])
def test_observations_are_copies_unless_asked_otherwise(copy):
    vec = gym.make_vec("RLHF-Chat-v0", num_envs=2, copy=copy)
    first, _ = vec.reset(seed=3)
    kept = {key: value.copy() for key, value in first.items()}
    second = vec.step(np.array([0, 1]))[0]
    changed = [key for key in kept if not np.array_equal(kept[key], second[key])]
    assert "candidates" in changed  # (the step did change the observation)
    for key in kept:
        # A copy keeps what it held; without copying, the batch arrays are reused in place.
        assert np.array_equal(first[key], kept[key]) == copy, key
        assert (first[key] is second[key]) == (not copy), key
