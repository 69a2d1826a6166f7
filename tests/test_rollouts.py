"""Multi-turn LM rollouts: token-exact histories, masks, log-probabilities, reply groups."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_envs.interfaces.text import REPLY_CHARSET
from rlhf_envs.lm.reference import continuation_logprobs
from rlhf_envs.rollouts import LMPolicy, play_episodes, sample_reply_groups

pytestmark = pytest.mark.lm
IDS = ["RLHF-ChatText-v0", "RLHF-FinanceTokens-v0"]


@pytest.fixture(scope="module")
def policy(test_lm_folder) -> LMPolicy:
    return LMPolicy.from_folder(test_lm_folder)


@pytest.fixture(scope="module")
def episodes(policy, test_lm_folder):
    import os

    os.environ["RLHF_ENVS_LM"] = str(test_lm_folder)  # (module fixture: before monkeypatch)
    return {env_id: play_episodes(policy, env_id, [11, 12, 13], seed=3) for env_id in IDS}


@pytest.mark.parametrize("env_id", IDS)
def test_completion_ids_decode_to_exactly_the_reply_the_env_received(policy, episodes, env_id):
    for episode in episodes[env_id]:
        agent_lines = [
            line[len("Agent: ") :]
            for line in episode.transcript.splitlines()
            if line.startswith("Agent: ")
        ]
        assert len(agent_lines) == len(episode.turns) >= 1
        for turn, line in zip(episode.turns, agent_lines, strict=True):
            decoded = policy.reply_text(turn.reply_ids)
            if env_id.endswith("Text-v0"):
                # The text interface takes its charset only: other characters (a byte-level
                # fragment the small LM emits now and then) arrive as "?", nothing else.
                decoded = "".join(c if c in REPLY_CHARSET else "?" for c in decoded) or "..."
            assert decoded == turn.reply
            assert turn.reply.splitlines()[0] == line.strip() or turn.reply == "..."


@pytest.mark.parametrize("env_id", IDS)
def test_each_prompt_is_the_window_of_the_token_exact_history(policy, episodes, env_id):
    for episode in episodes[env_id]:
        for turn in episode.turns:
            start = turn.reply_start
            assert episode.token_ids[start - len(turn.prompt_ids) : start] == turn.prompt_ids
            assert turn.prompt_ids[-len(policy.format.reply_prefix) :] == policy.format.reply_prefix
            assert len(turn.prompt_ids) <= policy.prompt_budget
            assert episode.token_ids[start : start + len(turn.reply_ids)] == turn.reply_ids
        # Env turns are encoded once as they arrive: the history starts with the opening.
        user_open = policy.format.turn_ids("user", episode.transcript.splitlines()[0][6:])
        assert episode.token_ids[: len(user_open)] == user_open


@pytest.mark.parametrize("env_id", IDS)
def test_the_mask_covers_exactly_the_agents_tokens(episodes, env_id):
    for episode in episodes[env_id]:
        mask = np.array(episode.agent_mask)
        ids = np.array(episode.token_ids)
        assert len(mask) == len(ids) == len(episode.logprobs)
        expected = np.zeros(len(ids), dtype=int)
        for turn in episode.turns:
            expected[turn.reply_start : turn.reply_start + len(turn.reply_ids)] = 1
        assert (mask == expected).all()
        produced = [i for t in episode.turns for i in t.reply_ids]
        assert ids[mask == 1].tolist() == produced
        assert np.all(np.array(episode.logprobs)[mask == 0] == 0)


@pytest.mark.parametrize("env_id", IDS)
def test_sampling_logprobs_equal_a_fresh_forward(policy, episodes, env_id):
    turns = [t for e in episodes[env_id] for t in e.turns]
    fresh = continuation_logprobs(
        policy.model, [t.prompt_ids for t in turns], [t.reply_ids for t in turns], policy.pad_id
    )
    worst = max(
        np.abs(np.array(f) - np.array(t.logprobs)).max() for f, t in zip(fresh, turns, strict=True)
    )
    assert worst < 1e-4


def test_rewards_and_gold_are_the_envs(episodes):
    for episode in episodes["RLHF-ChatText-v0"]:
        assert episode.rewards == [t.reward for t in episode.turns]
        assert episode.gold == pytest.approx(sum(t.gold for t in episode.turns))
        assert all("rubric" not in t.components or np.isfinite(t.reward) for t in episode.turns)
        assert episode.terminated or episode.truncated


def test_episodes_are_reproducible_from_their_seeds(policy, episodes):
    again = play_episodes(policy, "RLHF-ChatText-v0", [11, 12, 13], seed=3)
    for a, b in zip(again, episodes["RLHF-ChatText-v0"], strict=True):
        assert a.token_ids == b.token_ids and a.rewards == b.rewards
    other = play_episodes(policy, "RLHF-ChatText-v0", [11, 12, 13], seed=4)
    assert [e.token_ids for e in other] != [e.token_ids for e in again]


def test_best_of_n_sends_the_reply_the_reward_model_prefers(policy):
    one = play_episodes(policy, "RLHF-ChatText-v0", [21, 22, 23, 24], seed=0)
    best = play_episodes(policy, "RLHF-ChatText-v0", [21, 22, 23, 24], best_of=6, seed=0)
    first = np.mean([e.turns[0].reward for e in one])
    assert np.mean([e.turns[0].reward for e in best]) >= first


def test_a_reply_group_answers_one_state_g_times(policy):
    groups = sample_reply_groups(policy, "RLHF-ChatText-v0", [31, 32, 33], 4, seed=1, max_turns=4)
    assert [g.seed for g in groups] == [31, 32, 33]
    for group in groups:
        assert len(group.replies) == 4
        assert all(r.prompt_ids == group.prompt_ids for r in group.replies)
        assert all(r.turn == group.turn for r in group.replies)
        assert group.turn < 4 and group.trunk.turns[group.turn] is group.replies[0]
        # the state answered is the trunk's: its window ends the trunk's history there
        start = group.replies[0].reply_start
        assert group.trunk.token_ids[start - len(group.prompt_ids) : start] == group.prompt_ids
    assert len({tuple(r.reply_ids) for g in groups for r in g.replies}) > 3


def test_a_horizon_adds_the_rewards_of_the_turns_that_follow_each_reply(policy):
    args = (policy, "RLHF-ChatText-v0", [41, 42, 43], 4)
    now = sample_reply_groups(*args, seed=2, max_turns=3)
    later = sample_reply_groups(*args, seed=2, max_turns=3, horizon=2)
    for a, b in zip(now, later, strict=True):
        # the same states and replies: the continuation is drawn after every group
        assert [r.reply_ids for r in a.replies] == [r.reply_ids for r in b.replies]
        assert a.returns == [r.reward for r in a.replies]
        assert a.gold_returns == [r.gold for r in a.replies]
        # the leader's copy is the trunk: its return is its reward and the next two
        following = b.trunk.turns[b.turn : b.turn + 3]
        assert b.returns[0] == pytest.approx(sum(t.reward for t in following))
        assert b.gold_returns[0] == pytest.approx(sum(t.gold for t in following))
    assert any(len(b.trunk.turns) > b.turn + 1 for b in later)
    changed = [a.returns != b.returns for a, b in zip(now, later, strict=True)]
    assert any(changed)
    with pytest.raises(ValueError, match="horizon"):
        sample_reply_groups(*args, horizon=-1)


def test_tokens_ids_need_the_envs_vocabulary(test_lm_folder, policy):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(test_lm_folder)
    other.add_tokens(["<extra>"])
    mismatched = LMPolicy(policy.model, other)
    with pytest.raises(ValueError, match="vocabulary of its reference LM"):
        play_episodes(mismatched, "RLHF-ChatTokens-v0", [1])
    with pytest.raises(ValueError, match="text or tokens id"):
        play_episodes(policy, "RLHF-Chat-v0", [1])
