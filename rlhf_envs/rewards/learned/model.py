"""A learned reward model as a reward plugin: ``reward="learned:path/to/checkpoint"``."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_envs.rewards.learned.checkpoint import (
    CheckpointError,
    Scorer,
    load_checkpoint,
    save_checkpoint,
)
from rlhf_envs.rewards.protocol import Exchange

OBJECTIVES = ("preference", "rating")


class LearnedRewardModel:
    """Scores replies with a model trained on human (or simulated) feedback.

    A *preference* model (trained with the Bradley-Terry loss on pairs) scores a reply by
    its logit; a *rating* model (a classifier trained with cross-entropy on ratings)
    scores it by its expected rating. Scores are then normalised with the offset and
    scale measured on the training replies (mean 0, standard deviation 1 there), so
    rewards from different models have comparable size.

    The model sees only text: the dialogue before the reply as ``Role: text`` lines
    (:meth:`Exchange.transcript`) and the reply. Batches are scored in one forward pass
    (in chunks of ``batch_size``) without gradients.

    Args:
        scorer: a :class:`LinearScorer` or :class:`TransformerScorer`.
        objective: ``"preference"`` or ``"rating"``.
        rating_values: for rating models, the rating each output class stands for.
        offset, scale: the normalisation (``(raw - offset) / scale``).
        info: the checkpoint's config (training data, metrics), for reports.
        name: shown in error messages and listings.
    """

    def __init__(
        self,
        scorer: Scorer,
        objective: str = "preference",
        rating_values: Sequence[float] | None = None,
        offset: float = 0.0,
        scale: float = 1.0,
        info: dict[str, Any] | None = None,
        name: str = "learned",
        batch_size: int = 64,
    ):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective {objective!r} is not one of {OBJECTIVES}")
        if objective == "rating" and (
            rating_values is None or len(rating_values) != scorer.num_outputs
        ):
            raise ValueError("a rating model needs one rating value per output class")
        if not (np.isfinite(scale) and scale > 0 and np.isfinite(offset)):
            raise ValueError(
                f"normalisation must be finite with scale > 0; got offset={offset}, scale={scale}"
            )
        self.scorer = scorer.eval()
        self.objective = objective
        self.rating_values = (
            None if rating_values is None else torch.tensor(rating_values, dtype=torch.float32)
        )
        self.offset = float(offset)
        self.scale = float(scale)
        self.info = dict(info or {})
        self.name = name
        self.batch_size = int(batch_size)
        self.path: Path | None = None
        # One model may serve envs on several threads; its caches and tokenizer are not
        # thread-safe, so scoring is serialised.
        self._scoring = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_scoring"]  # locks do not pickle; a copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scoring = threading.Lock()

    # --- scoring -----------------------------------------------------------------------

    def raw_from_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores from the scorer's outputs (logit, or expected rating)."""
        if self.objective == "preference":
            return outputs[:, 0]
        values = self.rating_values
        assert values is not None  # (a rating model has them: checked in __init__)
        return torch.softmax(outputs, dim=-1) @ values

    def score_texts(
        self, contexts: Sequence[str], replies: Sequence[str], normalise: bool = True
    ) -> np.ndarray:
        """Scores of ``replies`` after ``contexts`` (``Role: text`` transcripts), float64."""
        if len(contexts) != len(replies):
            raise ValueError(f"{len(contexts)} contexts but {len(replies)} replies")
        out = np.empty(len(replies), dtype=np.float64)
        with self._scoring, torch.inference_mode():
            for at in range(0, len(replies), self.batch_size):
                end = at + self.batch_size
                inputs = self.scorer.encode(contexts[at:end], replies[at:end])
                outputs = self.scorer(*inputs) if isinstance(inputs, tuple) else self.scorer(inputs)
                out[at:end] = self.raw_from_outputs(outputs).double().numpy()
        return (out - self.offset) / self.scale if normalise else out

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        """The reward-model protocol: one normalised score per exchange."""
        return self.score_texts([e.transcript() for e in batch], [e.reply for e in batch])

    # --- checkpoints -------------------------------------------------------------------

    def save(self, folder: str | os.PathLike, overwrite: bool = False, **record: Any) -> Path:
        """Write the model to ``folder`` (see :mod:`checkpoint`); ``record`` adds keys to
        ``config.json`` (training data, settings, metrics).

        Raises:
            CheckpointError: ``folder`` holds other files, or an earlier checkpoint and
                ``overwrite`` is false.
        """
        # The checkpoint's own keys are written fresh (a loaded model's info holds old ones).
        own = (
            "objective",
            "rating_values",
            "normalisation",
            "format",
            "version",
            "kind",
            "scorer",
            "files",
        )
        config = {
            "objective": self.objective,
            "rating_values": None if self.rating_values is None else self.rating_values.tolist(),
            "normalisation": {"offset": self.offset, "scale": self.scale},
            **{k: v for k, v in self.info.items() if k not in own},
            **record,
        }
        self.path = save_checkpoint(folder, self.scorer, config, overwrite)
        self.info = {k: v for k, v in config.items()}
        return self.path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> LearnedRewardModel:
        """Load a checkpoint folder (safetensors + JSON; nothing is unpickled).

        Raises:
            CheckpointError: the folder is missing, incomplete or corrupt.
        """
        scorer, config, path = load_checkpoint(folder)
        norm = config.get("normalisation") or {}
        try:
            model = cls(
                scorer,
                objective=config.get("objective", "preference"),
                rating_values=config.get("rating_values"),
                offset=float(norm.get("offset", 0.0)),
                scale=float(norm.get("scale", 1.0)),
                info=config,
                name=f"learned:{path}",
            )
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path / 'config.json'}: {err}") from err
        model.path = path
        return model

    def __repr__(self) -> str:
        return f"LearnedRewardModel({self.scorer.kind}, {self.objective}, path={str(self.path)!r})"
