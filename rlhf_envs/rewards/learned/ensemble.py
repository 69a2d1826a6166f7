"""Ensembles of learned reward models: the mean of the members' scores, their spread as
an uncertainty.

Members trained on the same feedback with different inductive biases (hashed n-grams, a
fine-tuned encoder) make different mistakes, so their mean ranks replies more reliably
than either alone. Where the members disagree about a reply, its reward deserves less
trust: :meth:`EnsembleRewardModel.uncertainty` gives the standard deviation of the
members' normalised scores per reply, for uncertainty-aware RL or for choosing which
pairs to label next.

An ensemble checkpoint is a folder with ``config.json`` (kind ``"ensemble"``, the member
folders) and one ordinary checkpoint folder per member (``member-1``, ``member-2``, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlhf_envs.files import temporary_sibling
from rlhf_envs.rewards.learned.checkpoint import (
    CONFIG_FILE,
    FORMAT,
    VERSION,
    WEIGHTS_FILE,
    CheckpointError,
    check_writable,
)
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.protocol import Exchange

ENSEMBLE = "ensemble"


class EnsembleRewardModel:
    """Scores a reply by the mean of its members' normalised scores.

    Rewards:
        ``mean_k member_k.score(exchange)``: each member's score is already normalised to
        mean 0 and standard deviation 1 on its training replies, so members of different
        kinds weigh alike.

    Arguments:
        members: the learned reward models (two or more).
        info: the checkpoint's config (training facts), for reports.
        name: shown in error messages and listings.
    """

    objective = "preference"

    def __init__(
        self,
        members: Sequence[LearnedRewardModel],
        info: dict[str, Any] | None = None,
        name: str = ENSEMBLE,
    ):
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = list(members)
        self.info = dict(info or {})
        self.name = name
        self.path: Path | None = None

    def member_scores(self, contexts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """``(members, replies)`` normalised scores."""
        return np.stack([m.score_texts(contexts, replies) for m in self.members])

    def score_texts(
        self, contexts: Sequence[str], replies: Sequence[str], normalise: bool = True
    ) -> np.ndarray:
        """Mean normalised member score per reply (already on a common scale, so
        ``normalise`` changes nothing; it is accepted for the learned models' interface)."""
        return self.member_scores(contexts, replies).mean(axis=0)

    def uncertainty_texts(self, contexts: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """Standard deviation of the members' normalised scores per reply."""
        return self.member_scores(contexts, replies).std(axis=0)

    def score(self, batch: Sequence[Exchange]) -> np.ndarray:
        """The reward-model protocol: one score per exchange."""
        return self.score_texts([e.transcript() for e in batch], [e.reply for e in batch])

    def uncertainty(self, batch: Sequence[Exchange]) -> np.ndarray:
        """The members' spread per exchange (see :meth:`uncertainty_texts`)."""
        return self.uncertainty_texts([e.transcript() for e in batch], [e.reply for e in batch])

    def save(self, folder: str | os.PathLike, overwrite: bool = False, **record: Any) -> Path:
        """Write the members (``member-1``, ...) and ``config.json`` to ``folder``.

        Written in a temporary sibling folder and swapped in whole, so a failed save
        leaves nothing behind.

        Raises:
            CheckpointError: as :func:`~rlhf_envs.rewards.learned.checkpoint.check_writable`.
        """
        target = check_writable(folder, overwrite)
        tmp = temporary_sibling(target)
        try:
            names = [f"member-{k}" for k in range(1, len(self.members) + 1)]
            for name, member in zip(names, self.members, strict=True):
                member.save(tmp / name)
            config = {
                **{k: v for k, v in self.info.items() if k not in ("members", "kind")},
                **record,
                "format": FORMAT,
                "version": VERSION,
                "kind": ENSEMBLE,
                "members": names,
            }
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            if not target.exists() or not any(target.iterdir()):
                if target.exists():
                    target.rmdir()
                tmp.rename(target)
            else:
                _replace_checkpoint(tmp, target, names)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.path = target
        for name, member in zip(names, self.members, strict=True):
            member.path = target / name
        self.info = config
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike) -> EnsembleRewardModel:
        """Load an ensemble folder written by :meth:`save` (nothing is unpickled).

        Raises:
            CheckpointError: the folder, its config or a member is missing or corrupt.
        """
        path = Path(folder).expanduser().resolve()
        config = _read_json(path)
        members = config.get("members")
        if config.get("kind") != ENSEMBLE or not isinstance(members, list) or len(members) < 2:
            raise CheckpointError(
                f"{path / CONFIG_FILE} is not an ensemble config (kind 'ensemble' with a list "
                "of two or more member folders)"
            )
        for name in members:
            if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
                raise CheckpointError(
                    f"{path / CONFIG_FILE}: member {name!r} is not a folder name inside it"
                )
        model = cls(
            [LearnedRewardModel.load(path / name) for name in members],
            info=config,
            name=f"learned:{path}",
        )
        model.path = path
        return model

    def __repr__(self) -> str:
        return f"EnsembleRewardModel({len(self.members)} members, path={str(self.path)!r})"


def _replace_checkpoint(new: Path, target: Path, names: list[str]) -> None:
    """Swap the checkpoint written in ``new`` into ``target``, which holds an earlier one:
    only that checkpoint's own files and member folders are replaced, config last."""
    try:
        old = json.loads((target / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    owned = set(old.get("members") or []) | set(old.get("files") or []) | set(names)
    for name in owned - {CONFIG_FILE}:
        if "/" in name or name in ("", ".", ".."):
            continue
        stale = target / name
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink(missing_ok=True)
    for name in names:
        os.replace(new / name, target / name)
    os.replace(new / CONFIG_FILE, target / CONFIG_FILE)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {path / CONFIG_FILE}: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{path / CONFIG_FILE} is not a JSON object")
    return config


def load_learned(folder: str | os.PathLike) -> LearnedRewardModel | EnsembleRewardModel:
    """A learned reward model or an ensemble of them, whichever ``folder`` holds.

    Raises:
        CheckpointError: the folder is not a readable checkpoint of either kind.
    """
    path = Path(folder).expanduser().resolve()
    if (path / CONFIG_FILE).is_file():
        try:
            kind = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("kind")
        except (ValueError, AttributeError, OSError):
            kind = None  # LearnedRewardModel.load says what is wrong with it
        if kind == ENSEMBLE:
            return EnsembleRewardModel.load(path)
    return LearnedRewardModel.load(folder)  # (as given: its errors quote the user's path)


_loaded: dict[str, tuple[tuple, LearnedRewardModel | EnsembleRewardModel]] = {}
_lock = threading.Lock()


def _stamp(folder: Path) -> tuple:
    """What changes when a checkpoint is rewritten (a save replaces ``config.json`` last;
    an ensemble has no weights file of its own)."""
    try:
        files = [folder / CONFIG_FILE]
        if (folder / WEIGHTS_FILE).exists():
            files.append(folder / WEIGHTS_FILE)
        return tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in (f.stat() for f in files))
    except OSError:
        return ()


def load_reward_model(path: str | None = None) -> LearnedRewardModel | EnsembleRewardModel:
    """The ``learned`` reward plugin: ``reward="learned:PATH"`` loads checkpoint ``PATH``
    (one model or an ensemble).

    Envs of one process that name the same checkpoint share one loaded model (scoring
    does not change it), so 16 sub-envs do not hold 16 copies of a transformer. A
    checkpoint rewritten on disk is loaded afresh and replaces the old copy.
    """
    if path is None:
        raise ValueError(
            "reward model 'learned' needs a checkpoint folder: write 'learned:PATH', e.g. "
            "reward='learned:runs/rm' (train one with `rlhf-envs train-rm`)"
        )
    folder = Path(path).expanduser().resolve()
    stamp = _stamp(folder)
    with _lock:
        hit = _loaded.get(str(folder))
        if hit is not None and stamp and hit[0] == stamp:
            return hit[1]
        model = load_learned(folder)
        _loaded[str(folder)] = (stamp, model)
        return model
