"""The SB3 adapter (``rlhf_envs.sb3``): the native vector env as an SB3 ``VecEnv``, equal
to SB3's own ``make_vec_env`` in stepping, seeding, resets, attributes and training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.vector import DialogueVectorEnv


@pytest.mark.parametrize("limit", [3, 20])
def test_sb3_adapter_matches_make_vec_env(limit):
    from stable_baselines3.common.env_util import make_vec_env

    from rlhf_envs.sb3 import make_sb3_vec_env

    kwargs = {"max_episode_steps": limit}
    ours = make_sb3_vec_env("RLHF-Tiny-v0", n_envs=3, seed=9, env_kwargs=kwargs)
    theirs = make_vec_env("RLHF-Tiny-v0", n_envs=3, seed=9, env_kwargs=kwargs)
    assert (
        ours.observation_space == theirs.observation_space
        and ours.action_space == theirs.action_space
    )
    first_ours, first_theirs = ours.reset(), theirs.reset()
    for key in first_ours:
        np.testing.assert_array_equal(first_ours[key], first_theirs[key])
    assert ours.reset_infos == theirs.reset_infos
    rng = np.random.default_rng(limit)
    counts = {"done": 0, "TimeLimit.truncated": 0}
    for t in range(120):
        actions = rng.integers(3, size=3)
        obs_a, rew_a, done_a, infos_a = ours.step(actions)
        obs_b, rew_b, done_b, infos_b = theirs.step(actions)
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=f"step {t}, {key}")
        assert rew_a.dtype == rew_b.dtype == np.float32
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(done_a, done_b)
        for a, b in zip(infos_a, infos_b, strict=True):
            assert set(a) == set(b), (t, set(a) ^ set(b))
            assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            assert (a["reply"], a["gold_reward"], a["success"]) == (
                b["reply"],
                b["gold_reward"],
                b["success"],
            )
            if "terminal_observation" in b:
                for key in b["terminal_observation"]:
                    np.testing.assert_array_equal(
                        a["terminal_observation"][key], b["terminal_observation"][key]
                    )
                assert (a["episode"]["r"], a["episode"]["l"]) == pytest.approx(
                    (b["episode"]["r"], b["episode"]["l"])
                )
                counts["done"] += 1
                counts["TimeLimit.truncated"] += a["TimeLimit.truncated"]
        assert ours.reset_infos == theirs.reset_infos
    assert counts["done"] > 10
    assert (counts["TimeLimit.truncated"] > 0) == (limit == 3)


def test_sb3_adapter_matches_dummy_vec_env_beyond_stepping():
    """Seeding, reset options (shared and per sub-env), attribute access, Monitor and
    rendering behave as on SB3's make_vec_env."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.monitor import Monitor

    from rlhf_envs.sb3 import make_sb3_vec_env

    kwargs = {"render_mode": "rgb_array"}
    ours = make_sb3_vec_env("RLHF-Tiny-v0", n_envs=2, seed=4, env_kwargs=kwargs)
    theirs = make_vec_env("RLHF-Tiny-v0", n_envs=2, seed=4, env_kwargs=kwargs)

    def same_obs(a, b):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])

    same_obs(ours.reset(), theirs.reset())
    for venv in (ours, theirs):
        venv.seed(30)
    same_obs(ours.reset(), theirs.reset())
    for venv in (ours, theirs):  # one shared options dict, then one per sub-env
        venv.set_options({"scenario_seed": 5})
    same_obs(ours.reset(), theirs.reset())
    assert ours.reset_infos == theirs.reset_infos and ours.reset_infos[0] == ours.reset_infos[1]
    for venv in (ours, theirs):
        venv.set_options([{"scenario_seed": 5}, {"scenario_seed": 6}])
    same_obs(ours.reset(), theirs.reset())
    assert ours.reset_infos == theirs.reset_infos
    assert ours._options == [{}, {}]  # used once
    assert (
        [s.id for s in ours.get_attr("spec")]
        == [s.id for s in theirs.get_attr("spec")]
        == ["RLHF-Tiny-v0"] * 2
    )
    assert ours.get_attr("spec")[0].kwargs["domain"] == "tiny"
    assert ours.env_method("expert_action") == theirs.env_method("expert_action")
    assert ours.env_method("expert_action", indices=[1]) == theirs.env_method(
        "expert_action", indices=[1]
    )
    ours.set_attr("marker", 7, indices=0)
    assert ours.get_attr("marker", indices=[0]) == [7]
    assert ours.env_is_wrapped(Monitor) == theirs.env_is_wrapped(Monitor) == [True, True]
    images_a, images_b = ours.get_images(), theirs.get_images()
    assert len(images_a) == 2 and all(
        np.array_equal(a, b) for a, b in zip(images_a, images_b, strict=True)
    )


