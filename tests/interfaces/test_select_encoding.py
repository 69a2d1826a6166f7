"""The select interface's text encoder: batched, cached and still the same numbers."""

from __future__ import annotations

import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401  (registers the ids)
from rlhf_envs.interfaces import hashed_encoder
from rlhf_envs.interfaces.hashed_encoder import HashedTextEncoder, RecurringCache
from rlhf_envs.simulation.understanding import SENTENCE_RE
from rlhf_envs.simulation.values import extract_values
from rlhf_envs.words import value_marked_tokens

TEXTS = [
    "Thanks, Crystal. I can see order 4829-1823 for $94.00 placed on 2024-03-11.",
    "Let me check our system for you. One moment please!",
    "Your refund of $57 will arrive in 5 business days. Anything else?",
    "Email me at a.b@example.org or call (555) 123-4567.",
    "",
    "ok",
]


def _candidate_texts(env_id: str, steps: int = 150) -> list[tuple[str, frozenset[str]]]:
    env = gym.make(env_id).unwrapped
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    found = []
    for _ in range(steps):
        found += [(c.text, env.state.seen_values) for c in env.interface.candidates]
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
    return found


def test_batch_rows_equal_single_encodings_and_sentence_sums():
    enc = HashedTextEncoder(64)
    seen = frozenset({"$94", "2024-03-11"})
    batch = enc.encode_batch(TEXTS, "agent", seen)
    fresh = HashedTextEncoder(64)  # (no caches shared with the batch)
    for row, text in zip(batch, TEXTS, strict=True):
        np.testing.assert_array_equal(row, fresh.encode(text, "agent", seen))
        # A text's raw counts are the sum of its sentences' (the per-sentence cache).
        parts = [fresh.raw(s, "agent", seen) for s in SENTENCE_RE.split(text)]
        np.testing.assert_array_equal(fresh.raw(text, "agent", seen), np.sum(parts, axis=0))
    norms = np.linalg.norm(batch, axis=1)
    np.testing.assert_allclose(norms[:4], 1.0, rtol=1e-6)
    assert norms[4] == 0.0  # an empty text stays a zero vector


def test_values_marked_against_the_dialogue_change_the_encoding():
    enc = HashedTextEncoder(64)
    text = "Your refund of $57 is on its way."
    stated, new, plain = (
        enc.encode(text, "agent", frozenset({"$57"})),
        enc.encode(text, "agent", frozenset()),
        enc.encode(text, "agent"),
    )
    assert not np.array_equal(stated, new) and not np.array_equal(new, plain)
    # Another amount reads the same (values by kind): features generalise across customers.
    np.testing.assert_array_equal(enc.encode("Your refund of $12 is on its way.", "agent"), plain)
    # The same words said by the user land elsewhere.
    assert not np.array_equal(enc.encode(text, "user"), plain)


@pytest.mark.parametrize("env_id", ["RLHF-Chat-v0", "RLHF-Finance-v0", "RLHF-Medical-v0"])
def test_values_read_sentence_by_sentence_equal_the_whole_texts(env_id):
    enc = HashedTextEncoder(64)
    for text, _ in _candidate_texts(env_id):
        assert enc.reading(text, "agent").values == extract_values(text), text


def test_sentences_of_one_shape_share_their_counts_exactly():
    # Texts with other order numbers, amounts and names reuse cached sentence counts (by
    # shape): every text must read as a fresh encoder, with no cache, reads it alone.
    texts = _candidate_texts("RLHF-Chat-v0", 120) + _candidate_texts("RLHF-Finance-v0", 60)
    texts += [(t, frozenset({"$94", "2024-03-11"})) for t in TEXTS]
    texts += [
        ("Order 4829 is late. ORDER 5521 is LATE.", frozenset({"4829"})),
        ("Your refund of $57 is on its way.", frozenset({"$12"})),
        ("Your refund of $12 is on its way.", frozenset({"$12"})),
        # Another kind of value in the same place is another shape.
        ("Your refund of 5 days is on its way.", frozenset()),
        # A NUL could forge a value's mark: such sentences are read without the shape
        # cache. (Lower-casing can change a length outside ASCII: value positions and
        # shapes both refer to the lower-cased text.)
        ("Order \x00number\x00 4829 is late.", frozenset()),
        ("Order 1234 4829 is late.", frozenset()),
        ("Order İ 4829 is late. Your refund of $57 is on its way.", frozenset({"$57"})),
        ("Order i 4829 is late. Your refund of $57 is on its way.", frozenset({"$57"})),
    ]
    warm = HashedTextEncoder(64)
    for text, seen in texts:
        for marks in (seen, None):
            for role in ("agent", "user"):
                raw, unit = warm.rows(text, role, marks)
                # The definition, with no cache: each sentence's tokens hashed, summed.
                fresh = HashedTextEncoder(64)
                expected = np.sum(
                    [
                        fresh._features(tuple(value_marked_tokens(sentence, marks)), role)
                        for sentence in SENTENCE_RE.split(text)
                    ],
                    axis=0,
                )
                np.testing.assert_array_equal(raw, expected, err_msg=text)
                norm = np.linalg.norm(expected)
                np.testing.assert_allclose(unit, expected / norm if norm else expected, rtol=1e-6)
    assert warm._shapes, "the shape cache was never used"


