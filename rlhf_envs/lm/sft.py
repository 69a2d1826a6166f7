"""Supervised fine-tuning of a small GPT-2 on dialogue transcripts.

The model learns the whole transcript (user, system and agent turns) as language, on
random windows of ``n_positions`` tokens, so it can continue a conversation from any
left-truncated window as the tokens interface shows it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel


@dataclass(frozen=True)
class SFTConfig:
    """Model size and training schedule.

    Attributes:
        n_layer, n_embd, n_head: the GPT-2's depth, width and attention heads.
        n_positions: the window it reads (and is trained on): 256, so a policy sees the
            last several turns and which policy steps are done (128 showed only ~88
            tokens of dialogue and policies repeated finished steps).
        steps: optimiser steps; batch_size: windows per step (16 x 256 tokens: the
            tokens per step of the earlier 32 x 128).
        lr: peak learning rate (linear warm-up, cosine decay); weight_decay: AdamW's.
        seed: initialisation and window sampling.
    """

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 256
    steps: int = 700
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 30
    seed: int = 0


def build_model(vocab_size: int, config: SFTConfig, eot_id: int, pad_id: int) -> GPT2LMHeadModel:
    """A freshly initialised ``GPT2LMHeadModel`` of the configured size."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(config.seed)
    gpt_config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        bos_token_id=eot_id,
        eos_token_id=eot_id,
        pad_token_id=pad_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(gpt_config)


def train_lm(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    config: SFTConfig,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` on windows drawn from ``sequences`` (token ids of transcripts).

    Transcripts are joined into one stream and windows start anywhere, as the env's
    left-truncated observations do. Returns the training loss of each step.
    """
    stream = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    n = config.n_positions
    if len(stream) <= n + 1:
        raise ValueError(
            f"the corpus has {len(stream)} tokens; training needs more than one window of {n}"
        )
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    decay = [p for name, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(0.9, 0.95),
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        progress_ = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_)))

    model.train()
    losses = []
    for step in range(config.steps):
        starts = rng.integers(0, len(stream) - n - 1, size=config.batch_size)
        batch = torch.from_numpy(np.stack([stream[s : s + n] for s in starts]))
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=batch, labels=batch).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def perplexity(model: torch.nn.Module, sequences: Sequence[Sequence[int]], window: int) -> float:
    """Per-token perplexity of ``model`` on ``sequences``, each read in windows of
    ``window`` tokens (non-overlapping; the first token of each sequence is not scored)."""
    total, count = 0.0, 0
    for seq in sequences:
        ids = torch.as_tensor(list(seq), dtype=torch.long)
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start : start + window + 1]
            if len(chunk) < 2:
                continue
            logits = model(input_ids=chunk[None, :-1]).logits[0]
            nll = torch.nn.functional.cross_entropy(logits.float(), chunk[1:], reduction="sum")
            total += float(nll)
            count += len(chunk) - 1
    return math.exp(total / max(count, 1))


def unigram_perplexity(
    train: Sequence[Sequence[int]], test: Sequence[Sequence[int]], vocab_size: int
) -> float:
    """Perplexity on ``test`` of the add-one-smoothed unigram model of ``train``."""
    counts = np.ones(vocab_size, dtype=np.float64)
    for seq in train:
        np.add.at(counts, np.asarray(seq, dtype=np.int64), 1.0)
    logp = np.log(counts / counts.sum())
    scored = np.concatenate([np.asarray(s[1:], dtype=np.int64) for s in test])
    return float(np.exp(-logp[scored].mean()))
