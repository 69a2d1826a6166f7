"""Training reward models on feedback: Bradley-Terry on pairs, cross-entropy on ratings.

Pairs train a scalar score ``r(context, reply)`` with the Bradley-Terry loss
``-log sigmoid(r(chosen) - r(rejected))``; ratings train a classifier over the rating
scale with cross-entropy, which scores a reply by its expected rating. Part of the data
is held out (whole dialogues at a time, so near-identical contexts do not leak across
the split) for early stopping: training keeps the weights of the epoch with the lowest
held-out loss and stops after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlhf_envs.preference_data.records import RATING_SCALES, PreferencePair, Rating
from rlhf_envs.rewards.learned.checkpoint import Scorer
from rlhf_envs.rewards.learned.linear import LinearScorer
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.learned.transformer import TransformerScorer

LINEAR = "linear"


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(chosen - rejected)``: the negative log-likelihood of the
    observed preferences under the Bradley-Terry model ``P(a > b) = sigmoid(r_a - r_b)``."""
    return -F.logsigmoid(chosen - rejected).mean()


def build_scorer(model: str, num_outputs: int = 1, max_length: int = 256) -> Scorer:
    """A fresh scorer: ``"linear"``, ``"minilm"`` or a Hugging Face model folder / cached name."""
    if not isinstance(model, str) or not model:
        raise ValueError(
            f"model must be 'linear', 'minilm' or a Hugging Face model path; got {model!r}"
        )
    if model == LINEAR:
        return LinearScorer(num_outputs)
    return TransformerScorer.from_pretrained(model, num_outputs, max_length)


@dataclass
class TrainResult:
    """What :func:`train_reward_model` returns.

    Attributes:
        model: the trained reward model (best held-out epoch).
        metrics: final held-out metrics and training facts (seconds, epochs, sizes).
        history: one dict of metrics per epoch.
    """

    model: LearnedRewardModel
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


