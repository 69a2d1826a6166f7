"""The examples run as a user would run them, with tiny budgets, and report what they
did: each example's main(Args(...)) is called in-process."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_train_ppo_example_runs_with_a_tiny_budget(capsys):
    from rlhf_agents.baselines import RandomAgent
    from rlhf_agents.evaluation import evaluate, held_out_seeds

    module = runpy.run_path(str(ROOT / "examples" / "train_ppo.py"))
    result = module["main"](module["Args"](steps=1024, episodes=3))
    # Both agents played the same three held-out episodes; the random baseline is the
    # one the evaluation harness gives for those seeds, and what is printed is returned.
    random = evaluate(RandomAgent(0), "RLHF-Chat-v0", held_out_seeds(3))
    assert result["random_success"] == random.values("success").mean()
    assert result["ppo_success"] in (0.0, 1 / 3, 2 / 3, 1.0)
    out = capsys.readouterr().out
    assert f"ppo-candidate: success {result['ppo_success']:.0%}" in out
    assert "\nUser: " in out  # a transcript of the trained agent


def test_learned_reward_example_runs_with_a_tiny_budget(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "learned_reward.py"))
    result = module["main"](
        module["Args"](pairs=300, steps=1024, episodes=3, out=str(tmp_path / "rm"))
    )
    assert result["rm_accuracy"] > 0.6
    assert (tmp_path / "rm" / "model.safetensors").is_file()


def test_rlhf_tokens_example_runs_with_a_tiny_budget(tmp_path, test_lm_folder):
    import gymnasium as gym
    import torch

    from rlhf_envs.lm.reference import ReferenceLM

    module = runpy.run_path(str(ROOT / "examples" / "rlhf_tokens.py"))
    args = module["Args"](steps=1024, episodes=2, out=str(tmp_path / "tuned"), threads=1)
    result = module["main"](args)
    assert result["kl"] >= -1e-3  # an estimate of a KL divergence: not below 0 but by noise
    assert all(np.isfinite(result[k]) for k in ("reference_gold", "ppo_gold"))
    # The saved folder is the tuned policy, not a copy of the reference it started from,
    # and it drives a tokens env as its reference LM.
    tuned = ReferenceLM(tmp_path / "tuned")
    env = gym.make("RLHF-ChatTokens-v0", lm=str(tmp_path / "tuned"))
    reference = ReferenceLM(test_lm_folder)
    assert tuned.vocab_size == reference.vocab_size
    changed = [
        name
        for name, weight in tuned.model.state_dict().items()
        if not torch.equal(weight, reference.model.state_dict()[name])
    ]
    assert changed
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_custom_reward_example_trains_against_its_plugin(monkeypatch):
    from rlhf_envs.dialogue import MAX_TURNS
    from rlhf_envs.rewards import Exchange, registry
    from rlhf_envs.rewards.registry import make_reward_model

    # The example registers its plugin for the whole process: taken back afterwards, so
    # later tests in this worker see the registry they expect.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    module = runpy.run_path(str(ROOT / "examples" / "custom_reward.py"))
    result = module["main"](module["Args"](steps=512, episodes=3, weight=0.5))
    # The return is the rubric (the gold reward) plus 0.5 x brevity, which is between 0
    # and 1 per reply and 1 for a reply of at most 30 words: the plugin was in the reward.
    assert 0 < result["return"] - result["gold"] <= 0.5 * MAX_TURNS
    brevity = make_reward_model("brevity:10")  # the plugin stays registered by name
    replies = ["Sure.", " ".join(["word"] * 15), " ".join(["word"] * 25)]
    scores = brevity.score([Exchange(None, (), reply) for reply in replies])
    np.testing.assert_allclose(scores, [1.0, 0.5, 0.0])


@pytest.mark.timeout(600)
def test_compare_reward_models_example_trains_one_agent_per_reward(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "compare_reward_models.py"))
    gold = module["main"](
        module["Args"](steps=512, seeds=1, scenarios=3, out=str(tmp_path), jobs=1)
    )
    assert set(gold) == {"rubric:warm", "rubric:stickler"}
    assert (tmp_path / "leaderboard.md").read_text().count("### RLHF-Chat-v0") == 2


def test_evaluate_saved_agent_example_loads_a_checkpoint(tmp_path):
    from rlhf_agents.baselines import SB3Agent
    from rlhf_agents.checkpoint import save_agent
    from rlhf_agents.evaluation import evaluate, held_out_seeds
    from rlhf_agents.training import HYPERPARAMS, train

    model = train("ppo", "RLHF-Chat-v0", total_timesteps=256, n_envs=2, n_steps=128, batch_size=128)
    save_agent(
        model,
        tmp_path / "ckpt",
        algo="ppo",
        policy="candidate",
        env_id="RLHF-Chat-v0",
        hyperparams={**HYPERPARAMS["ppo"], "n_steps": 128, "batch_size": 128},
    )
    module = runpy.run_path(str(ROOT / "examples" / "evaluate_saved_agent.py"))
    result = module["main"](module["Args"](checkpoint=str(tmp_path / "ckpt"), episodes=3))
    # The reloaded agent acts as the trained one did: same greedy episodes, same scores.
    trained = evaluate(SB3Agent(model, "ppo"), "RLHF-Chat-v0", held_out_seeds(3))
    assert result["gold"] == pytest.approx(trained.values("gold").mean())
    assert result["success"] == trained.values("success").mean()
    with pytest.raises(FileNotFoundError, match="is not an agent checkpoint"):
        module["main"](module["Args"](checkpoint=str(tmp_path), episodes=1))


def test_feedback_store_example_runs_with_a_tiny_budget(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "feedback_store.py"))
    result = module["main"](
        module["Args"](db=str(tmp_path / "f.sqlite"), rm_dir=str(tmp_path / "rms"), pairs=120)
    )
    assert result["accuracy"] > 0.6
    assert result["exported"] >= 240
    assert (tmp_path / "rms" / "current" / "model.safetensors").is_file()
