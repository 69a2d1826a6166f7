"""The LM policy trains with SB3's PPO and sb3-contrib's MaskablePPO unchanged; the KL
hook makes the return KL-regularised; best-of-n picks what the reward model prefers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env

import rlhf_envs  # noqa: F401
from rlhf_agents.best_of_n import BestOfNAgent
from rlhf_agents.lm_policy import (
    KLPenaltyCallback,
    LMActorCriticPolicy,
    MaskableLMActorCriticPolicy,
)
from rlhf_envs.lm.reference import ReferenceLM

# The LM policy needs the test LM, and its PPO rollouts and training are integration tests.
pytestmark = [pytest.mark.lm, pytest.mark.integration]

BETA = 0.2
ENV_KWARGS = {"kl_coef": BETA}


def _lm_path() -> str:
    return str(gym.make("RLHF-ChatTokens-v0").unwrapped.reference_lm.path)


class RewardTap(BaseCallback):
    """Copies the step's rewards (before or after the KL hook, by its place in the list)."""

    def __init__(self):
        super().__init__()
        self.rewards, self.log_probs, self.ref, self.dones, self.reply_ends = [], [], [], [], []

    def _on_step(self) -> bool:
        self.rewards.append(np.array(self.locals["rewards"], dtype=float))
        self.log_probs.append(self.locals["log_probs"].detach().numpy().copy())
        self.ref.append([info.get("ref_logprob", np.nan) for info in self.locals["infos"]])
        self.dones.append(np.array(self.locals["dones"]))
        self.reply_ends.append(np.array(["reply" in info for info in self.locals["infos"]]))
        return True


def test_ppo_trains_the_lm_policy_and_the_kl_hook_makes_the_return_kl_regularised():
    torch.manual_seed(0)
    venv = make_vec_env("RLHF-ChatTokens-v0", n_envs=2, seed=0, env_kwargs=ENV_KWARGS)
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        gamma=1.0,
        learning_rate=1e-4,
        seed=0,
        policy_kwargs={"lm": _lm_path()},
    )
    before, after, kl = RewardTap(), RewardTap(), KLPenaltyCallback()
    model.learn(256, callback=CallbackList([before, kl, after]))
    raw, shaped = np.concatenate(before.rewards), np.concatenate(after.rewards)
    log_pi, log_ref = np.concatenate(before.log_probs), np.concatenate(before.ref).astype(float)
    # The env added beta * log pi_ref; the hook subtracts beta * log pi.
    np.testing.assert_allclose(shaped, raw - BETA * log_pi, atol=1e-6)
    assert kl.kl_coef == BETA and len(kl.history) == 2
    # Returns stop at the end of each reply (gamma = 1 within it): the hook marks the
    # reply's last token done, so the buffer starts a new return after it.
    ends, dones = np.concatenate(after.reply_ends), np.concatenate(after.dones)
    assert ends.sum() >= 2 and dones[ends].all() and not np.concatenate(before.dones)[ends].all()
    starts = model.rollout_buffer.episode_starts.reshape(-1, 2)  # (steps, envs) of the last rollout
    last_ends = np.stack(after.reply_ends[-64:])
    assert starts[1:][last_ends[:-1]].all()
    # At the start the policy is the reference: the KL of the first rollout is ~0.
    assert abs(kl.history[0]) < 1e-3
    np.testing.assert_allclose(log_pi[:128], log_ref[:128], atol=1e-3)
    # The policy's parameters changed: PPO trained the LM.
    start = ReferenceLM(_lm_path()).model.state_dict()
    tuned = model.policy.lm.state_dict()
    assert any(not torch.equal(start[k], tuned[k]) for k in start)


