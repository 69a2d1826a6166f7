"""Agents by short name and YAML; trained agents saved as safetensors + JSON."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_agents.checkpoint import load_agent, save_agent
from rlhf_agents.evaluation import evaluate
from rlhf_agents.registry import BUILTIN, load_agent_config, resolve_agents
from rlhf_agents.training import HYPERPARAMS, make_model, train


def test_every_builtin_agent_resolves_and_sb3_ones_build_on_the_chat_env():
    env = gym.make("RLHF-Chat-v0")
    for spec in BUILTIN.values():
        if spec.trains:
            model = make_model(
                spec.algo,
                env,
                spec.policy,
                **dict(spec.hyperparams, **({"buffer_size": 10} if spec.algo == "dqn" else {})),
            )
            assert model.action_space == env.action_space
    assert [s.name for s in resolve_agents(["ppo", "random"])] == ["ppo", "random"]


def test_yaml_changes_hyperparameters_and_adds_agents(tmp_path):
    path = tmp_path / "agents.yaml"
    path.write_text(
        "ppo:\n  hyperparams: {learning_rate: 3e-4}\n"  # YAML 1.1 would read this as a string
        "ppo-wide:\n  base: ppo\n  hyperparams: {policy_kwargs: {hidden_size: 128}}\n"
        "best-of-2:\n  base: best-of-n\n  n: 2\n"
    )
    specs = load_agent_config(path)
    assert specs["ppo"].resolved_hyperparams()["learning_rate"] == 3.0e-4
    assert specs["ppo"].resolved_hyperparams()["n_steps"] == HYPERPARAMS["ppo"]["n_steps"]
    assert specs["ppo-wide"].algo == "ppo" and specs["ppo-wide"].hyperparams["policy_kwargs"] == {
        "hidden_size": 128
    }
    assert specs["best-of-2"].kind == "best-of-n" and specs["best-of-2"].n == 2
    assert BUILTIN["ppo"].hyperparams == {}  # the built-ins are not changed


@pytest.mark.parametrize(
    "text, message",
    [
        ("ppo:\n  learning_rate: 0.1\n", "unknown key(s) ['learning_rate']; accepted: base"),
        ("mine:\n  hyperparams: {}\n", "no agent 'mine' to start from"),
        ("mine:\n  base: sac\n", "no agent 'sac' to start from"),
        ("ppo:\n  algo: sac\n", "algo 'sac' is unknown"),
        ("recurrent-ppo:\n  policy: candidate\n", "recurrent-ppo has no 'candidate' policy"),
        ("- ppo\n", "expected a mapping of agent names"),
        ("ppo: [1, 2\n", "is not valid YAML"),
    ],
)
def test_bad_agent_yaml_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "agents.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_agent_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    "algo, policy",
    [
        ("ppo", "candidate"),
        ("dqn", "candidate"),
        ("recurrent-ppo", "mlp"),
        ("maskable-ppo", "candidate"),
    ],
)
def test_saved_agent_loads_and_acts_exactly_as_trained(tmp_path, algo, policy):
    overrides = (
        {"n_steps": 64, "batch_size": 64}
        if "ppo" in algo
        else {"learning_starts": 64, "buffer_size": 500}
    )
    model = train(algo, "RLHF-Chat-v0", policy, total_timesteps=256, n_envs=2, **overrides)
    params = {**HYPERPARAMS[algo], **overrides}
    folder = save_agent(
        model,
        tmp_path / "agent",
        algo=algo,
        policy=policy,
        env_id="RLHF-Chat-v0",
        hyperparams=params,
    )
    meta = json.loads((folder / "agent.json").read_text())
    assert meta["algo"] == algo and meta["num_timesteps"] == model.num_timesteps
    loaded = load_agent(folder)
    from rlhf_agents.baselines import SB3Agent

    seeds = [5, 6, 7]
    before = evaluate(SB3Agent(model, algo), "RLHF-Chat-v0", seeds)
    after = evaluate(loaded, "RLHF-Chat-v0", seeds)
    np.testing.assert_array_equal(before.values("gold"), after.values("gold"))
    assert [e.transcript for e in before.episodes] == [e.transcript for e in after.episodes]


def test_checkpoint_refuses_to_overwrite_other_folders_and_reports_missing_files(tmp_path):
    model = train("ppo", "RLHF-Tiny-v0", total_timesteps=64, n_envs=1, n_steps=64, batch_size=64)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an agent checkpoint"):
        save_agent(model, tmp_path, algo="ppo", policy="candidate", env_id="RLHF-Tiny-v0")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(FileNotFoundError, match="needs agent.json and policy.safetensors"):
        load_agent(tmp_path)
