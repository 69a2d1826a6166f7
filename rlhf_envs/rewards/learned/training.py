"""Training reward models on feedback: Bradley-Terry on pairs, cross-entropy on ratings.

Pairs train a scalar score ``r(context, reply)`` with the Bradley-Terry loss
``-log sigmoid(r(chosen) - r(rejected))``. When some pairs are ties, Davidson's (1970)
extension of Bradley-Terry models them with one more parameter, the tie strength ``nu``:
``P(a > b) = 1 / (1 + e^-d + nu e^-d/2)`` and ``P(tie) = nu e^-d/2 / (1 + e^-d + nu e^-d/2)``
with ``d = r_a - r_b``; at ``nu = 0`` it is Bradley-Terry. Ratings alone train a
classifier over the rating scale with cross-entropy, which scores a reply by its expected
rating. Pairs and ratings together train one scalar score with a joint loss: the pairs'
(Davidson) Bradley-Terry likelihood plus an ordinal (cumulative-logit) likelihood of each
rating, ``P(label <= k) = sigmoid(theta_k - r)`` with learned thresholds per scale, summed
over every record. Part of the data
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
from rlhf_envs.rewards.learned.ensemble import EnsembleRewardModel
from rlhf_envs.rewards.learned.linear import LinearScorer
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.learned.transformer import TransformerScorer

LINEAR = "linear"


def bradley_terry_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean of ``-log sigmoid(chosen - rejected)``: the negative log-likelihood of the
    observed preferences under the Bradley-Terry model ``P(a > b) = sigmoid(r_a - r_b)``.

    With ``label_smoothing`` ``eps``, each label counts as right with probability
    ``1 - eps`` (``-(1 - eps) log sigmoid(d) - eps log sigmoid(-d)``): for noisy human
    labels, where no margin should grow without bound."""
    d = chosen - rejected
    if label_smoothing:
        return -(
            (1 - label_smoothing) * F.logsigmoid(d) + label_smoothing * F.logsigmoid(-d)
        ).mean()
    return -F.logsigmoid(d).mean()


def davidson_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, tie: torch.Tensor, log_nu: torch.Tensor
) -> torch.Tensor:
    """Mean negative log-likelihood of pairs under Davidson's Bradley-Terry model with ties.

    Args:
        chosen, rejected: scores of the two replies (for a tie, either order).
        tie: bool per pair, whether it is a tie.
        log_nu: log of the tie strength ``nu``; ``-inf`` gives :func:`bradley_terry_loss`.
    """
    d = chosen - rejected
    tie_term = log_nu - d / 2
    log_norm = torch.logsumexp(torch.stack([torch.zeros_like(d), -d, tie_term]), dim=0)
    return (log_norm - torch.where(tie, tie_term, torch.zeros_like(d))).mean()