def test_ppo_learns_the_same_on_the_adapter_as_on_make_vec_env():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from rlhf_agents.candidate_policy import CandidateActorCriticPolicy
    from rlhf_envs.sb3 import make_sb3_vec_env

    params = {}
    for name, venv in (
        ("adapter", make_sb3_vec_env("RLHF-Tiny-v0", n_envs=2, seed=3)),
        ("make_vec_env", make_vec_env("RLHF-Tiny-v0", n_envs=2, seed=3)),
    ):
        model = PPO(
            CandidateActorCriticPolicy,
            venv,
            n_steps=32,
            batch_size=32,
            n_epochs=2,
            seed=3,
            device="cpu",
        )
        model.learn(128)
        params[name] = model.policy.state_dict()
        assert len(model.ep_info_buffer) > 0  # episode statistics reach SB3's logger
    for key, value in params["adapter"].items():
        torch.testing.assert_close(value, params["make_vec_env"][key], rtol=0, atol=0, msg=key)


def test_maskable_ppo_gets_masks_through_the_adapter():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    from rlhf_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("RLHF-Tiny-v0", n_envs=2, seed=0)
    venv.reset()
    assert get_action_masks(venv).shape == (2, 3)
    MaskablePPO(
        "MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, device="cpu"
    ).learn(32)


def test_adapter_refuses_what_it_cannot_serve():
    from rlhf_envs.sb3 import SB3VecEnv

    with pytest.raises(ValueError, match="autoreset_mode='SameStep'"):
        SB3VecEnv(DialogueVectorEnv(num_envs=2, domain="tiny", num_candidates=3, encoding_dim=64))
    with pytest.raises(TypeError, match="wraps a rlhf_envs DialogueVectorEnv"):
        SB3VecEnv(gym.make_vec("CartPole-v1", num_envs=2))


@pytest.mark.integration
def test_subproc_workers_each_load_the_learned_reward_model(tmp_path, monkeypatch):
    """SubprocVecEnv with a learned RM named by a relative path: every worker loads the
    checkpoint itself (the path is made absolute when the env is made) and the rewards
    equal those of the batched vector env."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model
    from rlhf_envs.sb3 import make_sb3_vec_env

    pairs = FeedbackCollector("RLHF-Tiny-v0", seed=0).preferences(200, progress=False)
    train_reward_model(pairs, "linear", progress=False).model.save(tmp_path / "rm", note="test")
    monkeypatch.chdir(tmp_path)
    kwargs = {"reward": "learned:rm"}
    subproc = make_vec_env(
        "rlhf_envs:RLHF-Tiny-v0", n_envs=2, seed=1, env_kwargs=kwargs, vec_env_cls=SubprocVecEnv
    )
    try:
        batched = make_sb3_vec_env("RLHF-Tiny-v0", n_envs=2, seed=1, env_kwargs=kwargs)
        assert {spec.kwargs["reward"] for spec in subproc.get_attr("spec")} == {
            f"learned:{tmp_path / 'rm'}"
        }
        subproc.reset()
        batched.reset()
        rng = np.random.default_rng(0)
        rewards = []
        for _ in range(20):
            actions = rng.integers(3, size=2)
            _, r_sub, d_sub, _ = subproc.step(actions)
            _, r_bat, d_bat, _ = batched.step(actions)
            np.testing.assert_allclose(r_sub, r_bat, rtol=0, atol=1e-6)
            np.testing.assert_array_equal(d_sub, d_bat)
            rewards.extend(r_bat)
        assert len(set(np.round(rewards, 4))) > 3  # the learned model's scores, not a constant
    finally:
        subproc.close()