def split_groups(
    records: Sequence[Any], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train / held-out split that keeps each dialogue on one side.

    Records are grouped by ``metadata["episode"]`` when present (simulated data), else by
    prompt.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    groups: dict[Any, list[int]] = {}
    for i, record in enumerate(records):
        key = record.metadata.get("episode", record.prompt)
        groups.setdefault(str(key), []).append(i)
    order = list(groups.values())
    np.random.default_rng(seed).shuffle(order)
    want = int(round(fraction * len(records)))
    held: list[int] = []
    train: list[int] = []
    for members in order:
        (held if len(held) < want else train).extend(members)
    if fraction > 0 and (not held or not train):
        raise ValueError(
            f"cannot hold out {fraction:.0%} of {len(records)} records in {len(groups)} dialogues; "
            f"give more data or --validation 0"
        )
    return np.array(train, dtype=np.int64), np.array(held, dtype=np.int64)


def _check_records(data: Sequence[Any]) -> tuple[str, str | None]:
    if len(data) == 0:
        raise ValueError("no training data: give at least a few preference pairs or ratings")
    kinds = {type(r) for r in data}
    if kinds == {PreferencePair}:
        return "preference", None
    if kinds == {Rating}:
        scales = {r.scale for r in data}
        if len(scales) > 1:
            raise ValueError(f"ratings mix scales {sorted(scales)}; train on one scale at a time")
        return "rating", scales.pop()
    names = sorted(k.__name__ for k in kinds)
    raise ValueError(f"training data must be all PreferencePair or all Rating records; got {names}")


class _Task:
    """The objective-specific parts of training: inputs, loss and held-out metrics."""

    def __init__(self, scorer: Scorer, records: Sequence[Any], objective: str, scale: str | None):
        self.scorer = scorer
        self.objective = objective
        self.inputs: tuple[Any, ...]  # per reply column: the scorer's encoded inputs
        self.targets: torch.Tensor | None
        if objective == "preference":
            prompts = [r.prompt for r in records]
            self.inputs = (
                scorer.encode(prompts, [r.chosen for r in records]),
                scorer.encode(prompts, [r.rejected for r in records]),
            )
            self.targets = None
        else:
            assert scale is not None  # (ratings have one: _check_records)
            low, high = RATING_SCALES[scale]
            self.values = [float(v) for v in range(low, high + 1)]
            self.inputs = (
                scorer.encode([r.prompt for r in records], [r.completion for r in records]),
            )
            self.targets = torch.tensor([int(r.label) - low for r in records], dtype=torch.long)

    def _run(self, inputs: Any) -> torch.Tensor:
        return self.scorer(*inputs) if isinstance(inputs, tuple) else self.scorer(inputs)

    def loss(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss over the records ``index`` and a per-record "correct" indicator."""
        if self.objective == "preference":
            chosen = self._run(self.scorer.select(self.inputs[0], index))[:, 0]
            rejected = self._run(self.scorer.select(self.inputs[1], index))[:, 0]
            diff = chosen - rejected
            correct = (diff > 0).float() + 0.5 * (diff == 0).float()  # a tie is a coin flip
            return bradley_terry_loss(chosen, rejected), correct
        logits = self._run(self.scorer.select(self.inputs[0], index))
        assert self.targets is not None  # (set for ratings)
        target = self.targets[torch.as_tensor(index)]
        return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float()

    def evaluate(self, index: np.ndarray, batch_size: int) -> dict[str, float]:
        if len(index) == 0:
            return {}
        total = 0.0
        correct = []
        with torch.inference_mode():
            for at in range(0, len(index), batch_size):
                part = index[at : at + batch_size]
                loss, ok = self.loss(part)
                total += float(loss) * len(part)
                correct.append(ok)
        return {"loss": total / len(index), "accuracy": float(torch.cat(correct).mean())}

    def raw_scores(
        self, index: np.ndarray, model: LearnedRewardModel, batch_size: int
    ) -> np.ndarray:
        """Unnormalised scores of the replies of records ``index`` (for normalisation)."""
        out = []
        with torch.inference_mode():
            for inputs in self.inputs:
                for at in range(0, len(index), batch_size):
                    outputs = self._run(self.scorer.select(inputs, index[at : at + batch_size]))
                    out.append(model.raw_from_outputs(outputs).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def train_reward_model(
    data: Sequence[PreferencePair] | Sequence[Rating],
    model: str = LINEAR,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    patience: int | None = None,
    validation_fraction: float = 0.1,
    max_length: int = 256,
    seed: int = 0,
    progress: bool = True,
    data_info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a reward model on preference pairs (Bradley-Terry) or ratings (cross-entropy).

    Args:
        data: all :class:`PreferencePair` or all :class:`Rating` records (one scale).
        model: ``"linear"`` (hashed n-grams), ``"minilm"`` (the bundled MiniLM encoder)
            or a local Hugging Face model folder / cached model name.
        epochs, batch_size, lr, weight_decay, patience: training settings; ``None`` takes
            the model kind's defaults (linear: 30 epochs, batch 64, lr 0.005; transformer:
            4 epochs, batch 16, lr 5e-5).
        validation_fraction: share held out for early stopping and the reported metrics.
        max_length: tokens per input for transformer models.
        seed: seeds initialisation, the split and the minibatch order.
        progress: show a progress bar.
        data_info: recorded in the checkpoint (``path``, ``sha256``, ...).

    Returns:
        A :class:`TrainResult` with the model of the best held-out epoch.
    """
    from tqdm.auto import tqdm

    objective, scale = _check_records(data)
    torch.manual_seed(seed)
    started = time.perf_counter()
    if objective == "preference":
        num_outputs = 1
    else:
        assert scale is not None  # (ratings have one: _check_records)
        num_outputs = len(range(*RATING_SCALES[scale])) + 1
    scorer = build_scorer(model, num_outputs, max_length)
    settings = {**scorer.default_training()}
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "patience": patience,
    }
    settings.update({k: v for k, v in given.items() if v is not None})
    if settings["epochs"] < 1 or settings["batch_size"] < 1 or not settings["lr"] > 0:
        raise ValueError(f"epochs and batch size must be >= 1 and lr > 0; got {settings}")
    train_idx, val_idx = split_groups(data, validation_fraction, seed)

    task = _Task(scorer, data, objective, scale)
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])
    steps_per_epoch = math.ceil(len(train_idx) / settings["batch_size"])
    total_steps = steps_per_epoch * settings["epochs"]
    warmup = max(1, int(0.06 * total_steps)) if scorer.kind == "transformer" else 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        # Transformers fine-tune best with a short warm-up then a linear decay.
        lambda step: (
            min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / total_steps) if warmup else 1.0
        ),
    )
    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    bar = tqdm(
        total=total_steps,
        desc=f"train {scorer.kind} RM",
        unit="batch",
        disable=not progress,
        leave=False,
    )
    for epoch in range(1, settings["epochs"] + 1):
        scorer.train()
        order = rng.permutation(train_idx)
        running = 0.0
        for step, at in enumerate(range(0, len(order), settings["batch_size"]), start=1):
            loss, _ = task.loss(order[at : at + settings["batch_size"]])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            running += loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{running / step:.3f}")
        scorer.eval()
        record = {"epoch": epoch, "train_loss": running / max(1, steps_per_epoch)}
        held = task.evaluate(val_idx, 4 * settings["batch_size"])
        record.update({f"val_{k}": v for k, v in held.items()})
        history.append(record)
        watched = held.get("loss", record["train_loss"])
        if best is None or watched < best[0]:
            best = (watched, epoch, copy.deepcopy(scorer.state_dict()))
        elif epoch - best[1] >= settings["patience"]:
            break
    bar.close()
    assert best is not None
    scorer.load_state_dict(best[2])
    scorer.eval()

    values = task.values if objective == "rating" else None
    reward_model = LearnedRewardModel(scorer, objective, rating_values=values)
    raw = task.raw_scores(train_idx, reward_model, 4 * settings["batch_size"])
    spread = float(raw.std()) if raw.size > 1 else 0.0
    reward_model.offset = float(raw.mean()) if raw.size else 0.0
    reward_model.scale = spread if spread > 1e-6 else 1.0
    best_record = history[best[1] - 1]
    metrics = {
        "objective": objective,
        "rating_scale": scale,
        "records": len(data),
        "train_records": len(train_idx),
        "validation_records": len(val_idx),
        "best_epoch": best[1],
        "epochs_run": len(history),
        "seconds": round(time.perf_counter() - started, 2),
        **{k: v for k, v in best_record.items() if k.startswith("val_")},
    }
    reward_model.info = {
        "training": {
            "model": model,
            "settings": {
                **settings,
                "validation_fraction": validation_fraction,
                "max_length": max_length,
                "seed": seed,
            },
            "data": dict(data_info or {}),
            "metrics": metrics,
            "history": history,
        },
        "rating_scale": scale,
    }
    return TrainResult(reward_model, metrics, history)