def test_caches_stay_bounded(monkeypatch):
    monkeypatch.setattr(hashed_encoder, "_TEXT_CACHE", 50)
    monkeypatch.setattr(hashed_encoder, "_SENTENCE_CACHE", 80)
    enc = HashedTextEncoder(32)
    first = enc.encode("Order 1 is late. Customer 1 waits.", "user")
    for i in range(500):
        enc.encode(f"Order {i} is late. Customer word{i} waits.", "user")
    assert enc._texts.held <= 50 and enc._sentences.held <= 80
    assert enc._token_features.held <= 80 and enc._sentence_readings.held <= 80
    assert enc._shapes.held <= 80 and enc._marked.held <= 50
    # Emptied caches give the same vectors again.
    np.testing.assert_array_equal(enc.encode("Order 1 is late. Customer 1 waits.", "user"), first)


def test_recurring_cache_keeps_what_recurs_within_its_bound():
    cache: RecurringCache[str, int] = RecurringCache(10)  # generations of 5
    cache.put("kept", 0)
    for i in range(100):
        assert cache[f"new{i}"] is None
        cache.put(f"new{i}", i)
        if i % 4 == 0:  # read once per 4 insertions: more often than a generation fills
            assert cache["kept"] == 0
        assert cache.held <= 10
    assert cache["kept"] == 0
    assert cache["new0"] is None  # never read again: gone within two turnovers
    assert cache["new99"] == 99 and cache["new95"] == 95


def test_select_envs_do_not_import_torch():
    code = (
        "import sys, gymnasium as gym, rlhf_envs\n"
        "from rlhf_envs.interfaces import SelectInterface\n"
        "env = gym.make('RLHF-Chat-v0'); env.reset(seed=0); env.step(0)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
        "from rlhf_envs.interfaces import TokensInterface\n"  # (loaded when asked for)
        "print('torch' in sys.modules, TokensInterface.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "TokensInterface"], out.stdout


def test_cached_rows_are_the_encodings_and_cannot_be_changed():
    enc = HashedTextEncoder(64)
    seen = frozenset({"$94"})
    for text in TEXTS:
        for marks in (seen, None):
            raw, unit = enc.rows(text, "agent", marks)
            fresh = HashedTextEncoder(64)
            np.testing.assert_array_equal(raw, fresh.raw_rows([(text, "agent", marks)])[0])
            np.testing.assert_allclose(unit, fresh.encode(text, "agent", marks), rtol=1e-6)
            with pytest.raises(ValueError, match="read-only"):
                raw[0] = 1.0
    # A text without values reads the same against any dialogue: one cached row.
    assert enc.unit(TEXTS[1], "agent", seen) is enc.unit(TEXTS[1], "agent", frozenset())


def test_envs_share_one_encoder_and_their_episodes_do_not_depend_on_its_caches():
    first, second = gym.make("RLHF-Chat-v0"), gym.make("RLHF-Chat-v0")
    assert first.unwrapped.interface.encoder is second.unwrapped.interface.encoder
    # The second env replays the first's episode with every text already cached.
    episodes = []
    for env in (first, second):
        obs, _ = env.reset(seed=5)
        rng = np.random.default_rng(5)
        steps = [obs]
        for _ in range(12):
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            steps.append(obs)
            if terminated or truncated:
                break
        episodes.append(steps)
    for a, b in zip(*episodes, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_encoders_pickle_without_their_caches():
    env = gym.make("RLHF-Chat-v0")
    env.reset(seed=1)
    for _ in range(5):
        env.step(0)
    shared = env.unwrapped.interface.encoder
    assert len(shared._texts) > 0
    # The shared encoder comes back as the receiving process's own (here: itself).
    assert pickle.loads(pickle.dumps(shared)) is shared
    own = HashedTextEncoder(64, seed=3)
    expected = own.encode(TEXTS[0], "agent")
    copy = pickle.loads(pickle.dumps(own))
    assert (copy.dim, copy.seed, len(copy._texts)) == (64, 3, 0)
    np.testing.assert_array_equal(copy.encode(TEXTS[0], "agent"), expected)
    # An env pickles small: no cached rows travel with it.
    assert len(pickle.dumps(env.unwrapped.interface)) < 50_000
