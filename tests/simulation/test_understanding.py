"""Reading replies sentence by sentence (cached per sentence) gives the whole text's reading."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_envs.simulation import get_domain
from rlhf_envs.simulation.understanding import _WORD_RE, SENTENCE_RE, Lexicon
from rlhf_envs.simulation.values import extract_values

HAND_WRITTEN = [
    "",
    "ok",
    "I'll refund it now. Sorry for the wait! Anything else?",
    "Unfortunately we cannot refund it. I can put you through to a manager.",
    "Let me check that for you. Could you give me your order ID and your email? Thanks!",
    "Don't worry, I'll refund your $94.00 today.  Have a lovely day.",
    "You idiot. Whatever. Thank you so much, I appreciate your patience.",
]


def _whole_text_cues(lexicon: Lexicon, text: str) -> dict:
    """The cue counts and flags read from the whole text at once (the reference)."""
    lower = text.lower()
    cues = lexicon.cues
    words = _WORD_RE.findall(lower)
    return {
        "declined": bool(cues["decline"].search(lower)),
        "offered_manager": bool(cues["manager"].search(lower)),
        "checking": bool(cues["check"].search(lower)),
        "offered_help": bool(cues["close"].search(lower)),
        "rude": len(cues["rude"].findall(lower)),
        "polite": len(cues["polite"].findall(lower)),
        "empathy": len(cues["empathy"].findall(lower)),
        "words": len(words),
        "word_set": frozenset(words),
        "values": extract_values(text),
    }


def _replies(env_id: str, steps: int = 200) -> list[str]:
    env = gym.make(env_id).unwrapped
    env.reset(seed=11)
    rng = np.random.default_rng(11)
    found = []
    for _ in range(steps):
        found += [c.text for c in env.interface.candidates]
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return found


@pytest.mark.parametrize(
    ("env_id", "domain"),
    [
        ("RLHF-Chat-v0", "customer_service"),
        ("RLHF-Finance-v0", "finance"),
        ("RLHF-Medical-v0", "medical"),
    ],
)
def test_sentence_readings_sum_to_the_whole_texts(env_id, domain):
    lexicon = get_domain(domain).lexicon
    texts = HAND_WRITTEN + _replies(env_id)
    if domain == "customer_service":
        # The hand-written texts do say things: the comparison is not of empty readings.
        assert lexicon.analyse(HAND_WRITTEN[2]).performed
        assert lexicon.analyse(HAND_WRITTEN[3]).declined
    for text in texts:
        reading = lexicon.analyse(text)
        expected = _whole_text_cues(lexicon, text)
        got = {name: getattr(reading, name) for name in expected}
        assert got == expected, text


@pytest.mark.parametrize(
    ("phrase", "text"), [("zork. blip", "Zork. Blip now."), (" blip", "Zork. Blip")]
)
def test_a_cue_phrase_across_a_sentence_break_still_counts(phrase, text):
    lexicon = Lexicon({}, {}, {"polite": [phrase]})
    polite = lexicon.cues["polite"]
    by_sentence = sum(len(polite.findall(s)) for s in SENTENCE_RE.split(text.lower()))
    whole = _whole_text_cues(lexicon, text)["polite"]
    assert by_sentence < whole  # (the phrase matches only across the break)
    assert lexicon.analyse(text).polite == whole
