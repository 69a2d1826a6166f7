"""Fast, deterministic text features: hashed word and character n-grams.

Each text becomes a fixed-size float vector: word unigrams and bigrams plus character
3-grams of each word, hashed with CRC-32 (stable across processes and platforms, unlike
Python's built-in string hashing) into ``dim`` buckets with a hashed sign, then L2-normalised.
Fact-like values (amounts, ids, dates, emails) are replaced by a token naming their kind
and whether the dialogue has already stated them ("a $94 refund" with $94 on record
reads differently from an amount that appears from nowhere), so features generalise
across customers instead of memorising order numbers.

Per-word features and whole-text encodings are cached: the same words and replies recur
across turns and episodes, so encoding costs a few microseconds per text.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from rlhf_envs.simulation.understanding import SENTENCE_RE
from rlhf_envs.simulation.values import find_values
from rlhf_envs.words import stable_hash, value_marked_tokens

_MASK = 0xFFFFFFFF
_CHAR_N = 3
# Bounded caches (vectors are dim * 4 bytes each): the recurring texts and sentences
# stay, the one-off ones (a customer's own facts) are evicted first.
_TEXT_CACHE = 8_192
_SENTENCE_CACHE = 32_768
_WORD_CACHE = 100_000


class HashedTextEncoder:
    """Encodes texts as signed hashed n-gram vectors of size ``dim``.

    Args:
        dim: number of hash buckets (the vector size).
        seed: salts the hash, giving a different (equally good) feature map.
    """

    def __init__(self, dim: int = 256, seed: int = 0):
        if dim < 16:
            raise ValueError(f"encoding dimension must be at least 16, got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)
        self._words: dict[tuple[str, int], tuple[list[int], list[float], int]] = {}
        self._texts: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._sentences: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def tokens(self, text: str, seen: frozenset[str] | None) -> list[str]:
        """Words of ``text``, values replaced by kind tokens (see :func:`value_marked_tokens`)."""
        return value_marked_tokens(text, seen)

    def encode(self, text: str, role: str = "", seen: frozenset[str] | None = None) -> np.ndarray:
        """The L2-normalised feature vector of ``text`` (float32, shape ``(dim,)``).

        Args:
            text: the text.
            role: salts every feature (``"user"``, ``"agent"``, ...) so the same words
                said by different speakers land in different buckets.
            seen: values already stated in the dialogue (see the module docstring);
                ``None`` to mark values by kind only.
        """
        flags = None
        if seen is not None:
            flags = tuple(v in seen for *_, v in find_values(text))
        key = (text, role, flags)
        hit = self._texts.get(key)
        if hit is not None:
            self._texts.move_to_end(key)
            return hit
        vec = self.raw(text, role, seen)
        norm = float(np.sqrt(vec @ vec))
        if norm > 0:
            vec /= norm
        vec.flags.writeable = False
        self._texts[key] = vec
        if len(self._texts) > _TEXT_CACHE:
            self._texts.popitem(last=False)
        return vec

    def raw(self, text: str, role: str = "", seen: frozenset[str] | None = None) -> np.ndarray:
        """Unnormalised signed counts (for running sums over a dialogue).

        Computed sentence by sentence with a cache per sentence: replies are built from
        recurring sentences ("Let me check our system for you."), so most are hits.
        """
        vec = np.zeros(self.dim, dtype=np.float32)
        for sentence in SENTENCE_RE.split(text):
            flags = None if seen is None else tuple(v in seen for *_, v in find_values(sentence))
            key = (sentence, role, flags)
            part = self._sentences.get(key)
            if part is None:
                part = self._sentences[key] = self._raw(self.tokens(sentence, seen), role)
                if len(self._sentences) > _SENTENCE_CACHE:
                    self._sentences.popitem(last=False)
            else:
                self._sentences.move_to_end(key)
            vec += part
        return vec

    def _raw(self, tokens: list[str], role: str) -> np.ndarray:
        if not tokens:
            return np.zeros(self.dim, dtype=np.float32)
        salt = stable_hash(role, self.seed)
        # Plain lists while gathering: many tiny numpy arrays would cost more than the hashing.
        idx: list[int] = []
        signs: list[float] = []
        hashes: list[int] = []
        words = self._words
        for token in tokens:
            hit = words.get((token, salt))
            if hit is None:
                hit = self._word(token, salt)
            idx += hit[0]
            signs += hit[1]
            hashes.append(hit[2])
        if len(hashes) > 1:
            # Word bigrams from the word hashes: arithmetic, no string building.
            h = np.array(hashes, dtype=np.int64)
            pair = (h[:-1] * 1_000_003 + h[1:] * 7 + 0x9E3779B1) & _MASK
            all_idx = np.concatenate((np.array(idx, dtype=np.int64), pair % self.dim))
            all_signs = np.concatenate((np.array(signs), np.where(pair & 0x80000000, -1.0, 1.0)))
        else:
            all_idx, all_signs = np.array(idx, dtype=np.int64), np.array(signs)
        return np.bincount(all_idx, weights=all_signs, minlength=self.dim).astype(np.float32)

    def _word(self, token: str, salt: int) -> tuple[list[int], list[float], int]:
        if len(self._words) > _WORD_CACHE:  # free text can bring endless new words
            self._words.clear()
        padded = f"<{token}>"
        grams = [token]
        if len(token) > 2:
            grams += [padded[i : i + _CHAR_N] for i in range(len(padded) - _CHAR_N + 1)]
        hashes = [stable_hash(g, salt) for g in grams]
        idx = [h % self.dim for h in hashes]
        signs = [-1.0 if h & 0x80000000 else 1.0 for h in hashes]
        # The whole word counts twice as much as each of its character n-grams.
        signs[0] *= 2.0
        hit = self._words[(token, salt)] = (idx, signs, hashes[0])
        return hit
