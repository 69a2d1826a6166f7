"""Fact-like values: found by digit shape (cached) exactly as the patterns find them in the
text itself."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_envs.simulation.values import (
    _WITHOUT_SPACE,
    _value_spans,
    find_values,
    normalise_value,
)

EDGE_CASES = [
    "Your refund of $1,000.99 is on its way; 15% off, 3 business days.",
    "Call (555) 123-4567 or (555)123-4567, not 555-123-4567.",
    "Order 2024-03-11 vs 2024-3-11 and code ab1-cd2, a1b2-c3, x-123.",
    "Email mei.okafor31@mailbox.net or 1a@b-2.org today.",
    "٣٤٥٦ and 12 and 123 and 0123 and $ 5 and 7 %",
    "İstanbul 12345 ß 2024-01-01 ﬃ $9",
    "a\x00b 4829 c",
]


def _reference(text: str) -> tuple[tuple[int, int, str, str], ...]:
    """The patterns run on the text itself (no digit shape, no cache)."""
    lower = text.lower()
    return tuple(
        (s, e, k, lower[s:e] if k in _WITHOUT_SPACE else normalise_value(k, lower[s:e]))
        for s, e, k in _value_spans.__wrapped__(lower)
    )


def _domain_texts() -> list[str]:
    texts = []
    for env_id in ("RLHF-Chat-v0", "RLHF-Finance-v0", "RLHF-Medical-v0"):
        env = gym.make(env_id).unwrapped
        env.reset(seed=11)
        rng = np.random.default_rng(11)
        for _ in range(120):
            texts += [c.text for c in env.interface.candidates]
            texts += [str(v) for v in env.state.scenario.facts.values()]
            _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            texts += [info["user"], *info["system"]]
            if terminated or truncated:
                env.reset()
    return texts


def test_values_found_by_digit_shape_equal_the_patterns_on_the_text():
    for text in _domain_texts() + EDGE_CASES:
        assert find_values(text) == _reference(text), text


def test_texts_that_differ_only_in_digits_share_one_scan():
    _value_spans.cache_clear()
    first = find_values("Order 4829 for $94 placed on 2024-03-11.")
    second = find_values("Order 1023 for $57 placed on 2025-07-19.")
    assert _value_spans.cache_info().hits >= 1
    assert [v for *_, v in first] == ["4829", "$94", "2024-03-11"]
    assert [v for *_, v in second] == ["1023", "$57", "2025-07-19"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "order",
                " ",
                "$",
                "(",
                ")",
                "-",
                ".",
                ",",
                "%",
                "@",
                "a",
                "b1",
                "days",
                "business",
                "x.y",
                "5",
                "12",
                "555",
                "2024",
                "0",
                "٣",
                "İ",
                "\n",
                "_",
                "+",
            ]
        ),
        max_size=30,
    ).map("".join)
)
def test_any_text_reads_as_the_patterns_read_it(text):
    assert find_values(text) == _reference(text)
