"""The *select* interface: pick one of K proposed replies.

Each turn the env proposes K candidate replies (the policy-correct one and distractors of
named failure types, in random order); the action is the index of the chosen one. The
observation is a ``Dict`` of flat float32 arrays, so Stable-Baselines3's
``MultiInputPolicy`` and the candidate-scoring policies in ``agents/`` read it directly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from rlhf_envs.dialogue import MAX_TURNS
from rlhf_envs.interfaces.base import Interface
from rlhf_envs.interfaces.hashed_encoder import shared_encoder
from rlhf_envs.simulation.candidates import CORRECT, Candidate, propose
from rlhf_envs.simulation.state import DialogueState

CANDIDATE_STATS = ("repetition", "length", "new_values")
_LENGTH_SCALE = 80.0  # words at which the "length" statistic reaches 1


class SelectInterface(Interface):
    """Choose among ``num_candidates`` proposed replies.

    Observation keys (all float32):

    - ``dialogue`` ``(D,)``: the whole dialogue so far, hashed n-grams summed over turns
      (each speaker hashed apart) and L2-normalised;
    - ``last_turn`` ``(D,)``: what the agent must answer: the user's last message and any
      system lines after it;
    - ``candidates`` ``(K*D,)``: each candidate's encoding, row-major ``K x D``;
    - ``candidate_stats`` ``(K*3,)``: per candidate, in ``[0, 1]``: similarity to the
      closest of the agent's earlier replies (cosine of the encodings), length (words /
      80, capped) and the share of its fact-like values that the dialogue has not stated;
    - ``turn`` ``(1,)``: turns so far / 20, capped at 1.

    Args:
        num_candidates: K, the number of replies to choose from (at least 2).
        encoding_dim: D, the size of each text encoding.
    """

    name = "select"

    def __init__(self, num_candidates: int = 6, encoding_dim: int = 256):
        if int(num_candidates) < 2:
            raise ValueError(f"num_candidates must be at least 2, got {num_candidates}")
        self.k = int(num_candidates)
        self.encoder = shared_encoder(encoding_dim)
        d = self.encoder.dim
        self.action_space = spaces.Discrete(self.k)
        self.observation_space = spaces.Dict(
            {
                "dialogue": spaces.Box(-1.0, 1.0, (d,), np.float32),
                "last_turn": spaces.Box(-1.0, 1.0, (d,), np.float32),
                "candidates": spaces.Box(-1.0, 1.0, (self.k * d,), np.float32),
                "candidate_stats": spaces.Box(
                    0.0, 1.0, (self.k * len(CANDIDATE_STATS),), np.float32
                ),
                "turn": spaces.Box(0.0, 1.0, (1,), np.float32),
            }
        )
        self.candidates: list[Candidate] = []
        self.reset()

    def reset(self) -> None:
        self._history_sum = np.zeros(self.encoder.dim, dtype=np.float32)
        self._turn_vectors: list[np.ndarray] = []  # raw encoding of each turn so far
        # Normalised encodings of the agent's turns, the first ``_agent_turns`` rows.
        self._agent_matrix = np.zeros((8, self.encoder.dim), dtype=np.float32)
        self._agent_turns = 0
        # Sum of the turns since the agent's last reply: what the agent must answer.
        self._since_agent = np.zeros(self.encoder.dim, dtype=np.float32)
        self.candidates = []

    def observe(self, state: DialogueState, rng: np.random.Generator) -> dict[str, np.ndarray]:
        enc = self.encoder
        d = enc.dim
        self.candidates = propose(state, self.k, rng) if state.current_step is not None else []
        texts = [c.text for c in self.candidates]
        seen = state.seen_values
        # Incremental: only the turns added since the last observation are encoded, so a
        # step costs the same at turn 2 and turn 20.
        for turn in state.history[len(self._turn_vectors) :]:
            raw, unit = enc.rows(turn.text, turn.role, None)
            self._turn_vectors.append(raw)
            self._history_sum += raw
            if turn.role == "agent":
                self._add_agent_vector(unit)
                self._since_agent = np.zeros(d, dtype=np.float32)
            else:
                self._since_agent += raw

        k = self.k
        if texts:
            n = len(texts)
            readings = [enc.reading(text, "agent") for text in texts]
            # Values marked against the dialogue (the observation).
            units = [enc.rows_of(r, "agent", seen)[1] for r in readings]
            if self._agent_turns:
                # Repetition: cosine similarity with the closest earlier agent reply, both
                # encoded alike (values by kind only), so a verbatim repeat scores 1. (One
                # matrix-vector product per candidate: a matrix product rounds differently.
                # ``ndarray.dot`` makes the same BLAS call as ``@`` at half the overhead.)
                earlier = self._agent_matrix[: self._agent_turns]
                repetition = [
                    min(1.0, max(0.0, max(earlier.dot(r.plain[1]).tolist()))) for r in readings
                ]
            else:
                repetition = [0.0] * n
            rows = [
                (rep, min(1.0, r.words / _LENGTH_SCALE), len(r.values - seen) / len(r.values))
                if r.values
                else (rep, min(1.0, r.words / _LENGTH_SCALE), 0.0)
                for rep, r in zip(repetition, readings, strict=True)
            ]
            if n < k:  # (too few distinct replies in a tiny domain: the rest stay zero)
                units += [np.zeros(d, dtype=np.float32)] * (k - n)
                rows += [(0.0, 0.0, 0.0)] * (k - n)
            cand = np.array(units, dtype=np.float32).reshape(-1)
            stats = np.array(rows, dtype=np.float32).reshape(-1)
        else:
            cand = np.zeros(k * d, dtype=np.float32)
            stats = np.zeros(k * len(CANDIDATE_STATS), dtype=np.float32)
        return {
            "dialogue": _normalised(self._history_sum),
            "last_turn": _normalised(self._since_agent),
            "candidates": cand,
            "candidate_stats": stats,
            "turn": np.array([min(1.0, len(state.agent_words) / MAX_TURNS)], dtype=np.float32),
        }

    def _add_agent_vector(self, vec: np.ndarray) -> None:
        if self._agent_turns == len(self._agent_matrix):
            grown = np.zeros((2 * len(self._agent_matrix), vec.shape[0]), dtype=np.float32)
            grown[: self._agent_turns] = self._agent_matrix
            self._agent_matrix = grown
        self._agent_matrix[self._agent_turns] = vec
        self._agent_turns += 1

    def reply(self, action: Any, state: DialogueState) -> str:
        try:
            index = int(action)
        except (TypeError, ValueError, OverflowError):  # (OverflowError: an infinite float)
            index = None
        if index is None or index != action or not 0 <= index < len(self.candidates):
            raise ValueError(
                f"action {action!r} is not valid for the select interface: expected an integer "
                f"index of one of the {self.k} candidates, 0 to {self.k - 1} (Discrete({self.k}))"
            )
        return self.candidates[index].text

    def expert_action(self, state: DialogueState, rng: np.random.Generator) -> int:
        """Index of the policy-correct candidate."""
        for i, c in enumerate(self.candidates):
            if c.label == CORRECT:
                return i
        raise RuntimeError("no candidates: the episode is over")


def _normalised(vec: np.ndarray) -> np.ndarray:
    """``vec`` scaled to unit length (a zero vector stays zero), as a new array."""
    # Entries are sums of integer counts, exact in float32: the dot product is exact, so
    # no entry can exceed the norm and the result lies in [-1, 1] without clipping.
    # (math.sqrt of the float32 dot product rounds to the float32 square root: dividing
    # by it gives what numpy's float32 sqrt would)
    norm = math.sqrt(float(vec.dot(vec)))
    return vec / norm if norm > 0 else vec.copy()
