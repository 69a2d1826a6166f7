"""Reward-model checkpoints: a folder with ``config.json`` and ``model.safetensors``.

``config.json`` records the model kind and architecture, what it was trained on (file,
SHA-256 of its bytes, record count), the training settings and metrics, and how scores
are normalised. Weights are in safetensors; a transformer model adds its tokenizer files.
Nothing is ever unpickled, so a checkpoint from anywhere is safe to load.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rlhf_envs.files import temporary_sibling
from rlhf_envs.rewards.learned.linear import LinearScorer
from rlhf_envs.rewards.learned.transformer import TransformerScorer

FORMAT = "rlhf-envs-reward-model"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
Scorer = LinearScorer | TransformerScorer
"""The model inside a learned reward model (a ``torch.nn.Module``)."""
SCORERS: dict[str, type[Scorer]] = {"linear": LinearScorer, "transformer": TransformerScorer}
_EXPECTED = f"a folder with {CONFIG_FILE} and {WEIGHTS_FILE}, as written by `rlhf-envs train-rm`"


class CheckpointError(ValueError):
    """A reward-model checkpoint is missing, incomplete or corrupt (the message says which file)."""


def check_writable(folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """The absolute path of ``folder`` if a checkpoint may be written there: it does not
    exist or is empty, or (with ``overwrite``) holds an earlier rlhf-envs reward-model
    checkpoint.

    Raises:
        CheckpointError: ``folder`` is a file, a folder with other contents, or an earlier
            checkpoint and ``overwrite`` is false.
    """
    target = Path(folder).expanduser().resolve()
    if not target.exists():
        return target
    if not target.is_dir():
        raise CheckpointError(
            f"cannot save a reward model to {str(folder)!r}: it is a file; give a folder path"
        )
    if not any(target.iterdir()):
        return target
    if _checkpoint_config(target) is None:
        raise CheckpointError(
            f"cannot save a reward model to {str(folder)!r}: the folder exists and is not a "
            "reward-model checkpoint, so saving would replace its contents; give a new or empty "
            "folder"
        )
    if not overwrite:
        raise CheckpointError(
            f"{str(folder)!r} already holds a reward-model checkpoint; give a new folder, or "
            "--force to replace it (only the checkpoint's own files are replaced)"
        )
    return target


def _checkpoint_config(folder: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) and config.get("format") == FORMAT else None


def save_checkpoint(
    folder: str | os.PathLike, scorer: Scorer, config: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write ``scorer``'s weights and ``config`` (plus the scorer's own settings) to ``folder``.

    The checkpoint is written in a temporary sibling folder first, so a failed save leaves
    nothing behind. A new folder is swapped into place whole. Replacing an earlier
    checkpoint (``overwrite``) replaces only that checkpoint's own files, listed in its
    ``config.json``, with ``config.json`` last: any other file in the folder is kept.

    Returns:
        The absolute path of the checkpoint folder.

    Raises:
        CheckpointError: as :func:`check_writable`.
    """
    from safetensors.torch import save_model

    target = check_writable(folder, overwrite)
    tmp = temporary_sibling(target)
    try:
        save_model(scorer, str(tmp / WEIGHTS_FILE))
        save_extra = getattr(scorer, "save_extra", None)  # (files beside the weights)
        if save_extra is not None:
            save_extra(tmp)
        full = {
            **config,
            "format": FORMAT,
            "version": VERSION,
            "kind": scorer.kind,
            "scorer": scorer.config(),
            "files": sorted([p.name for p in tmp.iterdir()] + [CONFIG_FILE]),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        if not target.exists() or not any(target.iterdir()):
            if target.exists():
                target.rmdir()
            tmp.rename(target)
            return target
        old = _checkpoint_config(target) or {}
        # Checkpoints from before the "files" key wrote the weights, the config and, for
        # transformers, the tokenizer's files; nothing else is removed.
        old_files = set(old.get("files") or (CONFIG_FILE, WEIGHTS_FILE))
        for name in full["files"]:
            if name != CONFIG_FILE:
                os.replace(tmp / name, target / name)
        os.replace(tmp / CONFIG_FILE, target / CONFIG_FILE)
        for stale in old_files - set(full["files"]):
            if "/" not in stale and stale not in ("", ".", ".."):
                (target / stale).unlink(missing_ok=True)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_config(folder: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The checkpoint's absolute path and its checked ``config.json``.

    Raises:
        CheckpointError: the folder or a file is missing, the config is not valid JSON,
            not a reward-model config, or of an unknown kind or version.
    """
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise CheckpointError(
            f"reward-model checkpoint {str(folder)!r} {what}; expected {_EXPECTED}"
        )
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"reward-model checkpoint {str(folder)!r} has no {CONFIG_FILE}; expected {_EXPECTED}"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{config_path} is not valid JSON ({err}); expected {_EXPECTED}"
        ) from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(
            f'{config_path} is not an rlhf-envs reward-model config (no "format": "{FORMAT}"); '
            f"expected {_EXPECTED}"
        )
    if config.get("version") != VERSION:
        raise CheckpointError(
            f"{config_path} has format version {config.get('version')!r}; this rlhf-envs reads "
            f"version {VERSION}"
        )
    if config.get("kind") not in SCORERS:
        raise CheckpointError(
            f"{config_path} names model kind {config.get('kind')!r}; "
            f"known kinds: {', '.join(SCORERS)}"
        )
    if not isinstance(config.get("scorer"), dict):
        raise CheckpointError(f'{config_path} has no "scorer" settings; expected {_EXPECTED}')
    if not (path / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"reward-model checkpoint {str(folder)!r} has no {WEIGHTS_FILE}; expected {_EXPECTED}"
        )
    return path, config


def load_checkpoint(folder: str | os.PathLike) -> tuple[Scorer, dict[str, Any], Path]:
    """Rebuild the scorer saved in ``folder``.

    Returns:
        ``(scorer, config, absolute_path)``; the scorer is in eval mode.

    Raises:
        CheckpointError: see :func:`read_config`; also when the weights file is corrupt
            or does not fit the recorded architecture.
    """
    from safetensors.torch import load_model

    path, config = read_config(folder)
    weights = path / WEIGHTS_FILE
    try:
        scorer = SCORERS[config["kind"]].from_config(config["scorer"], path)
    except Exception as err:  # any bad setting is a bad checkpoint
        raise CheckpointError(
            f"{path / CONFIG_FILE}: could not rebuild the {config['kind']} model from its "
            f"settings: {type(err).__name__}: {err}"
        ) from err
    try:
        load_model(scorer, str(weights))
    except Exception as err:  # safetensors raises several types for bad files
        raise CheckpointError(
            f"{weights} is corrupt or does not match {CONFIG_FILE} ({type(err).__name__}: {err})"
        ) from err
    scorer.eval()
    return scorer, config, path
