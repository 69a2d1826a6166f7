"""Building the reference LM from the project's corpus, and finding it in the cache.

``rlhf-envs build-lm`` (or the first env that needs the model) generates expert
transcripts of the built-in domains, trains the byte-level BPE tokenizer and
fine-tunes the small GPT-2 on them, all from one seed, and saves the folder
(tokenizer files, ``config.json``, ``model.safetensors`` and ``rlhf_lm.json`` with what
was measured) in the user's cache directory. The folder name carries a hash of the
settings, of the domains' data and of the first transcripts of the corpus (what the
engine makes of the data), so a change to any of them builds a new model instead of
reusing a stale one, while an edit to the engine that leaves the conversations as they
were reuses the model already built.

Where things are looked up:

- ``RLHF_ENVS_LM``: a model folder to use as the default reference LM (any Hugging
  Face causal LM folder);
- ``RLHF_ENVS_CACHE``: the cache directory (default ``$XDG_CACHE_HOME/rlhf-envs`` or
  ``~/.cache/rlhf-envs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf_envs.dialogue import EOT, Turn, format_turn, transcript_text
from rlhf_envs.files import temporary_sibling
from rlhf_envs.lm.reference import LM_CONFIG_FILE, quiet_transformers
from rlhf_envs.lm.sft import SFTConfig, build_model, perplexity, train_lm, unigram_perplexity
from rlhf_envs.lm.tokenizer import DEFAULT_VOCAB_SIZE, train_tokenizer
from rlhf_envs.simulation.corpus import expert_transcripts
from rlhf_envs.simulation.domain import get_domain
from rlhf_envs.simulation.understanding import LANGUAGE_FILE

BUILD_FORMAT = 1  # bump when the build changes in a way the settings do not show
LM_ENV_VAR = "RLHF_ENVS_LM"
CACHE_ENV_VAR = "RLHF_ENVS_CACHE"


@dataclass(frozen=True)
class LMBuildConfig:
    """What a reference-LM build uses.

    Attributes:
        domains: built-in domains whose expert transcripts make the corpus.
        episodes: training transcripts; held_out: transcripts kept for perplexity.
        vocab_size: BPE vocabulary size.
        sft: model size and training schedule.
        seed: the corpus seed (the held-out transcripts use ``seed + 1``).
        threads: torch threads for the fine-tuning, whatever the caller's setting. Part of
            the build, not a speed knob only: parallel sums split by thread count, so
            another count gives (slightly) different weights. Fixed, every entry point
            (the command, an env's first use, a test session under one thread per
            worker) builds the same model into the same cache folder.
    """

    domains: tuple[str, ...] = ("customer_service", "finance", "medical", "tiny")
    episodes: int = 4000
    held_out: int = 200
    vocab_size: int = DEFAULT_VOCAB_SIZE
    sft: SFTConfig = field(default_factory=SFTConfig)
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def cache_dir() -> Path:
    """The user's cache directory for built models."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlhf-envs"


# Transcripts of the corpus hashed into the cache key: the first ones of the build's own
# corpus (same domains and seed), enough to cover every domain's tasks.
FINGERPRINT_TRANSCRIPTS = 200


@functools.lru_cache(maxsize=16)
def _corpus_fingerprint(domains: tuple[str, ...], seed: int) -> str:
    """A hash of the domains' data and of what the engine makes of it.

    The engine is fingerprinted by its behaviour, not its source: the first transcripts
    of the corpus, formatted as the tokenizer reads them. An edit that leaves the
    conversations as they were (a faster step, a comment) keeps the cached model; one
    that changes them builds a new one.
    """
    h = hashlib.sha256()
    for name in domains:
        folder = get_domain(name).folder
        for path in sorted(folder.glob("*.yaml")) + [folder / "hooks.py"]:
            h.update(path.name.encode())
            h.update(path.read_bytes())
    h.update(LANGUAGE_FILE.read_bytes())
    for transcript in expert_transcripts(domains, FINGERPRINT_TRANSCRIPTS, seed):
        h.update(transcript_text(transcript, EOT).encode())
    return h.hexdigest()


