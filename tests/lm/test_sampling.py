"""Batched sampling: reproducible, stops at a stop token, log-probs equal a fresh forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhf_envs.lm.reference import continuation_logprobs, load_reference_lm
from rlhf_envs.lm.sampling import sample_replies


@pytest.fixture(scope="module")
def lm(test_lm_folder):
    return load_reference_lm(test_lm_folder)


def _prompts(lm):
    return [
        lm.turn_ids("user", "I want a refund for my shirt.") + lm.agent_prefix_ids,
        lm.turn_ids("user", "Hi") + lm.agent_prefix_ids,
        lm.turn_ids("user", "My account is locked and I cannot log in, help!")
        + lm.turn_ids("agent", "Sure, what is your full name?")
        + lm.turn_ids("user", "Joe Bloggs.")
        + lm.agent_prefix_ids,
    ]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_of_a_left_padded_batch_equal_a_fresh_forward(lm, temperature):
    prompts = _prompts(lm)
    out = sample_replies(
        lm.model, prompts, 30, {lm.eot_id}, lm.pad_id, temperature, torch.Generator().manual_seed(0)
    )
    fresh = continuation_logprobs(lm.model, prompts, [o.ids for o in out], lm.pad_id, temperature)
    for o, f in zip(out, fresh, strict=True):
        assert len(o.ids) == len(o.logprobs) >= 1
        assert np.abs(np.array(o.logprobs) - np.array(f)).max() < 1e-4
        # each row alone gives the same numbers as in the batch
    alone = continuation_logprobs(lm.model, prompts[1:2], [out[1].ids], lm.pad_id, temperature)[0]
    assert np.allclose(alone, out[1].logprobs, atol=1e-4)


def test_replies_stop_at_a_stop_token_or_the_cap(lm):
    out = sample_replies(
        lm.model,
        _prompts(lm) * 4,
        12,
        {lm.eot_id},
        lm.pad_id,
        1.0,
        torch.Generator().manual_seed(1),
    )
    for o in out:
        assert o.stopped == (o.ids[-1] == lm.eot_id)
        assert lm.eot_id not in o.ids[:-1]
        assert o.stopped or len(o.ids) == 12


def test_sampling_is_reproducible_from_the_generator(lm):
    def draw(seed):
        out = sample_replies(
            lm.model,
            _prompts(lm),
            20,
            {lm.eot_id},
            lm.pad_id,
            1.0,
            torch.Generator().manual_seed(seed),
        )
        return [o.ids for o in out]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_temperature_zero_is_greedy(lm):
    prompt = [[1, 2, 3]]
    one, two = (
        sample_replies(
            lm.model, prompt, 6, {lm.eot_id}, lm.pad_id, 0.0, torch.Generator().manual_seed(s)
        )
        for s in (1, 2)
    )
    assert one[0].ids == two[0].ids  # no randomness left
    logits = lm.model(input_ids=torch.tensor(prompt)).logits[0, -1]
    assert one[0].ids[0] == int(logits.argmax())
    assert one[0].logprobs[0] == pytest.approx(float(torch.log_softmax(logits, -1).max()), abs=1e-5)


def test_bad_arguments_are_named(lm):
    with pytest.raises(ValueError, match="temperature"):
        sample_replies(lm.model, [[1]], 3, {lm.eot_id}, lm.pad_id, -1.0)
    with pytest.raises(ValueError, match="at least one token"):
        sample_replies(lm.model, [[]], 3, {lm.eot_id}, lm.pad_id)
