"""The *tokens* interface: the agent writes its reply one token at a time (RLHF proper).

The vocabulary is the reference LM's (the project's byte-level BPE by default). A turn
ends when the agent emits the end-of-turn token or reaches ``max_reply_tokens``; the
reply is decoded, judged and answered like any other. The observation is a fixed-length,
left-padded window of token ids: the dialogue so far (cut from the left), ``"Agent:"``
and the reply so far, with its attention mask, both integer ``Box`` es (a
``MultiDiscrete`` would make Stable-Baselines3 one-hot it into length x V inputs).

KL shaping: with ``kl_coef=beta`` each token earns ``beta * log pi_ref(token | window)``
under the reference LM, computed incrementally with its key/value cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlhf_envs.dialogue import format_transcript
from rlhf_envs.interfaces.base import Interface
from rlhf_envs.lm.build import default_lm_path
from rlhf_envs.lm.reference import IncrementalScorer, ReferenceLM, load_reference_lm
from rlhf_envs.simulation.expert import expert_reply
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.words import stable_hash

DEFAULT_CONTEXT_LENGTH = 256  # tokens a policy reads: the last several turns of the dialogue


def resolve_lm(lm: str | ReferenceLM | None) -> ReferenceLM:
    """The reference LM named by ``lm``: ``None`` for the project's default (built on
    first use), a folder path, or a loaded :class:`ReferenceLM`."""
    if isinstance(lm, ReferenceLM):
        return lm
    return load_reference_lm(default_lm_path() if lm is None else lm)


class TokensInterface(Interface):
    """Write each reply token by token.

    Action space: ``Discrete(V)``, V the reference LM's vocabulary.
    Observation space: ``Dict`` with ``input_ids`` (int64 ``(L,)`` in ``[0, V-1]``) and
    ``attention_mask`` (int64 ``(L,)`` in ``{0, 1}``), L = ``context_length``,
    left-padded. The dialogue takes at most ``L - max_reply_tokens`` tokens, so the
    window never slides within a reply.

    Masked actions (see :meth:`action_masks`): the padding token and the tokenizer's
    other special tokens except end-of-turn. Taken anyway, such a token is not added to
    the reply, earns ``invalid_token_penalty`` and counts towards the length cap.

    Args:
        lm: the reference LM: ``None`` (the project's, built on first use), a folder.
        context_length: L, the window length (at most the LM's positions; default
            ``DEFAULT_CONTEXT_LENGTH`` = 256, or the LM's positions if it reads fewer).
        max_reply_tokens: tokens after which a reply ends without end-of-turn.
        kl_coef: beta of the KL shaping (0 turns it off and skips the reference forward).
        invalid_token_penalty: reward for a masked token.
    """

    name = "tokens"

    def __init__(
        self,
        lm: str | ReferenceLM | None = None,
        context_length: int | None = None,
        max_reply_tokens: int = 40,
        kl_coef: float = 0.0,
        invalid_token_penalty: float = -1.0,
    ):
        self.lm = resolve_lm(lm)
        if context_length is None:
            context_length = min(DEFAULT_CONTEXT_LENGTH, self.lm.max_positions)
        self.context_length = int(context_length)
        self.max_reply_tokens = int(max_reply_tokens)
        if not 1 <= self.max_reply_tokens < self.context_length - 8:
            raise ValueError(
                f"max_reply_tokens must be at least 1 and leave room for context in the window of "
                f"context_length={self.context_length} tokens; got {max_reply_tokens}"
            )
        if self.context_length > self.lm.max_positions:
            raise ValueError(
                f"context_length {self.context_length} is longer than the reference LM reads "
                f"({self.lm.max_positions} positions, {self.lm.path})"
            )
        if not np.isfinite(kl_coef) or kl_coef < 0:
            raise ValueError(f"kl_coef must be a finite number >= 0, got {kl_coef}")
        self.kl_coef = float(kl_coef)
        self.invalid_token_penalty = float(invalid_token_penalty)
        v = self.lm.vocab_size
        self.action_space = spaces.Discrete(v)
        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, v - 1, (self.context_length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (self.context_length,), np.int64),
            }
        )
        self._mask = np.ones(v, dtype=bool)
        special = set(self.lm.tokenizer.all_special_ids) | {self.lm.pad_id}
        for token in special - {self.lm.eot_id}:
            if 0 <= token < v:
                self._mask[token] = False
        self.reset()

    def reset(self) -> None:
        self._turn_ids: list[list[int]] = []  # token ids of each history turn (encoded once)
        self._context: list[int] | None = None  # the window's dialogue part for this turn
        self._reply: list[int] = []
        self._spent = 0  # tokens used of max_reply_tokens (masked ones included)
        self._scorer: IncrementalScorer | None = None
        self._expert: list[int] = []
        self.shaping = 0.0
        self.step_info: dict[str, Any] = {}

    # --- observation -----------------------------------------------------------------

    def _start_turn(self, state: DialogueState) -> list[int]:
        """Begin the agent's turn in ``state``; returns the window's dialogue part."""
        for turn in state.history[len(self._turn_ids) :]:
            self._turn_ids.append(self.lm.turn_ids(turn.role, turn.text))
        self._context = context = self.lm.prompt_ids(
            self._turn_ids, self.context_length - self.max_reply_tokens
        )
        self._reply, self._spent, self._expert = [], 0, []
        # Lazy: no forward pass until a log-probability is needed, so a vector env can
        # batch the context forwards of all its sub-envs (see reference_scorer).
        self._scorer = self.lm.start(context) if self.kl_coef > 0 else None
        return context

    def observe(self, state: DialogueState, rng: np.random.Generator) -> dict[str, np.ndarray]:
        context = self._context if self._context is not None else self._start_turn(state)
        window = context + self._reply
        ids = np.full(self.context_length, self.lm.pad_id, dtype=np.int64)
        mask = np.zeros(self.context_length, dtype=np.int64)
        ids[self.context_length - len(window) :] = window
        mask[self.context_length - len(window) :] = 1
        return {"input_ids": ids, "attention_mask": mask}

    @property
    def reference_scorer(self) -> IncrementalScorer | None:
        """The reference LM's scorer of this turn, with KL shaping (``None`` without):
        a vector env feeds the pending tokens of all its sub-envs' scorers in one batch
        (:func:`rlhf_envs.lm.reference.feed_batch`) before their actions are taken."""
        if self.kl_coef > 0 and self._context is not None and self._scorer is None:
            self._scorer = self.lm.start(self._context + self._reply)  # (after unpickling)
        return self._scorer

    def action_masks(self) -> np.ndarray:
        """Allowed tokens (``True``): all but padding and special tokens other than
        end-of-turn. For sb3-contrib's ``MaskablePPO``."""
        return self._mask.copy()

    # --- acting ----------------------------------------------------------------------

    def reply(self, action: Any, state: DialogueState) -> str | None:
        try:
            token = int(action)
        except (TypeError, ValueError, OverflowError):  # (OverflowError: an infinite float)
            token = None
        if token is None or token != action or not 0 <= token < self.lm.vocab_size:
            raise ValueError(
                f"action {action!r} is not valid for the tokens interface: expected a token id, "
                f"an integer from 0 to {self.lm.vocab_size - 1} (Discrete({self.lm.vocab_size}))"
            )
        if self._context is None:
            self._start_turn(state)
        self._spent += 1
        info: dict[str, Any] = {"token": token}
        if not self._mask[token]:
            self.shaping = self.invalid_token_penalty
            info["invalid_token"] = True
        else:
            self.shaping = 0.0
            if self.kl_coef > 0:
                scorer = self.reference_scorer
                assert scorer is not None  # (kl_coef > 0 and the turn has started)
                logprob = scorer.logprob(token)
                self.shaping = self.kl_coef * logprob
                info["ref_logprob"] = logprob
            self._reply.append(token)
        self.step_info = info
        if token == self.lm.eot_id or self._spent >= self.max_reply_tokens:
            text = self.lm.reply_text(self._reply)
            self._context = None  # the next observation starts a new turn
            return text
        if self._scorer is not None and self._mask[token]:
            self._scorer.advance(token)
        return None

    def __getstate__(self) -> dict[str, Any]:
        # The key/value cache is rebuilt from the token ids when next needed.
        return {**self.__dict__, "_scorer": None}

    def partial_reply(self) -> str:
        """The reply written so far in this turn."""
        return self.lm.reply_text(self._reply)

    def expert_action(self, state: DialogueState, rng: np.random.Generator) -> int:
        """The next token of the scripted expert's reply, then end-of-turn (its wording is
        drawn from the transcript's hash, so asking for it does not change the episode)."""
        if self._context is None:
            self._start_turn(state)
        if not self._expert:
            text = expert_reply(
                state, np.random.default_rng(stable_hash(format_transcript(state.history)))
            )
            self._expert = self.lm.encode(" " + text) + [self.lm.eot_id]
        written = len(self._reply)
        return self._expert[written] if written < len(self._expert) else self.lm.eot_id