def ordinal_nll(score: torch.Tensor, thresholds: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per-record negative log-likelihood of ratings under a cumulative-logit model.

    ``P(label <= k) = sigmoid(thresholds[k] - score)`` for the ``K - 1`` increasing
    thresholds of a ``K``-level scale; ``label`` counts levels from 0. A thumbs rating
    (two levels) is then logistic regression of "up" on ``score - thresholds[0]``.
    """
    below = torch.sigmoid(thresholds[None, :] - score[:, None])  # (N, K-1): P(label <= k)
    ones = torch.ones_like(score)[:, None]
    cdf = torch.cat([torch.zeros_like(ones), below, ones], dim=1)
    p = cdf.gather(1, (label + 1)[:, None]) - cdf.gather(1, label[:, None])
    return -torch.log(p.clamp_min(1e-12))[:, 0]


def build_scorer(
    model: str, num_outputs: int = 1, max_length: int = 256, **transformer: Any
) -> Scorer:
    """A fresh scorer: ``"linear"``, ``"minilm"`` or a Hugging Face model folder / cached name.

    ``transformer`` settings (``pooling``, ``context_tokens``, ``train_embeddings``) go to
    :meth:`TransformerScorer.from_pretrained`; a linear model takes none."""
    if not isinstance(model, str) or not model:
        raise ValueError(
            f"model must be 'linear', 'minilm' or a Hugging Face model path; got {model!r}"
        )
    if model == LINEAR:
        return LinearScorer(num_outputs)
    return TransformerScorer.from_pretrained(model, num_outputs, max_length, **transformer)


@dataclass
class TrainResult:
    """What :func:`train_reward_model` returns.

    Attributes:
        model: the trained reward model (best held-out epoch), or the ensemble of them.
        metrics: final held-out metrics and training facts (seconds, epochs, sizes).
        history: one dict of metrics per epoch.
    """

    model: LearnedRewardModel | EnsembleRewardModel
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
    """The objective for ``data``: ``"preference"``, ``"rating"`` (with its scale) or
    ``"joint"`` (pairs and ratings, or ratings of several scales)."""
    if len(data) == 0:
        raise ValueError("no training data: give at least a few preference pairs or ratings")
    kinds = {type(r) for r in data}
    if not kinds <= {PreferencePair, Rating}:
        names = sorted(k.__name__ for k in kinds - {PreferencePair, Rating})
        raise ValueError(f"training data must be PreferencePair and/or Rating records; got {names}")
    if kinds == {PreferencePair}:
        if all(r.tie for r in data):
            raise ValueError(
                "every pair is a tie; ties say how close two replies are, not which is better, "
                "so training needs some pairs with a preferred reply"
            )
        return "preference", None
    scales = {r.scale for r in data if isinstance(r, Rating)}
    if kinds == {Rating} and len(scales) == 1:
        return "rating", scales.pop()
    return "joint", None


class _Task:
    """The objective-specific parts of training: inputs, loss and held-out metrics.

    Indices given to :meth:`loss` are positions in the training records; pairs and
    ratings among them are encoded separately (``_local`` maps a record to its row).
    Extra parameters of the likelihood (the tie strength, the rating thresholds) live
    here, outside the scorer, and are trained with it.
    """

    def __init__(
        self,
        scorer: Scorer,
        records: Sequence[Any],
        objective: str,
        scale: str | None,
        label_smoothing: float = 0.0,
    ):
        self.scorer = scorer
        self.objective = objective
        self.label_smoothing = label_smoothing
        self.is_pair = np.array([isinstance(r, PreferencePair) for r in records], dtype=bool)
        self._local = np.zeros(len(records), dtype=np.int64)
        self._local[self.is_pair] = np.arange(int(self.is_pair.sum()))
        self._local[~self.is_pair] = np.arange(int((~self.is_pair).sum()))
        pairs = [r for r in records if isinstance(r, PreferencePair)]
        ratings = [r for r in records if isinstance(r, Rating)]
        self.inputs: tuple[Any, ...] = ()  # per reply column: the scorer's encoded inputs
        self.extra: dict[str, torch.Tensor] = {}
        if pairs:
            prompts = [r.prompt for r in pairs]
            self.inputs += (
                scorer.encode(prompts, [r.chosen for r in pairs]),
                scorer.encode(prompts, [r.rejected for r in pairs]),
            )
            self.ties = torch.tensor([r.tie for r in pairs], dtype=torch.bool)
            if bool(self.ties.any()):
                # nu = e^-1 ~ 0.37 to start: ties plausible, far from certain.
                self.extra["log_tie_strength"] = torch.tensor(-1.0, requires_grad=True)
        if ratings:
            self.inputs += (
                scorer.encode([r.prompt for r in ratings], [r.completion for r in ratings]),
            )
            self.scales = sorted({r.scale for r in ratings})
            self.scale_of = np.array([self.scales.index(r.scale) for r in ratings])
            self.targets = torch.tensor(
                [int(r.label) - RATING_SCALES[r.scale][0] for r in ratings], dtype=torch.long
            )
        if objective == "rating":
            assert scale is not None  # (ratings have one: _check_records)
            low, high = RATING_SCALES[scale]
            self.values = [float(v) for v in range(low, high + 1)]
        elif ratings:
            for name in self.scales:
                low, high = RATING_SCALES[name]
                # Thresholds as a first one plus positive gaps, so they stay in order.
                self.extra[f"thresholds_{name}"] = torch.tensor(
                    [0.0] + [0.0] * (high - low - 1), requires_grad=True
                )

    def _run(self, inputs: Any) -> torch.Tensor:
        return self.scorer(*inputs) if isinstance(inputs, tuple) else self.scorer(inputs)

    def thresholds(self, scale: str) -> torch.Tensor:
        raw = self.extra[f"thresholds_{scale}"]
        return torch.cat([raw[:1], raw[:1] + torch.cumsum(F.softplus(raw[1:]) + 0.1, 0)])

    def loss(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss over the records ``index`` and a "correct" indicator per strict pair
        (or, for ratings alone, per rating)."""
        pair_rows = self._local[index[self.is_pair[index]]]
        rating_rows = self._local[index[~self.is_pair[index]]]
        nll = []
        correct = []
        if len(pair_rows):
            chosen = self._run(self.scorer.select(self.inputs[0], pair_rows))[:, 0]
            rejected = self._run(self.scorer.select(self.inputs[1], pair_rows))[:, 0]
            tie = self.ties[torch.as_tensor(pair_rows)]
            diff = chosen - rejected
            if "log_tie_strength" in self.extra:
                log_nu = self.extra["log_tie_strength"]
                nll.append(davidson_loss(chosen, rejected, tie, log_nu) * len(pair_rows))
            else:
                nll.append(
                    bradley_terry_loss(chosen, rejected, self.label_smoothing) * len(pair_rows)
                )
            strict = diff[~tie]
            correct.append((strict > 0).float() + 0.5 * (strict == 0).float())  # tie: coin flip
        if len(rating_rows):
            outputs = self._run(self.scorer.select(self.inputs[-1], rating_rows))
            target = self.targets[torch.as_tensor(rating_rows)]
            if self.objective == "rating":
                nll.append(F.cross_entropy(outputs, target) * len(rating_rows))
                correct.append((outputs.argmax(-1) == target).float())
            else:
                which = self.scale_of[rating_rows]
                for k, name in enumerate(self.scales):
                    mine = torch.as_tensor(np.flatnonzero(which == k))
                    if len(mine):
                        nll.append(
                            ordinal_nll(outputs[mine, 0], self.thresholds(name), target[mine]).sum()
                        )
        total = torch.stack(nll).sum() / len(index)
        return total, torch.cat(correct) if correct else torch.zeros(0)

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
        right = torch.cat(correct)
        out = {"loss": total / len(index)}
        if len(right):
            out["accuracy"] = float(right.mean())
        return out

    def raw_scores(
        self, index: np.ndarray, model: LearnedRewardModel, batch_size: int
    ) -> np.ndarray:
        """Unnormalised scores of the replies of records ``index`` (for normalisation)."""
        out = []
        pair_rows = self._local[index[self.is_pair[index]]]
        rating_rows = self._local[index[~self.is_pair[index]]]
        columns = []
        if self.is_pair.any():
            columns += [(self.inputs[0], pair_rows), (self.inputs[1], pair_rows)]
        if (~self.is_pair).any():
            columns.append((self.inputs[-1], rating_rows))
        with torch.inference_mode():
            for inputs, rows in columns:
                for at in range(0, len(rows), batch_size):
                    outputs = self._run(self.scorer.select(inputs, rows[at : at + batch_size]))
                    out.append(model.raw_from_outputs(outputs).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def fitted(self) -> dict[str, Any]:
        """The likelihood's own fitted parameters, for the checkpoint's record."""
        out: dict[str, Any] = {}
        with torch.no_grad():
            if "log_tie_strength" in self.extra:
                out["tie_strength"] = round(float(self.extra["log_tie_strength"].exp()), 6)
            for name in getattr(self, "scales", []) if self.objective == "joint" else []:
                out[f"rating_thresholds_{name}"] = [
                    round(float(t), 6) for t in self.thresholds(name)
                ]
        return out


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
    pooling: str = "cls",
    context_tokens: int | None = None,
    train_embeddings: bool = False,
    warmup: float = 0.06,
    label_smoothing: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    data_info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a reward model on preference pairs (Bradley-Terry) or ratings (cross-entropy).

    Args:
        data: :class:`PreferencePair` records (ties included: Davidson's model) and/or
            :class:`Rating` records. Ratings of one scale alone train a classifier; with
            pairs, or in several scales, they train the same scalar score as the pairs
            (the joint loss, see the module docstring).
        model: ``"linear"`` (hashed n-grams), ``"minilm"`` (the bundled MiniLM encoder)
            or a local Hugging Face model folder / cached model name; or several joined by
            ``+`` (``"minilm+linear"``) for an :class:`EnsembleRewardModel` of them, each
            trained on the same data. In an ensemble the optimisation and transformer
            settings below go to its transformer members; linear members train with their
            own defaults.
        epochs, batch_size, lr, weight_decay, patience: training settings; ``None`` takes
            the model kind's defaults (linear: 30 epochs, batch 64, lr 0.005; transformer:
            4 epochs, batch 16, lr 5e-5).
        validation_fraction: share held out for early stopping and the reported metrics.
        max_length: tokens per input for transformer models.
        pooling, context_tokens, train_embeddings: how a transformer model reads its
            input (see :class:`TransformerScorer`): ``"cls"`` or ``"mean"`` pooling, at most
            ``context_tokens`` tokens of context (``None``: as many as fit, 0: none), and
            whether the word embeddings are fine-tuned too.
        warmup: share of a transformer's training steps with a rising learning rate
            (then it decays linearly to 0).
        label_smoothing: ``eps`` in ``[0, 0.5)`` for the Bradley-Terry loss of strict pairs
            (see :func:`bradley_terry_loss`); data with ties use Davidson's likelihood
            unsmoothed.
        seed: seeds initialisation, the split and the minibatch order.
        progress: show a progress bar.
        data_info: recorded in the checkpoint (``path``, ``sha256``, ...).

    Returns:
        A :class:`TrainResult` with the model of the best held-out epoch. Its metrics
        count the records of each kind (``pairs``, ``ties``, ``ratings``); held-out
        ``val_accuracy`` is over strict pairs (over ratings when trained on ratings alone).
    """
    from tqdm.auto import tqdm

    if isinstance(model, str) and "+" in model:
        return _train_ensemble(
            data,
            model,
            dict(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                patience=patience,
                max_length=max_length,
                pooling=pooling,
                context_tokens=context_tokens,
                train_embeddings=train_embeddings,
                warmup=warmup,
            ),
            dict(
                validation_fraction=validation_fraction,
                label_smoothing=label_smoothing,
                seed=seed,
                progress=progress,
                data_info=data_info,
            ),
        )
    objective, scale = _check_records(data)
    torch.manual_seed(seed)
    started = time.perf_counter()
    if objective == "rating":
        assert scale is not None  # (ratings have one: _check_records)
        num_outputs = len(range(*RATING_SCALES[scale])) + 1
    else:
        num_outputs = 1
    if not 0.0 <= label_smoothing < 0.5 or not 0.0 <= warmup < 1.0:
        raise ValueError(
            f"label_smoothing must be in [0, 0.5) and warmup in [0, 1); got {label_smoothing}, "
            f"{warmup}"
        )
    transformer: dict[str, Any] = {
        "pooling": pooling,
        "context_tokens": context_tokens,
        "train_embeddings": train_embeddings,
    }
    if model == LINEAR and (pooling, context_tokens, train_embeddings) != ("cls", None, False):
        raise ValueError(
            "pooling, context_tokens and train_embeddings are settings of transformer models; "
            "the linear model takes none of them"
        )
    scorer = build_scorer(
        model, num_outputs, max_length, **({} if model == LINEAR else transformer)
    )
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

    task = _Task(scorer, data, objective, scale, label_smoothing)
    params = [p for p in scorer.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": params}]
    if task.extra:
        # A few scalars of the likelihood: a fixed, larger step and no decay toward 0.
        groups.append({"params": list(task.extra.values()), "lr": 0.01, "weight_decay": 0.0})
    optimiser = torch.optim.AdamW(groups, lr=settings["lr"], weight_decay=settings["weight_decay"])
    steps_per_epoch = math.ceil(len(train_idx) / settings["batch_size"])
    total_steps = steps_per_epoch * settings["epochs"]
    rising = max(1, int(warmup * total_steps)) if scorer.kind == "transformer" else 0
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        # Transformers fine-tune best with a short warm-up then a linear decay.
        lambda step: (
            min(1.0, (step + 1) / rising) * max(0.0, 1 - step / total_steps) if rising else 1.0
        ),
    )
    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    fitted: dict[str, Any] = {}
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
            fitted = task.fitted()
        elif epoch - best[1] >= settings["patience"]:
            break
    bar.close()
    assert best is not None
    scorer.load_state_dict(best[2])
    scorer.eval()

    values = task.values if objective == "rating" else None
    # A joint model is a scalar score, scored as a preference model is.
    reward_model = LearnedRewardModel(
        scorer, "rating" if objective == "rating" else "preference", rating_values=values
    )
    raw = task.raw_scores(train_idx, reward_model, 4 * settings["batch_size"])
    spread = float(raw.std()) if raw.size > 1 else 0.0
    reward_model.offset = float(raw.mean()) if raw.size else 0.0
    reward_model.scale = spread if spread > 1e-6 else 1.0
    best_record = history[best[1] - 1]
    metrics = {
        "objective": objective,
        "rating_scale": scale,
        "records": len(data),
        "pairs": int(sum(isinstance(r, PreferencePair) and not r.tie for r in data)),
        "ties": int(sum(isinstance(r, PreferencePair) and r.tie for r in data)),
        "ratings": int(sum(isinstance(r, Rating) for r in data)),
        **fitted,
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
                **(transformer if model != LINEAR else {}),
                "warmup": warmup,
                "label_smoothing": label_smoothing,
                "seed": seed,
            },
            "data": dict(data_info or {}),
            "metrics": metrics,
            "history": history,
        },
        "rating_scale": scale,
    }
    return TrainResult(reward_model, metrics, history)


def _train_ensemble(
    data: Sequence[Any], model: str, transformer: dict[str, Any], shared: dict[str, Any]
) -> TrainResult:
    """Train each ``+``-joined member on ``data`` and return their ensemble."""
    names = model.split("+")
    if len(names) < 2 or any(not n for n in names):
        raise ValueError(f"an ensemble is two or more models joined by '+', got {model!r}")
    started = time.perf_counter()
    results = [
        train_reward_model(data, name, **shared, **({} if name == LINEAR else transformer))
        for name in names
    ]
    metrics = {
        "objective": results[0].metrics["objective"],
        "records": len(data),
        "seconds": round(time.perf_counter() - started, 2),
        "members": [r.metrics for r in results],
    }
    members = [r.model for r in results if isinstance(r.model, LearnedRewardModel)]
    if len(members) < len(results) or members[0].objective != "preference":
        raise ValueError(
            "an ensemble averages the scalar scores of single models: join model kinds with "
            "'+' once, and train it on pairs (with or without ratings), not on ratings of one "
            "scale alone"
        )
    info = {
        "training": {"model": model, "metrics": metrics, "data": dict(shared["data_info"] or {})}
    }
    return TrainResult(EnsembleRewardModel(members, info=info), metrics)
