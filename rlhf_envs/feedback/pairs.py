"""Which pairs people are asked to label: drawn from env rollouts, actively or at random.

A :class:`PairSource` plays seeded episodes of a select-interface env (the behaviours of
:class:`FeedbackCollector`: expert, partly trained, random, or a policy function) and
draws two different candidate replies at a visited turn. In ``"active"`` mode it draws a
pool of such pairs and keeps the one the current reward model is least sure about (the
smallest ``|score(a) - score(b)|``: a Bradley-Terry probability nearest one half), the
uncertainty sampling of active preference learning. In ``"random"`` mode, or before any
reward model was promoted, it keeps the first pair drawn.

Pairs of the held-out slice (:func:`is_heldout`) are always drawn at random: they judge
reward models against each other, and pairs picked because one model found them hard
would be judged unfairly. When a model exists every pair records its margin, so the
admin view can show that model's accuracy on the random pairs.

The current reward model is the store's latest promoted one; it is reloaded when
``rlhf-envs retrain`` promotes a new one, so a running labelling server picks it up.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlhf_envs.feedback.annotators import DEFAULT_BEHAVIOURS, Context, FeedbackCollector, Policy
from rlhf_envs.feedback.store import (
    LEASE_SECONDS,
    Comparison,
    FeedbackStore,
    check_lease,
    is_heldout,
)

__all__ = ["MODES", "DrawnPair", "PairSource"]

MODES = ("active", "random")


@dataclass(frozen=True)
class DrawnPair:
    """Two candidate replies at one turn of a rollout, before they are stored."""

    context: Context
    reply_a: str
    reply_b: str
    rm_version: int | None = None
    rm_margin: float | None = None
    gold_margin: float | None = None
    active: bool = False  # chosen as the least sure of a pool (else drawn at random)


class PairSource:
    """Draws comparisons (and single replies to rate) from rollouts of ``env``.

    Args:
        store: where drawn items are stored.
        env: a select-interface env id (``"RLHF-Chat-v0"``).
        mode: ``"active"`` (least sure pair of a pool) or ``"random"``.
        pool: pairs drawn per kept pair in active mode.
        overlap: share of new comparisons asked of two annotators (for agreement).
        behaviours: who plays the episodes (see :class:`FeedbackCollector`).
        seed: seeds episodes, pair choice and overlap.
        env_kwargs: extra ``gymnasium.make`` arguments.
        lease_seconds: how long a pair handed out is held for its annotator.

    Raises:
        ValueError: an unknown mode, a pool below 1, an overlap outside [0, 1], or an
            env without the select interface.
    """

    def __init__(
        self,
        store: FeedbackStore,
        env: str = "RLHF-Chat-v0",
        mode: str = "active",
        pool: int = 16,
        overlap: float = 0.2,
        behaviours: Mapping[str, tuple[float | Policy, float]] | None = None,
        seed: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ):
        if mode not in MODES:
            raise ValueError(f"pair mode {mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(pool, int) or pool < 1:
            raise ValueError(f"pool must be an integer >= 1, got {pool!r}")
        if not 0.0 <= overlap <= 1.0:
            raise ValueError(f"overlap must be in [0, 1], got {overlap!r}")
        self.lease_seconds = check_lease(lease_seconds)
        self.store = store
        self.env_id = env
        self.mode = mode
        self.pool = pool
        self.overlap = float(overlap)
        self.collector = FeedbackCollector(
            env, behaviours=behaviours or DEFAULT_BEHAVIOURS, seed=seed, env_kwargs=env_kwargs
        )
        self._contexts = self.collector.contexts()
        self._rng = np.random.default_rng(seed + 1)
        self._lock = threading.Lock()  # one env and one generator: draw one pair at a time
        self._model: tuple[int, Any] | None = None

    # --- the reward model ----------------------------------------------------------------

    def reward_model(self) -> tuple[int, Any] | None:
        """``(version, model)`` of the store's current reward model, or ``None`` (none
        promoted yet, or its folder cannot be loaded: a warning says so)."""
        from rlhf_envs.rewards.learned import CheckpointError, load_learned

        current = self.store.current_reward_model()
        if current is None:
            return None
        if self._model is None or self._model[0] != current["version"]:
            try:
                self._model = (int(current["version"]), load_learned(current["path"]))
            except (CheckpointError, OSError) as err:
                # A moved or deleted model folder must not stop the labelling: draw at random.
                warnings.warn(
                    f"reward model v{current['version']} cannot be loaded ({err}); "
                    "drawing pairs at random until one can",
                    stacklevel=2,
                )
                return None
        return self._model

    # --- drawing ---------------------------------------------------------------------------

    def _candidate_pair(self) -> tuple[Context, str, str]:
        while True:
            ctx = next(self._contexts)
            texts = sorted(set(ctx.candidates), key=ctx.candidates.index)
            if len(texts) >= 2:
                i, j = self._rng.choice(len(texts), size=2, replace=False)
                return ctx, texts[int(i)], texts[int(j)]

    def draw(self) -> DrawnPair:
        """One pair (the least sure of a pool in active mode, when a model exists)."""
        with self._lock:
            model = self.reward_model()
            first = self._candidate_pair()
            drawn = [first]
            active = (
                self.mode == "active"
                and self.pool > 1
                and model is not None
                and not is_heldout(first[0].prompt(), first[1], first[2])
            )
            while active and len(drawn) < self.pool:
                pair = self._candidate_pair()
                if not is_heldout(pair[0].prompt(), pair[1], pair[2]):
                    drawn.append(pair)
            pick, margin = 0, None
            if model is not None:
                exchanges = [e for ctx, a, b in drawn for e in (ctx.exchange(a), ctx.exchange(b))]
                scores = np.asarray(model[1].score(exchanges), dtype=float).reshape(len(drawn), 2)
                margins = scores[:, 0] - scores[:, 1]
                pick = int(np.argmin(np.abs(margins))) if active else 0
                margin = float(margins[pick])
            ctx, a, b = drawn[pick]
            gold = self.collector.gold.score((ctx.exchange(a), ctx.exchange(b)))
            return DrawnPair(
                ctx,
                a,
                b,
                rm_version=None if model is None else model[0],
                rm_margin=margin,
                gold_margin=float(gold[0] - gold[1]),
                active=active,
            )

    def add(self, pair: DrawnPair) -> int:
        """Store a drawn pair as a comparison; returns its id."""
        with self._lock:
            wanted = 2 if self._rng.random() < self.overlap else 1
        ctx = pair.context
        return self.store.add_comparison(
            ctx.prompt(),
            pair.reply_a,
            pair.reply_b,
            source="active" if pair.active else "random",
            env_id=self.env_id,
            seed=ctx.seed,
            turn=ctx.turn,
            rm_version=pair.rm_version,
            rm_margin=pair.rm_margin,
            wanted_labels=wanted,
            metadata={
                "gold_margin": None if pair.gold_margin is None else round(pair.gold_margin, 6),
                "behaviour": ctx.behaviour,
                "episode": ctx.episode,
            },
        )

    def next_for(self, annotator_id: str) -> Comparison:
        """What ``annotator_id`` labels next: a stored comparison that still wants labels
        (overlap first), else a newly drawn one."""
        waiting = self.store.next_comparison(annotator_id, self.lease_seconds)
        if waiting is not None:
            return waiting
        new = self.add(self.draw())
        self.store.hold(new, annotator_id, self.lease_seconds)
        return self.store.comparison(new)

    def next_rating_item(self, annotator_id: str, scale: str) -> int:
        """The id of a reply for ``annotator_id`` to rate on ``scale`` (drawn if none waits)."""
        waiting = self.store.next_rating_item(annotator_id, scale)
        if waiting is not None:
            return waiting.id
        with self._lock:
            ctx, reply, _ = self._candidate_pair()
            gold = float(self.collector.gold.score((ctx.exchange(reply),))[0])
        return self.store.add_rating_item(
            ctx.prompt(),
            reply,
            source="random",
            env_id=self.env_id,
            seed=ctx.seed,
            turn=ctx.turn,
            metadata={"gold_score": round(gold, 6), "behaviour": ctx.behaviour},
        )

    def close(self) -> None:
        self.collector.close()
