"""Fast, deterministic text features: hashed word and character n-grams.

Each text becomes a fixed-size float vector: word unigrams and bigrams plus character
3-grams of each word, hashed with CRC-32 (stable across processes and platforms, unlike
Python's built-in string hashing) into ``dim`` buckets with a hashed sign, then L2-normalised.
Fact-like values (amounts, ids, dates, emails) are replaced by a token naming their kind
and whether the dialogue has already stated them ("a $94 refund" with $94 on record
reads differently from an amount that appears from nowhere), so features generalise
across customers instead of memorising order numbers.

Per-word and per-sentence features are cached: the same words and sentences recur across
turns and episodes, and a batch of texts is counted in one ``bincount``, so encoding
costs a few microseconds per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rlhf_envs.simulation.understanding import SENTENCE_RE
from rlhf_envs.simulation.values import find_values
from rlhf_envs.words import stable_hash, value_marked_tokens

_MASK = 0xFFFFFFFF
_CHAR_N = 3
# Bounded caches (vectors are dim * 4 bytes each), emptied when full: cheaper than
# tracking recency on every hit, and the recurring texts are back within a few episodes.
_TEXT_CACHE = 8_192
_SENTENCE_CACHE = 32_768
_WORD_CACHE = 100_000


Sparse = tuple[np.ndarray, np.ndarray]
"""A sentence's features: bucket indices (int64) and their signed weights (float64)."""