def build_key(config: LMBuildConfig) -> str:
    """The cache folder name of a build: settings and domain data hashed."""
    blob = json.dumps(
        {
            "format": BUILD_FORMAT,
            "config": config.to_dict(),
            "data": _corpus_fingerprint(tuple(config.domains), config.seed),
        },
        sort_keys=True,
    )
    return f"reference-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def default_lm_path(
    config: LMBuildConfig | None = None, build: bool = True, quiet: bool = False
) -> Path:
    """The folder of the default reference LM, built first if it is not in the cache.

    ``RLHF_ENVS_LM`` overrides it with a folder of the user's.

    Raises:
        FileNotFoundError: the model is not built and ``build`` is false.
    """
    if config is None and os.environ.get(LM_ENV_VAR):
        return Path(os.environ[LM_ENV_VAR]).expanduser().resolve()
    config = config or LMBuildConfig()
    folder = cache_dir() / "lm" / build_key(config)
    if (folder / LM_CONFIG_FILE).is_file():
        return folder
    if not build:
        raise FileNotFoundError(
            f"the reference LM is not built yet ({folder}); run `rlhf-envs build-lm`"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder.parent / f".{folder.name}.lock"):
        # (another process may have built it meanwhile)
        if not (folder / LM_CONFIG_FILE).is_file():
            if not quiet:
                print(
                    "rlhf-envs: building the reference language model (once; a few minutes on a "
                    f"CPU) into {folder}. `rlhf-envs build-lm` does this ahead of time.",
                    file=sys.stderr,
                )
            build_reference_lm(folder, config, progress=not quiet, overwrite=True)
    return folder


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_reference_lm(
    out: str | Path,
    config: LMBuildConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build the tokenizer and reference LM into ``out``, written in a temporary sibling
    folder and moved into place when complete.

    Args:
        out: a new or empty folder, or (with ``overwrite``) an earlier reference LM, whose
            files are replaced; other files in it are kept.

    Returns what was measured (also saved as ``rlhf_lm.json``): corpus size, build time,
    held-out perplexity of the LM and of a unigram model.

    Raises:
        FileExistsError: ``out`` holds something else, or an LM and not ``overwrite``;
            checked before the minutes of training.
    """
    config = config or LMBuildConfig()
    if config.threads < 1:
        raise ValueError(f"LMBuildConfig.threads must be at least 1, got {config.threads}")
    out = Path(out).expanduser().resolve()
    _check_target(out, overwrite)
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _build(out, config, progress)
    finally:
        torch.set_num_threads(caller_threads)


def _build(out: Path, config: LMBuildConfig, progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    train_dialogues = list(expert_transcripts(config.domains, config.episodes, config.seed))
    test_dialogues = list(expert_transcripts(config.domains, config.held_out, config.seed + 1))
    # The tokenizer learns from turns without the end-of-turn marker, which is a single
    # special token and must not be split into merges.
    tokenizer = train_tokenizer(
        (
            format_turn(role, text, eot="")
            for dialogue in train_dialogues
            for role, text in dialogue
        ),
        config.vocab_size,
    )
    eot_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id

    def ids_of(dialogues: Sequence[tuple[Turn, ...]]) -> list[list[int]]:
        return [
            tokenizer.encode(transcript_text(d, EOT), add_special_tokens=False) for d in dialogues
        ]

    train_ids, test_ids = ids_of(train_dialogues), ids_of(test_dialogues)
    model = build_model(len(tokenizer), config.sft, eot_id, pad_id)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=config.sft.steps,
            desc="build-lm: fine-tuning",
            unit="step",
            file=sys.stderr,
            mininterval=1.0,
        )

    def report(step: int, loss: float) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    losses = train_lm(model, train_ids, config.sft, report)
    if bar is not None:
        bar.close()
    info = {
        "format": BUILD_FORMAT,
        "config": config.to_dict(),
        "corpus_tokens": int(sum(len(s) for s in train_ids)),
        "held_out_tokens": int(sum(len(s) for s in test_ids)),
        "vocab_size": len(tokenizer),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "final_train_loss": float(np.mean(losses[-20:])),
        "held_out_perplexity": perplexity(model, test_ids, config.sft.n_positions),
        "unigram_perplexity": unigram_perplexity(train_ids, test_ids, len(tokenizer)),
        "build_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    tmp = temporary_sibling(out)
    try:
        with quiet_transformers():
            tokenizer.save_pretrained(tmp)
            model.save_pretrained(tmp, safe_serialization=True)
        (tmp / LM_CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if not out.exists() or not any(out.iterdir()):
            if out.exists():
                out.rmdir()
            tmp.rename(out)
        else:
            # An earlier LM (checked at the start): its files are replaced one by one,
            # rlhf_lm.json (what marks a complete LM) last; other files stay.
            for path in sorted(tmp.iterdir(), key=lambda p: p.name == LM_CONFIG_FILE):
                os.replace(path, out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} is a file; give a folder for the reference LM")
    if not any(out.iterdir()):
        return
    if not (out / LM_CONFIG_FILE).is_file():
        raise FileExistsError(f"{out} exists and is not a reference-LM folder; not overwriting it")
    if not overwrite:
        raise FileExistsError(
            f"{out} already holds a reference LM; give a new folder, or --force to rebuild it"
        )
