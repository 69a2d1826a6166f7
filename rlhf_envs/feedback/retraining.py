"""Retrain the reward model on everything labelled so far; promote it only if not worse.

Every label is used: A/B choices and ties train the model (Davidson's Bradley-Terry with
ties), and stored ratings join them in one joint loss (see
:mod:`rlhf_envs.rewards.learned.training`); skips say nothing about the replies and are
only counted.

The labels of a fixed held-out slice of comparisons (:func:`store.is_heldout`, 20% by a
hash of the pair's content) never train any model; they judge each new model against the
current one. The labelling app draws held-out pairs at random, never actively, so neither
model is judged on pairs picked to be hard for one of them.
A new model goes to ``RM_DIR/vN`` (safetensors + JSON) whether promoted or not, is
recorded in the store's ``reward_models`` table, and on promotion ``RM_DIR/current``
(a symbolic link, swapped atomically) points at it, so ``reward="learned:RM_DIR/current"``
always names the promoted model. A lock file keeps two retraining jobs from taking the
same version number.
"""

from __future__ import annotations

import fcntl
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_envs.feedback.store import FeedbackStore, StoreError

__all__ = ["RetrainResult", "retrain_reward_model"]

MIN_TRAIN_LABELS = 20
MIN_HELDOUT_LABELS = 5


@dataclass(frozen=True)
class RetrainResult:
    """One retraining: the new model's version and folder, its held-out accuracy and the
    current model's on the same labels, and whether it was promoted."""

    version: int
    path: Path
    promoted: bool
    accuracy: float
    baseline_version: int | None
    baseline_accuracy: float | None
    train_labels: int
    heldout_labels: int
    seconds: float
    ties: int = 0
    ratings: int = 0
    skips: int = 0

    def summary(self) -> str:
        against = (
            "no current model"
            if self.baseline_version is None
            else f"current v{self.baseline_version} {self.baseline_accuracy:.3f}"
        )
        verdict = "promoted" if self.promoted else "kept the current model (the new one is worse)"
        used = f"{self.train_labels} labels"
        if self.ties or self.ratings or self.skips:
            used += (
                f" ({self.ties} ties, {self.ratings} ratings; {self.skips} skips not trained on)"
            )
        return (
            f"RM v{self.version}: trained on {used} in {self.seconds:.1f} s; "
            f"held-out accuracy {self.accuracy:.3f} on {self.heldout_labels} labels "
            f"vs {against}: {verdict}"
        )


@contextmanager
def _exclusive(rm_dir: Path) -> Iterator[None]:
    with open(rm_dir / ".retrain.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _point_current(rm_dir: Path, target: Path) -> None:
    tmp = rm_dir / f".current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target.name)
    os.replace(tmp, rm_dir / "current")  # atomic: readers see the old or the new model


def retrain_reward_model(
    store: FeedbackStore,
    rm_dir: str | os.PathLike,
    model: str = "linear",
    *,
    tolerance: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    **training: Any,
) -> RetrainResult:
    """Train a reward model on all labels outside the held-out slice (A/B choices, ties
    and every stored rating), compare it with the current one on the held-out A/B labels,
    and promote it if it is not worse.

    Args:
        store: the feedback database.
        rm_dir: folder of the versioned models (created if missing).
        model: ``"linear"`` or ``"minilm"`` (see :func:`train_reward_model`).
        tolerance: promote when ``new >= current - tolerance`` (default 0: not worse).
        seed: training seed.
        progress: show a progress bar while training.
        training: more :func:`train_reward_model` settings (epochs, lr, ...).

    Raises:
        StoreError: fewer than 20 training or 5 held-out A/B labels.
    """
    from rlhf_envs.rewards.learned import (
        CheckpointError,
        load_learned,
        pairwise_accuracy,
        train_reward_model,
    )

    rm_dir = Path(rm_dir)
    rm_dir.mkdir(parents=True, exist_ok=True)
    pairs = store.preference_pairs(heldout=False, ties=True)
    ratings = store.ratings()
    train: list[Any] = [*pairs, *ratings]
    held = store.preference_pairs(heldout=True)
    ties = sum(p.tie for p in pairs)
    skips = sum(label["choice"] == "skip" for label in store.labels())
    if len(pairs) - ties < MIN_TRAIN_LABELS or len(held) < MIN_HELDOUT_LABELS:
        raise StoreError(
            f"{store.path} has {len(pairs) - ties} training and {len(held)} held-out A/B "
            f"labels; retraining needs at least {MIN_TRAIN_LABELS} and {MIN_HELDOUT_LABELS} "
            "(ties, ratings and skips do not count toward these)"
        )
    started = time.perf_counter()
    with _exclusive(rm_dir):
        # Past the database's versions and the folder's: a model is never written over.
        on_disk = [
            int(p.name[1:])
            for p in rm_dir.glob("v*")
            if p.name[1:].isascii() and p.name[1:].isdigit()
        ]
        version = max([store.next_reward_model_version(), *(v + 1 for v in on_disk)])
        result = train_reward_model(
            train,
            model,
            seed=seed,
            progress=progress,
            data_info={
                "database": str(store.path),
                "labels": len(train),
                "ties": ties,
                "ratings": len(ratings),
                "skips": skips,
            },
            **training,
        )
        accuracy = pairwise_accuracy(result.model, held).accuracy
        current = store.current_reward_model()
        served = None if current is None else Path(current["path"])
        if served is not None and served.parent == rm_dir.resolve() and served.is_dir():
            # The store is the record: repair a link left behind by a crash after a swap.
            _point_current(rm_dir, served)
        baseline = None
        if current is not None:
            try:
                baseline = pairwise_accuracy(load_learned(current["path"]), held).accuracy
            except CheckpointError as err:
                warnings.warn(
                    f"the current reward model v{current['version']} cannot be loaded ({err}); "
                    "the new model is promoted without a comparison",
                    stacklevel=2,
                )
        promoted = baseline is None or accuracy >= baseline - tolerance
        folder = result.model.save(
            rm_dir / f"v{version}", heldout_accuracy=accuracy, version=version
        )
        # Recorded as not promoted until the link points at it: a crash in between leaves
        # the store and RM_DIR/current agreeing on the old model.
        store.record_reward_model(
            version,
            str(folder.resolve()),
            train_labels=len(train),
            heldout_labels=len(held),
            accuracy=accuracy,
            baseline_version=None if current is None else int(current["version"]),
            baseline_accuracy=baseline,
            promoted=False,
            config={"model": model, "seed": seed, **dict(training)},
        )
        if promoted:
            _point_current(rm_dir, folder)
            store.mark_promoted(version)
    return RetrainResult(
        version,
        folder,
        promoted,
        accuracy,
        None if current is None else int(current["version"]),
        baseline,
        len(train),
        len(held),
        time.perf_counter() - started,
        ties=ties,
        ratings=len(ratings),
        skips=skips,
    )
