"""The reference LM: exact incremental and batched scoring, reproducible sampling that
ends at the end of a turn, pickled by path, clear errors for folders without a model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rlhf_envs.lm.reference import LMError, ReferenceLM, feed_batch, load_reference_lm


@pytest.fixture(scope="module")
def lm(test_lm_folder) -> ReferenceLM:
    """The session's test LM (built by conftest.py from the project's pipeline)."""
    return load_reference_lm(test_lm_folder)


def test_incremental_scoring_matches_scoring_the_whole_window(lm):
    context = (
        lm.turn_ids("user", "I want to return my jeans, order 1234567890.") + lm.agent_prefix_ids
    )
    reply = lm.encode(" Sure, could you tell me your full name?") + [lm.eot_id]
    batch = lm.logprobs_of([context, context[3:]], [reply, reply[:4]])
    scorer = lm.start(context)
    steps = []
    for token in reply:
        steps.append(scorer.logprob(token))
        scorer.advance(token)
    np.testing.assert_allclose(steps, batch[0], atol=1e-4)
    assert len(batch[1]) == 4 and np.all(batch[1] < 0)


def _alone(lm, context):
    scorer = lm.start(context)
    scorer.logprob(0)  # runs its forward pass
    return scorer


def test_batched_feeding_matches_each_scorer_alone(lm):
    """One forward for scorers at different cache lengths, some starting a new context,
    gives each the log-probabilities it gets alone."""
    contexts = [
        lm.turn_ids("user", "I want to return my jeans, order 1234567890.") + lm.agent_prefix_ids,
        lm.turn_ids("user", "Hi.") + lm.agent_prefix_ids,
        lm.turn_ids("user", "My password does not work and I am locked out of my account.")
        + lm.agent_prefix_ids,
    ]
    reply = lm.encode(" Sure, could you tell me your full name please?") + [lm.eot_id]
    alone = [lm.start(c) for c in contexts]
    together = [lm.start(c) for c in contexts]
    for t, token in enumerate(reply):
        active = [i for i in range(3) if t >= i]  # later rows join later: caches differ in length
        if t == 5:  # row 0 restarts on a new context while the others go on
            alone[0], together[0] = lm.start(contexts[1][:3]), lm.start(contexts[1][:3])
        feed_batch([together[i] for i in active])
        for i in active:
            assert not together[i].pending
            np.testing.assert_allclose(
                together[i].logprob(token), alone[i].logprob(token), atol=1e-4
            )
            np.testing.assert_allclose(together[i].logprobs, alone[i].logprobs, atol=1e-4)
            alone[i].advance(token)
            together[i].advance(token)
    assert [s.length for s in together] == [s.length for s in alone]
    # A long cache beside a new context is wider than the model's positions: fed apart.
    long_context = (contexts[2] * 8)[: lm.max_positions - 8]
    wide = [lm.start(long_context), lm.start(contexts[0] * 2)]
    feed_batch([wide[0]])
    wide[0].advance(reply[0])
    assert wide[0].length + 1 + len(contexts[0] * 2) > lm.max_positions
    feed_batch(wide)
    np.testing.assert_allclose(wide[1].logprobs, _alone(lm, contexts[0] * 2).logprobs, atol=1e-4)
    np.testing.assert_allclose(
        wide[0].logprobs, _alone(lm, long_context + [reply[0]]).logprobs, atol=1e-4
    )


def test_sampling_is_reproducible_and_ends_at_end_of_turn(lm):
    context = lm.turn_ids("user", "Hi, I need help with my order.") + lm.agent_prefix_ids
    a = lm.sample(context, n=4, max_new_tokens=40, seed=3)
    assert a == lm.sample(context, n=4, max_new_tokens=40, seed=3)
    assert a != lm.sample(context, n=4, max_new_tokens=40, seed=4)
    for sample in a:
        assert 1 <= len(sample) <= 40
        assert lm.eot_id not in sample[:-1] and lm.pad_id not in sample
    # The SFT model writes an agent's reply, in words.
    assert any(len(lm.reply_text(s).split()) >= 3 for s in a)


def test_reference_lm_pickles_by_path(lm):
    clone = pickle.loads(pickle.dumps(lm))
    assert clone is lm  # the same process shares one loaded model


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(LMError, match="no config.json"):
        ReferenceLM(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LMError, match=f"cannot load the language model in {tmp_path}"):
        ReferenceLM(tmp_path)


def test_turn_ids_are_cached_but_each_call_gets_its_own_list(lm):
    from rlhf_envs.dialogue import format_turn

    first = lm.turn_ids("user", "Hello, my order is late.")
    assert first == lm.encode(format_turn("user", "Hello, my order is late.", eot=lm.eot))
    first.append(-1)  # a caller's edit must not reach the cache
    again = lm.turn_ids("user", "Hello, my order is late.")
    assert again == first[:-1] and again is not first


def test_scores_skip_the_context_logits_without_changing_them(lm):
    """Logits are computed for the continuation's positions only; the numbers are those
    of the full forward pass."""
    from rlhf_envs.lm import reference

    rng = np.random.default_rng(0)
    contexts = [list(rng.integers(2, lm.vocab_size, size=n)) for n in (0, 7, 60, 90)]
    replies = [list(rng.integers(2, lm.vocab_size, size=n)) for n in (5, 1, 20, 12)]
    fast = reference.continuation_logprobs(lm.model, contexts, replies, lm.pad_id)
    assert reference._takes_logits_to_keep(lm.model)
    lm.model._rlhf_logits_to_keep = False
    try:
        full = reference.continuation_logprobs(lm.model, contexts, replies, lm.pad_id)
    finally:
        lm.model._rlhf_logits_to_keep = None
    for a, b, n in zip(fast, full, (5, 1, 20, 12), strict=True):
        assert a.shape == (n,)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
