"""Fast, deterministic text features: hashed word and character n-grams.

Each text becomes a fixed-size float vector: word unigrams and bigrams plus character
3-grams of each word, hashed with CRC-32 (stable across processes and platforms, unlike
Python's built-in string hashing) into ``dim`` buckets with a hashed sign, then L2-normalised.
Fact-like values (amounts, ids, dates, emails) are replaced by a token naming their kind
and whether the dialogue has already stated them ("a $94 refund" with $94 on record
reads differently from an amount that appears from nowhere), so features generalise
across customers instead of memorising order numbers.

Features are cached per word, per sentence and per text: the same words, sentences and
replies recur across turns and episodes. A text is read once (its sentences, its values
and its counts with values by kind); its counts with values marked against a dialogue are
kept per pattern of which of its values were stated, since most texts have no values and
read the same against every dialogue. A sentence with values is also cached by its shape
(values replaced by their kind): "a $94 refund for order 4829" and "a $57 refund for
order 1023" are tokenised once. A step's encodings are then mostly dictionary hits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar

import numpy as np

from rlhf_envs.simulation.understanding import SENTENCE_RE
from rlhf_envs.simulation.values import find_values
from rlhf_envs.words import stable_hash, value_marked_tokens

_MASK = 0xFFFFFFFF
_CHAR_N = 3
# Bounds of the caches, in entries (see ``RecurringCache``). (Text and sentence rows are
# dim * 4 bytes each: 8 MB per 8,192 rows at the default dim.)
_TEXT_CACHE = 8192
_SENTENCE_CACHE = 16_384
_WORD_CACHE = 100_000

K = TypeVar("K")
V = TypeVar("V")


class RecurringCache(dict[K, V]):
    """A cache of at most ``limit`` entries that keeps what recurs: two generations.

    New entries go to the young generation. When it holds ``limit // 2``, it becomes the
    old generation (the previous old one is dropped) and a new young one starts; a key
    missing from the young generation is looked up in the old one and moved back. An
    entry used at least once per ``limit // 2`` insertions therefore stays for good, and
    one that is never used again goes within two turnovers. (A cache emptied when full
    makes every recurring text miss again after each emptying: in long runs about one
    text a step of the select interface.) A hit costs one plain dict lookup.

    Read with ``cache[key]``, which gives ``None`` for a key held by neither generation
    (``get`` does not look in the old one); store with :meth:`put`. Values are never
    ``None``.
    """

    __slots__ = ("_half", "_old")

    def __init__(self, limit: int):
        super().__init__()
        self._half = max(1, limit // 2)
        self._old: dict[K, V] = {}

    def __missing__(self, key: K) -> V | None:
        found = self._old.pop(key, None)
        if found is not None:
            self.put(key, found)
        return found

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` in the young generation; returns ``value``."""
        if len(self) >= self._half:
            self._old = dict(self)
            self.clear()
        self[key] = value
        return value

    @property
    def held(self) -> int:
        """Entries in both generations (at most ``limit``)."""
        return len(self) + len(self._old)