def test_tuned_policy_saves_as_a_reference_lm(tmp_path):
    venv = make_vec_env("RLHF-ChatTokens-v0", n_envs=1, seed=0)
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        learning_rate=1e-3,
        policy_kwargs={"lm": _lm_path()},
    )
    model.learn(32)
    folder = model.policy.save_pretrained(tmp_path / "tuned")
    reloaded = ReferenceLM(folder)
    ids = torch.tensor([reloaded.encode("User: hello")])
    with torch.no_grad():
        np.testing.assert_allclose(
            reloaded.model(ids).logits.numpy(), model.policy.lm(ids).logits.numpy(), atol=1e-5
        )
    # The tuned model drives the tokens env like any reference LM.
    env = gym.make("RLHF-ChatTokens-v0", lm=str(folder), kl_coef=0.1)
    env.reset(seed=0)
    assert "ref_logprob" in env.step(env.unwrapped.expert_action())[4]


def test_maskable_ppo_never_samples_a_masked_token():
    venv = make_vec_env("RLHF-ChatTokens-v0", n_envs=2, seed=0)
    model = MaskablePPO(
        MaskableLMActorCriticPolicy,
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        policy_kwargs={"lm": _lm_path()},
    )
    pad = venv.get_attr("reference_lm")[0].pad_id

    class Actions(BaseCallback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def _on_step(self) -> bool:
            self.seen.extend(int(a) for a in self.locals["actions"])
            return True

    # Make the padding token the policy's favourite: masking must still rule it out.
    with torch.no_grad():
        model.policy.lm.get_output_embeddings().bias = torch.nn.Parameter(
            torch.zeros(venv.action_space.n)
        )
        model.policy.lm.get_output_embeddings().bias[pad] = 50.0
    seen = Actions()
    model.learn(128, callback=seen)
    assert len(seen.seen) >= 128 and pad not in seen.seen


def test_lm_policy_needs_an_lm_and_a_matching_vocabulary(tmp_path):
    venv = make_vec_env("RLHF-ChatTokens-v0", n_envs=1)
    with pytest.raises(ValueError, match="policy_kwargs=\\{'lm'"):
        PPO(LMActorCriticPolicy, venv)


def test_best_of_n_sends_the_reply_the_reward_model_prefers():
    env = gym.make("RLHF-ChatTokens-v0")
    env.reset(seed=4)
    agent = BestOfNAgent(8, reward="rubric", seed=1)
    reply, tokens = agent.choose(env)
    assert agent.last_scores.shape == (8,) and reply == env.unwrapped.reference_lm.reply_text(
        tokens
    )
    best = float(agent.last_scores.max())
    # Sent token by token, the reply earns the score best-of-n saw.
    reward, info = 0.0, {}
    while "reply" not in info:
        _, reward, _, _, info = env.step(agent.act(None, env))
    assert info["reply"] == reply and reward == pytest.approx(best)
    # Reproducible from its seed; on the text interface it sends the string.
    text = gym.make("RLHF-ChatText-v0")
    text.reset(seed=4)
    again = BestOfNAgent(8, reward="rubric", seed=1)
    assert again.act(None, text) in (reply, "...")
    with pytest.raises(ValueError, match="n must be at least 1"):
        BestOfNAgent(0)


def test_shared_prefix_forward_gives_the_per_window_outputs_on_a_rollout():
    # A rollout holds many tokens of the same reply; running each group of prefix
    # windows once must give exactly what running every window gives.
    venv = make_vec_env("RLHF-ChatTokens-v0", n_envs=2, seed=0)
    model = PPO(
        LMActorCriticPolicy,
        venv,
        n_steps=96,
        batch_size=192,
        n_epochs=1,
        seed=0,
        policy_kwargs={"lm": _lm_path()},
    )
    model.learn(192)
    batch = next(model.rollout_buffer.get(192))
    policy = model.policy
    with torch.no_grad():
        shared = policy.evaluate_actions(batch.observations, batch.actions.long().flatten())
        policy.share_prefixes = False
        each = policy.evaluate_actions(batch.observations, batch.actions.long().flatten())
    for a, b in zip(shared, each, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-4)
    # The rollout really had prefix groups (else the test would show nothing).
    from rlhf_agents.lm_policy import _prefix_groups

    ids, mask = batch.observations["input_ids"].long(), batch.observations["attention_mask"].long()
    assert len(torch.unique(_prefix_groups(ids, mask)[0])) < 192 // 4
