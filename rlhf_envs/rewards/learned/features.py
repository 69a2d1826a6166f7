"""Hashed n-gram features of a reply in context, for the linear reward model.

A linear score ``w . phi(context, reply)`` over features of the reply alone cannot tell
a good reply in one context from the same reply in another, and anything that depends
only on the context cancels in a preference pair. So besides the reply's words and word
bigrams, ``phi`` has *cross* features: each reply word paired with each word of the
latest user message, of the company systems' lines since the agent last spoke and of the
agent's previous reply (what was just asked for, what the records say, which step was
just done), and with how far the dialogue has got. A few dense facts become tokens too:
the reply's length, how closely it repeats an earlier agent reply, and values (amounts,
ids, dates) marked by whether the dialogue has stated them (an invented order number
reads as ``<number:new>``).

Hashing is CRC-32 based (the same in every process, unlike Python's ``hash``), into
``dim`` buckets; a text is turned into a sorted array of bucket ids with counts.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from rlhf_envs.dialogue import Turn, parse_transcript
from rlhf_envs.simulation.values import extract_values
from rlhf_envs.words import stable_hash, value_marked_tokens

_MASK = 0xFFFFFFFF
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?|<[a-z_]+:[a-z]+>|[?!]")
# Cross features pair at most this many distinct words per side: long free-text messages
# (HH-RLHF) would otherwise give thousands of pairs per reply.
_MAX_CROSS_WORDS = 48
_CACHE = 2_048  # a few MB; only repeated texts (evaluation passes) hit it


class PairFeaturizer:
    """Maps ``(context, reply)`` texts to hashed feature ids.

    Args:
        dim: number of hash buckets (the linear model's input size).
        seed: salts the hash.
    """

    def __init__(self, dim: int = 2**18, seed: int = 0):
        if dim < 1024:
            raise ValueError(f"feature dimension must be at least 1024, got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)
        self._words: dict[str, int] = {}
        self._cache: OrderedDict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def config(self) -> dict:
        """What a checkpoint must record to rebuild the same feature map."""
        return {"dim": self.dim, "seed": self.seed}

    def _hash(self, word: str) -> int:
        h = self._words.get(word)
        if h is None:
            if len(self._words) > 200_000:  # free text brings endless new words
                self._words.clear()
            h = self._words[word] = stable_hash(word, self.seed)
        return h

    def _hashes(self, words: list[str]) -> np.ndarray:
        return np.fromiter((self._hash(w) for w in words), dtype=np.int64, count=len(words))

    def features(self, context: str, reply: str) -> tuple[np.ndarray, np.ndarray]:
        """Bucket ids (sorted, unique) and their counts (float32) for one reply in context."""
        key = (context, reply)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        out = self._compute(parse_transcript(context), reply)
        self._cache[key] = out
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return out

    def _compute(self, turns: list[Turn], reply: str) -> tuple[np.ndarray, np.ndarray]:
        seen = frozenset().union(*(extract_values(t.text) for t in turns)) if turns else frozenset()
        words = value_marked_tokens(reply, seen)
        h = self._hashes(words)
        parts = [h * 3 + 1]  # unigrams (the *3+k keeps feature families apart)
        if len(h) > 1:
            parts.append((h[:-1] * 1_000_003 + h[1:] * 7 + 11) * 3 + 2)  # bigrams

        unique = self._hashes(sorted(set(words))[:_MAX_CROSS_WORDS])
        # The parts of the context that decide which reply is right (see the module doc).
        last_user, systems, last_agent = _recent(turns)
        agent_turns = [t.text for t in turns if t.role == "agent"]
        for salt, text in (("u", last_user), ("s", systems), ("a", last_agent)):
            ctx = sorted(set(_WORD_RE.findall(text.lower())))[:_MAX_CROSS_WORDS]
            if ctx:
                c = self._hashes([f"{salt}|{w}" for w in ctx])
                parts.append(((c[:, None] * 2_654_435_761 + unique[None, :]) * 3).ravel())
        dense = [
            f"#len:{min(len(words) // 8, 15)}",
            f"#agent_turns:{min(len(agent_turns), 12)}",
            f"#repeat:{_repetition_bucket(value_marked_tokens(reply, None), agent_turns)}",
            f"#first_turn:{not agent_turns}",
        ]
        d = self._hashes(dense)
        parts.append(d * 3 + 1)
        # How far the dialogue has got changes what is due: pair it with the reply's words.
        parts.append((unique * 31 + self._hash(dense[1])) * 3 + 2)
        ids = (np.concatenate(parts) & _MASK) % self.dim
        uniq, counts = np.unique(ids, return_counts=True)
        result = (uniq.astype(np.int64), counts.astype(np.float32))
        result[0].flags.writeable = False
        result[1].flags.writeable = False
        return result

    def batch(
        self, contexts: list[str], replies: list[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features of many replies as flat ``ids``, ``weights`` and ``offsets`` (the
        input format of ``torch.nn.EmbeddingBag``); weights are scaled to unit L2 norm
        per reply so long replies do not get larger scores for being long."""
        ids, weights, offsets = [], [], []
        at = 0
        for context, reply in zip(contexts, replies, strict=True):
            i, c = self.features(context, reply)
            ids.append(i)
            weights.append(c / np.sqrt(float(c @ c)))
            offsets.append(at)
            at += len(i)
        return (
            np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64),
            np.concatenate(weights).astype(np.float32)
            if weights
            else np.zeros(0, dtype=np.float32),
            np.array(offsets, dtype=np.int64),
        )


def _recent(turns: list[Turn]) -> tuple[str, str, str]:
    """The latest user message, the system lines since the agent last spoke, and the
    agent's previous reply."""
    last_user = systems = last_agent = ""
    for turn in reversed(turns):
        if turn.role == "agent":
            last_agent = turn.text
            break
        if turn.role == "user" and not last_user:
            last_user = turn.text
        elif turn.role == "system":
            systems = f"{turn.text} {systems}"
    return last_user, systems, last_agent


@lru_cache(maxsize=16384)
def _word_set(text: str) -> frozenset[str]:
    # Cached: every turn compares the reply with all earlier agent replies, so without
    # it a turn's cost would grow with the length of the dialogue.
    return frozenset(value_marked_tokens(text, None))


def _repetition_bucket(words: list[str], agent_turns: list[str]) -> int:
    """0-4: the highest word-set Jaccard similarity with an earlier agent reply, binned."""
    if not agent_turns or not words:
        return 0
    mine = set(words)
    best = 0.0
    for text in agent_turns:
        other = _word_set(text)
        union = len(mine | other)
        if union:
            best = max(best, len(mine & other) / union)
    return min(4, int(best * 5))