class TextReading(NamedTuple):
    """One text read by :meth:`HashedTextEncoder.reading` (for one speaker role)."""

    text: str
    sentences: tuple[tuple[str, tuple[str, ...]], ...]  # each sentence and its values
    # (only for a text with values: what marking them against a dialogue needs)
    values: frozenset[str]  # its fact-like values (as ``extract_values`` finds them)
    stated: tuple[str, ...]  # every value occurrence, in order (what ``seen`` is asked of)
    words: int  # its length in words (split on white space)
    plain: tuple[np.ndarray, np.ndarray]  # signed counts with values by kind only, and
    # the same scaled to unit length (read-only float32 rows)


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
        self._words: RecurringCache[
            tuple[str, int], tuple[tuple[int, ...], tuple[float, ...], int]
        ] = RecurringCache(_WORD_CACHE)
        self._texts: RecurringCache[tuple[str, str], TextReading] = RecurringCache(_TEXT_CACHE)
        self._marked: RecurringCache[
            tuple[str, str, tuple[bool, ...]], tuple[np.ndarray, np.ndarray]
        ] = RecurringCache(_TEXT_CACHE)
        # Counts of sentences with their values marked, per sentence, role and marks.
        self._sentences: RecurringCache[tuple, np.ndarray] = RecurringCache(_SENTENCE_CACHE)
        # Counts of sentences with values, per shape (see ``_sentence_shape``), role and marks.
        self._shapes: RecurringCache[tuple[str, str, tuple | None], np.ndarray] = RecurringCache(
            _SENTENCE_CACHE
        )
        # Each sentence's values, counts with values by kind and words, per sentence and role.
        self._sentence_readings: RecurringCache[
            tuple[str, str], tuple[tuple[str, ...], np.ndarray, int]
        ] = RecurringCache(_SENTENCE_CACHE)
        # Sentences that differ only in their values ("a $94 refund", "a $57 refund")
        # have the same tokens: their features are shared by token sequence.
        self._token_features: RecurringCache[tuple, np.ndarray] = RecurringCache(_SENTENCE_CACHE)
        self._salts: dict[str, int] = {}

    _shared = False

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (an env sent to another process, a deep copy) without its caches, which
        # any process rebuilds; the shared encoder stays the receiving process's own.
        return (shared_encoder if self._shared else HashedTextEncoder, (self.dim, self.seed))

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
        """Unnormalised signed counts (for running sums over a dialogue); read-only, shared
        with the cache."""
        return self.rows(text, role, seen)[0]

    def unit(self, text: str, role: str = "", seen: frozenset[str] | None = None) -> np.ndarray:
        """:meth:`encode` of one text, read-only and shared with the cache."""
        return self.rows(text, role, seen)[1]

    def rows(
        self, text: str, role: str, seen: frozenset[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The signed counts of ``text`` and the same scaled to unit length (both read-only,
        cached per text and per pattern of which of its values ``seen`` holds)."""
        return self.rows_of(self.reading(text, role), role, seen)

    def rows_of(
        self, reading: TextReading, role: str, seen: frozenset[str] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`rows` of a text already read (``reading``, for ``role``)."""
        if seen is None or not reading.stated:
            return reading.plain
        flags = tuple([v in seen for v in reading.stated])
        key = (reading.text, role, flags)
        found = self._marked[key]
        if found is None:
            found = _with_unit(
                _sum_rows(
                    [
                        self._marked_sentence(
                            sentence, role, tuple([v in seen for v in values]), seen
                        )
                        if values
                        else self._sentence_reading(sentence, role)[1]
                        for sentence, values in reading.sentences
                    ]
                )
            )
            self._marked.put(key, found)
        return found

    def raw_rows(self, items: Sequence[tuple[str, str, frozenset[str] | None]]) -> np.ndarray:
        """Unnormalised signed counts of several ``(text, role, seen)`` at once, as the rows
        of a new float32 ``(len(items), dim)`` array."""
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.array([self.raw(text, role, seen) for text, role, seen in items])

    def reading(self, text: str, role: str) -> TextReading:
        """``text`` read sentence by sentence: its values and its counts with values by
        kind only (cached per text and role, and each sentence's per sentence and role)."""
        key = (text, role)
        found = self._texts[key]
        if found is None:
            sentences = SENTENCE_RE.split(text)
            read = self._sentence_readings
            rows = []
            stated: tuple[str, ...] = ()
            held = []  # each sentence's values (kept only when the text has any)
            words = 0
            for sentence in sentences:
                # (the cache hit inline: this loop is the hot path of a step)
                hit = read[(sentence, role)] or self._sentence_reading(sentence, role)
                if hit[0]:
                    stated += hit[0]
                held.append(hit[0])
                rows.append(hit[1])
                words += hit[2]
            # (values never span sentences: every value shape ends before the space
            # that follows a sentence's last character; nor do words, as sentences are
            # split at white space, the same characters as ``str.split``'s)
            found = self._texts.put(
                key,
                TextReading(
                    text,
                    tuple(zip(sentences, held, strict=True)) if stated else (),
                    frozenset(stated),
                    stated,
                    words,
                    _with_unit(_sum_rows(rows)),
                ),
            )
        return found

    def _sentence_reading(
        self, sentence: str, role: str
    ) -> tuple[tuple[str, ...], np.ndarray, int]:
        """One sentence's values, its counts with values by kind and its words (cached)."""
        found = self._sentence_readings[(sentence, role)]
        if found is None:
            values = tuple([v for *_, v in find_values(sentence)])
            found = self._sentence_readings.put(
                (sentence, role),
                (
                    values,
                    self._counts(sentence, role, None if values else (), None),
                    len(sentence.split()),
                ),
            )
        return found

    def _marked_sentence(
        self, sentence: str, role: str, flags: tuple[bool, ...], seen: frozenset[str]
    ) -> np.ndarray:
        """The counts of a sentence with its values marked as ``seen`` has them (cached)."""
        key = (sentence, role, flags)
        found = self._sentences[key]
        if found is None:
            found = self._sentences.put(key, self._counts(sentence, role, flags, seen))
        return found

    def _counts(
        self, sentence: str, role: str, flags: tuple | None, seen: frozenset[str] | None
    ) -> np.ndarray:
        """One sentence's signed counts: ``flags`` ``()`` for a sentence without values,
        ``None`` for values by kind only, else which of its values ``seen`` holds."""
        # A sentence with values is new with every new order number, but its shape
        # recurs: looked up by shape, it is not tokenised again.
        shape = _sentence_shape(sentence) if flags != () else None
        found = self._shapes[(shape, role, flags)] if shape is not None else None
        if found is None:
            tokens = tuple(self.tokens(sentence, seen))
            found = self._token_features[(tokens, role)]
            if found is None:
                found = self._token_features.put((tokens, role), self._features(tokens, role))
            if shape is not None:
                self._shapes.put((shape, role, flags), found)
        return found

    def _features(self, tokens: Sequence[str], role: str) -> np.ndarray:
        """The signed counts of one sentence's tokens (a read-only float32 row)."""
        salt = self._salts.get(role)
        if salt is None:
            salt = self._salts[role] = stable_hash(role, self.seed)
        # Plain lists while gathering: many tiny numpy arrays would cost more than the hashing.
        idx: list[int] = []
        signs: list[float] = []
        hashes: list[int] = []
        words = self._words
        for token in tokens:
            hit = words[(token, salt)] or self._word(token, salt)
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
        row = np.bincount(all_idx, weights=all_signs, minlength=self.dim).astype(np.float32)
        row.setflags(write=False)
        return row

    def _word(self, token: str, salt: int) -> tuple[tuple[int, ...], tuple[float, ...], int]:
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
        # (bounded: free text can bring endless new words)
        return self._words.put((token, salt), (tuple(idx), tuple(signs), hashes[0]))


def _sentence_shape(sentence: str) -> str | None:
    """The sentence lower-cased with each value replaced by ``\\x00kind\\x00``: sentences
    of one shape have the same tokens (those of ``value_marked_tokens``, given which of
    their values are stated), as tokens are made of lower-case letters, which no mark
    holds. ``None`` for a sentence holding NUL, which could forge a mark."""
    if "\x00" in sentence:
        return None
    lower = sentence.lower()
    parts: list[str] = []
    at = 0
    for start, end, kind, _ in find_values(sentence):
        parts += (lower[at:start], "\x00", kind, "\x00")
        at = end
    parts.append(lower[at:])
    return "".join(parts)


def _sum_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """A text's signed counts: the sum of its sentences' rows (read-only)."""
    if len(rows) == 1:
        return rows[0]
    # Counts are small integers, exact in float32: any order of summing gives the same.
    row = rows[0] + rows[1]
    for more in rows[2:]:
        row += more
    row.setflags(write=False)
    return row


def _with_unit(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``row`` and ``row`` scaled to unit length (a zero row stays zero), both read-only."""
    # (sums of squares of integer counts are exact, and math.sqrt of one rounds to what
    # numpy's float32 sqrt gives: the same numbers as ``normalise_rows``)
    norm = math.sqrt(float(row.dot(row)))
    unit = row / norm if norm > 0 else row
    unit.setflags(write=False)
    return row, unit


def shared_encoder(dim: int = 256, seed: int = 0) -> HashedTextEncoder:
    """The process's encoder for ``dim`` and ``seed``: its caches are pure functions of the
    text, so every env (and every sub-env of a vector env) shares one set, warm from the
    first episodes on and held in memory once."""
    return _shared_encoder(dim, seed)


@lru_cache(maxsize=8)
def _shared_encoder(dim: int, seed: int) -> HashedTextEncoder:
    # (positional arguments only: the cache keys on how a function was called)
    encoder = HashedTextEncoder(dim, seed)
    encoder._shared = True
    return encoder


def normalise_rows(rows: np.ndarray) -> np.ndarray:
    """Each row of a float32 array divided by its L2 norm (zero rows stay zero), in place."""
    # (sums of squares of integer counts are exact, so each norm equals a row's own)
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    norms[norms == 0] = 1.0
    rows /= norms[:, None]
    return rows
