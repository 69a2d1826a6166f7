"""Fluency: how natural a reply reads, judged by the reference language model.

Raters mark down replies that read as broken or stuffed with keywords, whatever the
keywords are. On free text (the tokens and text interfaces) a policy can otherwise win
rubric points by emitting the cue words the rubric looks for; the gold model adds this
component so that does not pay.

Two parts, both penalties (0 for a reply as natural as the expert's):

- likelihood: the mean log-probability per token of the reply under the reference LM,
  in context, compared with that of the scripted expert's replies in the same domain
  (customer service for exchanges that name none): each nat below the expert's (after
  a tolerance) costs ``per_nat``, down to ``max_penalty``;
- repeated phrases: the share of the reply's word pairs that occur in it more than once
  costs up to ``repeat_penalty``.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rlhf_envs.lm.build import default_lm_path
from rlhf_envs.lm.reference import ReferenceLM, load_reference_lm
from rlhf_envs.rewards.protocol import Exchange

_WORDS = re.compile(r"[a-z0-9$'-]+")
_CONTEXT_TOKENS = 96  # dialogue tokens the judge reads before a reply
_BASELINE_REPLIES = 64
_BASELINE_BATCH = 8
_DEFAULT_DOMAIN = "customer_service"
_baselines: dict[tuple[str, str], float] = {}
_baseline_lock = threading.Lock()


def repeated_pair_share(text: str) -> float:
    """Share of a reply's word pairs that repeat an earlier pair of the same reply."""
    words = _WORDS.findall(text.lower())
    pairs = list(zip(words, words[1:], strict=False))
    if len(pairs) < 3:
        return 0.0
    return sum(n - 1 for n in Counter(pairs).values()) / len(pairs)


class FluencyRewardModel:
    """Fluency penalty of replies (registered as ``"fluency"`` and ``"fluency:LM_FOLDER"``).

    Args:
        path: the reference LM's folder (default: the project's, built on first use).
        tolerance: nats per token below the expert's mean that cost nothing.
        per_nat: penalty per further nat; max_penalty: the most the likelihood part costs.
        repeat_penalty: penalty of a reply whose word pairs all repeat.
    """

    def __init__(
        self,
        path: str | None = None,
        tolerance: float = 0.5,
        per_nat: float = 0.5,
        max_penalty: float = 2.0,
        repeat_penalty: float = 2.0,
    ):
        self.lm: ReferenceLM = load_reference_lm(path or default_lm_path())
        self.tolerance, self.per_nat, self.max_penalty, self.repeat_penalty = (
            tolerance,
            per_nat,
            max_penalty,
            repeat_penalty,
        )

    def __repr__(self) -> str:
        return f"FluencyRewardModel({str(self.lm.path)!r})"

    def components(self, batch: Sequence[Exchange]) -> dict[str, np.ndarray]:
        baselines = np.array(
            [
                expert_baseline(
                    self.lm, e.scenario.domain if e.scenario is not None else _DEFAULT_DOMAIN
                )
                for e in batch
            ]
        )
        below = baselines - mean_logprobs(self.lm, batch) - self.tolerance
        likelihood = -np.clip(self.per_nat * below, 0.0, self.max_penalty)
        repeats = -self.repeat_penalty * np.array([repeated_pair_share(e.reply) for e in batch])
        return {"fluency": likelihood, "repeated_phrases": repeats}

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        parts = self.components(batch)
        return parts["fluency"] + parts["repeated_phrases"]


def mean_logprobs(lm: ReferenceLM, batch: Sequence[Exchange]) -> np.ndarray:
    """Mean log-probability per token of each reply (end-of-turn included) in context."""
    budget = _CONTEXT_TOKENS + len(lm.agent_prefix_ids)
    contexts = [lm.prompt_ids(exchange.history, budget) for exchange in batch]
    replies = [lm.encode(" " + exchange.reply.strip()) + [lm.eot_id] for exchange in batch]
    return np.array([lp.mean() for lp in lm.logprobs_of(contexts, replies)])


def expert_baseline(lm: ReferenceLM, domain: str = _DEFAULT_DOMAIN) -> float:
    """Mean log-probability per token of the scripted expert's replies in ``domain``
    under ``lm`` (fixed seed), computed once per model and domain."""
    key = (str(lm.path), domain)
    found = _baselines.get(key)
    if found is not None:
        return found
    with _baseline_lock:
        if key not in _baselines:
            from rlhf_envs.simulation.corpus import expert_transcripts

            exchanges = []
            for dialogue in expert_transcripts((domain,), 16, seed=12345):
                for i, turn in enumerate(dialogue):
                    if turn.role == "agent":
                        exchanges.append(
                            Exchange(scenario=None, history=dialogue[:i], reply=turn.text)
                        )
            exchanges = exchanges[:_BASELINE_REPLIES]
            # A few replies per forward: one batch of all 64 padded to the longest took
            # about 180 MB at its peak (attention masks and logits), most of a text env's
            # peak memory, for the same numbers (each row reads as it would alone).
            scores = [
                mean_logprobs(lm, exchanges[i : i + _BASELINE_BATCH])
                for i in range(0, len(exchanges), _BASELINE_BATCH)
            ]
            _baselines[key] = float(np.mean(np.concatenate(scores) if scores else []))
        return _baselines[key]
