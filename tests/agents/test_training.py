"""SB3 helpers: every algorithm x policy kind trains on the real env, and the slow
learning check for the candidate-scoring policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlhf_envs  # noqa: F401
from rlhf_agents.baselines import ExpertAgent, RandomAgent, SB3Agent
from rlhf_agents.evaluation import evaluate, held_out_seeds
from rlhf_agents.training import POLICIES, make_model, train

torch.set_num_threads(1)


@pytest.mark.integration
@pytest.mark.parametrize("algo, policy", sorted(POLICIES))
def test_every_algorithm_and_policy_trains_on_the_env(algo, policy):
    overrides = {"learning_starts": 64} if algo == "dqn" else {}
    model = train(algo, "RLHF-Tiny-v0", policy, total_timesteps=320, n_envs=2, **overrides)
    ev = evaluate(SB3Agent(model, f"{algo}-{policy}"), "RLHF-Tiny-v0", range(3))
    assert len(ev.episodes) == 3 and np.isfinite(ev.values("gold")).all()


def test_unknown_names_are_explained():
    with pytest.raises(
        ValueError, match="algorithm 'sac' is unknown; choose from ppo, a2c, dqn, maskable-ppo"
    ):
        make_model("sac", None)
    with pytest.raises(ValueError, match="policy 'cnn' is unknown"):
        make_model("ppo", None, policy="cnn")
    with pytest.raises(
        ValueError, match="recurrent-ppo has no 'candidate' policy; it offers \\['mlp'\\]"
    ):
        make_model("recurrent-ppo", None, policy="candidate")


HELD_OUT = held_out_seeds(200, offset=1_000_000)  # apart from the comparison harness's


def normalised_gold(model, env_id: str, seeds=HELD_OUT) -> tuple[float, float, float]:
    """(agent - random) / (expert - random) of the gold score per episode on ``seeds``,
    with the expert's and random's gold."""
    expert = evaluate(ExpertAgent(), env_id, seeds).values("gold").mean()
    rand = evaluate(RandomAgent(0), env_id, seeds).values("gold").mean()
    gold = evaluate(SB3Agent(model, "ppo"), env_id, seeds).values("gold").mean()
    return (gold - rand) / (expert - rand), expert, rand


@pytest.mark.slow
def test_ppo_with_the_candidate_policy_approaches_the_expert():
    """Normalised gold score (agent - random) / (expert - random) on 200 held-out seeds
    after 100,000 steps (the issue allows 200,000); the plain MultiInputPolicy's figure at
    the same budget is printed beside it."""
    steps = 100_000
    figures = {}
    for policy in ("candidate", "mlp"):
        model = train("ppo", "RLHF-Chat-v0", policy, total_timesteps=steps, seed=0)
        figures[policy], expert, rand = normalised_gold(model, "RLHF-Chat-v0")
    print(
        f"\nnormalised gold after {steps:,} PPO steps on 200 held-out seeds: "
        f"candidate policy {figures['candidate']:.3f}, MultiInputPolicy {figures['mlp']:.3f} "
        f"(expert gold {expert:.2f}, random {rand:.2f})"
    )
    assert figures["candidate"] >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["RLHF-Finance-v0", "RLHF-Medical-v0"])
def test_ppo_reaches_a_normalised_gold_of_0_8_on_the_other_domains(env_id):
    """The same learning check on financial advice and medical triage: PPO with the
    candidate policy, 100,000 steps, 200 held-out seeds."""
    model = train("ppo", env_id, "candidate", total_timesteps=100_000, seed=0)
    figure, expert, rand = normalised_gold(model, env_id)
    print(
        f"\n{env_id}: normalised gold {figure:.3f} after 100,000 PPO steps "
        f"(expert {expert:.2f}, random {rand:.2f})"
    )
    assert figure >= 0.8


@pytest.mark.slow
def test_ppo_against_a_learned_reward_model_raises_the_gold_score(tmp_path):
    """The RLHF core on RLHF-Chat-v0: 5,000 simulated preference pairs -> linear
    Bradley-Terry reward model -> PPO (candidate policy, 100,000 steps) against
    ``reward="learned:..."``. The gold rubric, which PPO never sees, must rise most of the
    way from random towards the expert on 200 held-out seeds."""
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model

    pairs = FeedbackCollector("RLHF-Chat-v0", seed=0).preferences(5000, progress=False)
    folder = train_reward_model(pairs, "linear", progress=False).model.save(tmp_path / "rm")
    model = train(
        "ppo",
        "RLHF-Chat-v0",
        "candidate",
        total_timesteps=100_000,
        seed=0,
        env_kwargs={"reward": f"learned:{folder}"},
    )
    normalised, expert, rand = normalised_gold(model, "RLHF-Chat-v0")
    gold = rand + normalised * (expert - rand)
    print(
        f"\nPPO against a linear RM (5,000 pairs): normalised gold {normalised:.3f} "
        f"(gold {gold:.2f}, expert {expert:.2f}, random {rand:.2f})"
    )
    assert normalised >= 0.7
