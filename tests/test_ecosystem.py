"""The envs in the tools people already use: Gymnasium's wrappers and RL Baselines3 Zoo."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import FlattenObservation, RecordEpisodeStatistics, TimeLimit

import rlhf_envs  # noqa: F401


def _play(env, seed=0, action=0):
    env.reset(seed=seed)
    rewards, info = [], {}
    while True:
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            return rewards, info, truncated


def test_record_episode_statistics_sums_the_episode():
    env = RecordEpisodeStatistics(gym.make("RLHF-Chat-v0"))
    rewards, info, _ = _play(env)
    assert info["episode"]["r"] == pytest.approx(sum(rewards)) and info["episode"]["l"] == len(
        rewards
    )


def test_time_limit_truncates_where_asked():
    # Two turns are too few for any task (greeting, verification, ... take more), so the
    # limit, not the user, ends the episode.
    env = TimeLimit(gym.make("RLHF-Chat-v0"), max_episode_steps=2)
    for seed in range(5):
        rewards, _, truncated = _play(env, seed=seed, action=1)
        assert len(rewards) == 2 and truncated
    made = gym.make("RLHF-Chat-v0", max_episode_steps=2)  # the same through make
    assert _play(made, seed=0, action=1)[0] == _play(env, seed=0, action=1)[0]


def test_flatten_observation_gives_one_vector_that_sb3_trains_on():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env

    env = FlattenObservation(gym.make("RLHF-Chat-v0"))
    inner = gym.make("RLHF-Chat-v0")
    obs, _ = env.reset(seed=4)
    raw, _ = inner.reset(seed=4)
    assert env.observation_space.shape == (gym.spaces.flatdim(inner.observation_space),)
    np.testing.assert_array_equal(obs, gym.spaces.flatten(inner.observation_space, raw))
    assert env.observation_space.contains(obs)
    check_env(env)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, device="cpu", seed=0)
    model.learn(128)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_rl_zoo3_trains_from_the_shipped_hyperparameters_and_replays(tmp_path):
    # find_spec, not import: importing rl_zoo3 patches gymnasium's TimeLimit for the whole process.
    if importlib.util.find_spec("rl_zoo3") is None:
        pytest.skip("rl_zoo3 is not installed (pip install -e '.[zoo]')")
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.train",
            "--algo",
            "ppo",
            "--env",
            "RLHF-Chat-v0",
            "--gym-packages",
            "rlhf_envs",
            "--conf-file",
            "rlhf_agents.zoo.ppo",
            "-n",
            "1024",
            "--seed",
            "0",
            "-f",
            "logs",
            "--eval-freq",
            "-1",
            "--n-eval-envs",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    run = tmp_path / "logs" / "ppo" / "RLHF-Chat-v0_1"
    assert (run / "RLHF-Chat-v0.zip").is_file()
    config = (run / "RLHF-Chat-v0" / "config.yml").read_text()
    assert (
        "rlhf_agents.candidate_policy.CandidateActorCriticPolicy" in config
    )  # the shipped policy was used
    assert "total_timesteps" in train.stdout or "Saving to" in train.stdout
    enjoy = subprocess.run(
        [
            sys.executable,
            "-m",
            "rl_zoo3.enjoy",
            "--algo",
            "ppo",
            "--env",
            "RLHF-Chat-v0",
            "--gym-packages",
            "rlhf_envs",
            "-f",
            "logs",
            "--no-render",
            "-n",
            "100",
            "--deterministic",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert enjoy.returncode == 0, enjoy.stderr[-3000:]
    assert "Mean reward:" in enjoy.stdout


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_shipped_zoo_hyperparameters_build_a_model(algo):
    from rlhf_agents.training import ALGORITHMS

    hyperparams = importlib.import_module(f"rlhf_agents.zoo.{algo}").hyperparams["RLHF-Chat-v0"]
    kwargs = {k: v for k, v in hyperparams.items() if k not in ("n_envs", "n_timesteps")}
    module, _, name = kwargs.pop("policy").rpartition(".")  # a dotted name, as rl-zoo3 reads it
    policy = getattr(importlib.import_module(module), name)
    if algo == "dqn":
        kwargs["buffer_size"] = 100
    model = ALGORITHMS[algo](policy, gym.make("RLHF-Chat-v0"), device="cpu", **kwargs)
    assert hyperparams["n_timesteps"] >= 10_000 and isinstance(model.policy, policy)
    numbers = {k: v for k, v in kwargs.items() if isinstance(getattr(model, k, None), int | float)}
    assert {"gamma", "learning_rate"} <= set(numbers)
    assert {k: getattr(model, k) for k in numbers} == numbers  # the zoo's values reached SB3