class TextParts(NamedTuple):
    """One text read by :meth:`HashedTextEncoder.parts`."""

    marked: tuple[Sparse, ...]  # its sentences' features, values marked against ``seen``
    plain: tuple[Sparse, ...]  # the same with values marked by kind only
    values: frozenset[str]  # its fact-like values (as ``extract_values`` finds them)


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
        self._words: dict[tuple[str, int], tuple[tuple[int, ...], tuple[float, ...], int]] = {}
        self._texts: dict[tuple, TextParts] = {}
        self._sentences: dict[tuple, Sparse] = {}
        # Sentences that differ only in their values ("a $94 refund", "a $57 refund")
        # have the same tokens: their features are shared by token sequence.
        self._token_features: dict[tuple, Sparse] = {}
        self._salts: dict[str, int] = {}

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
        return self.encode_batch([text], role, seen)[0]

    def encode_batch(
        self, texts: Sequence[str], role: str = "", seen: frozenset[str] | None = None
    ) -> np.ndarray:
        """:meth:`encode` of each text, as the rows of a ``(len(texts), dim)`` array."""
        return normalise_rows(self.raw_rows([(text, role, seen) for text in texts]))

    def raw(self, text: str, role: str = "", seen: frozenset[str] | None = None) -> np.ndarray:
        """Unnormalised signed counts (for running sums over a dialogue)."""
        return self.raw_rows([(text, role, seen)])[0]

    def raw_rows(self, items: Sequence[tuple[str, str, frozenset[str] | None]]) -> np.ndarray:
        """Unnormalised signed counts of several ``(text, role, seen)`` at once, as the rows
        of a float32 ``(len(items), dim)`` array."""
        return self.count([self.parts(text, role, seen).marked for text, role, seen in items])

    def parts(self, text: str, role: str, seen: frozenset[str] | None) -> TextParts:
        """``text`` read sentence by sentence: its features with values marked against
        ``seen`` and by kind only, and its values; :meth:`count` turns features into rows.

        One pass serves both readings (a sentence without values reads the same either
        way), cached per text: replies are built from recurring sentences ("Let me check
        our system for you.") and recur themselves within an episode.
        """
        # Keyed by ``seen`` itself (a frozenset caches its hash), not by which of the
        # text's values it holds: finding those would scan every new text for values.
        key = (text, role, seen)
        found = self._texts.get(key)
        if found is None:
            marked: list[Sparse] = []
            plain: list[Sparse] = []
            values: set[str] = set()
            for sentence in SENTENCE_RE.split(text):
                found_values = find_values(sentence)
                if not found_values:
                    part = self._sentence(sentence, role, (), None)
                    marked.append(part)
                    plain.append(part)
                    continue
                values.update(v for *_, v in found_values)
                plain.append(self._sentence(sentence, role, None, None))
                if seen is None:
                    marked.append(plain[-1])
                else:
                    flags = tuple(v in seen for *_, v in found_values)
                    marked.append(self._sentence(sentence, role, flags, seen))
            if len(self._texts) >= _TEXT_CACHE:
                self._texts.clear()
            # (values never span sentences: every value shape ends before the space
            # that follows a sentence's last character)
            found = self._texts[key] = TextParts(tuple(marked), tuple(plain), frozenset(values))
        return found

    def count(self, texts: Sequence[Sequence[Sparse]]) -> np.ndarray:
        """Rows of signed counts, one per text given as its sentences' sparse features
        (see :meth:`parts`): one ``bincount`` for the whole batch, a few numpy calls
        rather than several per text."""
        n = len(texts)
        indices: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        lengths: list[int] = []
        for sentences in texts:
            size = 0
            for idx, w in sentences:
                indices.append(idx)
                weights.append(w)
                size += len(idx)
            lengths.append(size)
        if not indices:
            return np.zeros((n, self.dim), dtype=np.float32)
        rows = np.repeat(np.arange(0, n * self.dim, self.dim, dtype=np.int64), lengths)
        flat = np.concatenate(indices) + rows
        # Counts are small integers, exact in float64 and float32 alike, so rows equal
        # what summing each sentence's vector would give.
        counts = np.bincount(flat, weights=np.concatenate(weights), minlength=n * self.dim)
        return counts.astype(np.float32).reshape(n, self.dim)

    def _sentence(
        self, sentence: str, role: str, flags: tuple | None, seen: frozenset[str] | None
    ) -> Sparse:
        key = (sentence, role, flags)
        found = self._sentences.get(key)
        if found is None:
            tokens = tuple(self.tokens(sentence, seen))
            found = self._token_features.get((tokens, role))
            if found is None:
                if len(self._token_features) >= _SENTENCE_CACHE:
                    self._token_features.clear()
                found = self._token_features[(tokens, role)] = self._sparse(tokens, role)
            if len(self._sentences) >= _SENTENCE_CACHE:
                self._sentences.clear()
            self._sentences[key] = found
        return found

    def _sparse(self, tokens: Sequence[str], role: str) -> Sparse:
        salt = self._salts.get(role)
        if salt is None:
            salt = self._salts[role] = stable_hash(role, self.seed)
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
        all_idx = np.array(idx, dtype=np.int64)
        all_signs = np.array(signs, dtype=np.float64)
        if len(hashes) > 1:
            # Word bigrams from the word hashes: arithmetic, no string building.
            h = np.array(hashes, dtype=np.int64)
            pair = (h[:-1] * 1_000_003 + h[1:] * 7 + 0x9E3779B1) & _MASK
            all_idx = np.concatenate((all_idx, pair % self.dim))
            all_signs = np.concatenate((all_signs, np.where(pair & 0x80000000, -1.0, 1.0)))
        all_idx.flags.writeable = False
        all_signs.flags.writeable = False
        return all_idx, all_signs

    def _word(self, token: str, salt: int) -> tuple[tuple[int, ...], tuple[float, ...], int]:
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
        # (tuples of numbers: the garbage collector stops tracking them)
        hit = self._words[(token, salt)] = (tuple(idx), tuple(signs), hashes[0])
        return hit


def normalise_rows(rows: np.ndarray) -> np.ndarray:
    """Each row of a float32 array divided by its L2 norm (zero rows stay zero), in place."""
    # (sums of squares of integer counts are exact, so each norm equals a row's own)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    norms[norms == 0] = 1.0
    rows /= norms[:, None]
    return rows
