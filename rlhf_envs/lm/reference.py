"""A causal language model used as the reference policy of RLHF.

:class:`ReferenceLM` wraps a tokenizer and a ``transformers`` causal LM (the project's
small GPT-2, or any local Hugging Face causal LM folder) with what the envs, the fluency
reward and best-of-n need: the token ids of a dialogue prompt, next-token
log-probabilities with a key/value cache (one token per step costs one one-token
forward pass), the log-likelihood of a reply, and sampling.

Observation windows are left-padded: the newest token is always last, and position ids
count real tokens only, so a window scored in a batch matches the same tokens scored
one by one with the cache.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlhf_envs.dialogue import AGENT_PREFIX, format_turn

if TYPE_CHECKING:
    from transformers import DynamicCache
    from typing_extensions import TypeIs

LM_CONFIG_FILE = "rlhf_lm.json"  # what the build recorded (corpus, settings, timings)

_TURN_CACHE = 4096  # turns whose token ids a ReferenceLM keeps


class LMError(ValueError):
    """A reference LM folder cannot be loaded (what is missing and what is expected)."""


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading/saving progress bars and expected notices (a
    newly initialised head) for the duration; restores the user's settings after."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def cache_keyword_of(model: torch.nn.Module) -> str:
    """The forward argument that takes the key/value cache: ``cache`` in recent
    transformers, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    return (
        getattr(output, "cache", None)
        if getattr(output, "cache", None) is not None
        else output.past_key_values
    )


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only (0 for padding), for left-padded batches."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows as one left-padded batch (newest token last) and its attention mask."""
    width = max(1, max((len(r) for r in rows), default=0))
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            ids[i, width - len(row) :] = torch.as_tensor(list(row), dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


@torch.inference_mode()  # (scores only: no autograd bookkeeping at all)
def continuation_logprobs(
    model: torch.nn.Module,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    pad_id: int,
    temperature: float = 1.0,
) -> list[np.ndarray]:
    """Log-probability of each continuation token after its context under ``model`` (at
    ``temperature``), in one forward pass over the left-padded batch; each row gets the
    numbers it would get alone. Rows must fit the model's positions."""
    rows = [list(c) + list(k) for c, k in zip(contexts, continuations, strict=True)]
    if not rows:
        return []
    ids, mask = left_padded(rows, pad_id)
    width = ids.shape[1]
    # Only the last ``keep`` positions predict continuation tokens: the vocabulary
    # projection and the softmax skip the context (most of the window, and most of the
    # memory: a batch's full logits are batch x window x vocabulary floats).
    keep = min(width, max(len(k) for k in continuations) + 1)
    extra = {"logits_to_keep": keep} if _takes_logits_to_keep(model) else {}
    # (one forward, no generation: building a key-value cache would be wasted work,
    # about 5% of the forward of a small model)
    logits = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        use_cache=False,
        **extra,
    ).logits[:, -keep:]
    logp = torch.log_softmax(logits.float() / float(temperature), dim=-1)
    out = []
    for i, continuation in enumerate(continuations):
        n = len(continuation)
        if n == 0:
            out.append(np.zeros(0))
            continue
        targets = ids[i, width - n :]
        predicted = logp[i, keep - n - 1 : keep - 1]
        out.append(predicted.gather(-1, targets[:, None])[:, 0].numpy().astype(np.float64))
    return out


def _takes_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the model's forward computes logits for the last positions only when
    asked (``logits_to_keep``, most causal LMs of transformers 4.50 on)."""
    import inspect

    found = getattr(model, "_rlhf_logits_to_keep", None)
    if found is None:
        found = "logits_to_keep" in inspect.signature(model.forward).parameters
        setattr(model, "_rlhf_logits_to_keep", found)  # noqa: B010  (a Module attribute)
    return bool(found)


def _is_text_turn(turn: Sequence[int] | tuple[str, str]) -> TypeIs[tuple[str, str]]:
    """Whether a prompt turn is a ``(role, text)`` pair rather than token ids."""
    return isinstance(turn[0], str)


class ReferenceLM:
    """A tokenizer and a causal LM, frozen, in evaluation mode.

    Attributes:
        tokenizer: the ``transformers`` tokenizer.
        model: the ``transformers`` causal LM.
        eot_id: the end-of-turn token (the tokenizer's end-of-sequence token).
        pad_id: the padding token (end-of-turn when the tokenizer has none).
        vocab_size: size of the action space of the tokens interface.
        max_positions: the longest window the model reads.
        info: what the build recorded (``rlhf_lm.json``), empty for other models.

    Args:
        path: the folder (``config.json``, ``model.safetensors``, tokenizer files).
    """

    def __init__(self, path: str | Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(path).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise LMError(
                f"{folder} is not a language-model folder: it has no config.json; give the folder "
                "of a Hugging Face causal LM (config.json, model.safetensors, tokenizer files) or "
                "build the project's own with `rlhf-envs build-lm`"
            )
        self.path = folder
        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
                # safetensors only: a checkpoint is never unpickled.
                self.model = AutoModelForCausalLM.from_pretrained(
                    folder, local_files_only=True, use_safetensors=True
                )
        except (OSError, ValueError) as exc:
            raise LMError(f"cannot load the language model in {folder}: {exc}") from exc
        self.model.eval()
        self.model.requires_grad_(False)
        self.cache_keyword = cache_keyword_of(self.model)
        tok = self.tokenizer
        if tok.eos_token_id is None:
            raise LMError(
                f"the tokenizer in {folder} has no end-of-sequence token, which marks the end "
                "of a turn"
            )
        self.eot_id = int(tok.eos_token_id)
        self.eot = tok.eos_token
        self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.eot_id)
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        config = self.model.config  # (the attribute's name depends on the model type)
        self.max_positions = int(
            getattr(config, "n_positions", 0) or getattr(config, "max_position_embeddings", 1024)
        )
        info_file = folder / LM_CONFIG_FILE
        self.info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReferenceLM({str(self.path)!r}, vocab_size={self.vocab_size})"

    def __reduce__(self) -> tuple[Callable[[str], ReferenceLM], tuple[str]]:
        # Pickled by path (envs are pickled into worker processes): the receiving process
        # loads the folder once and shares it, instead of unpickling weights.
        return (load_reference_lm, (str(self.path),))

    # --- text <-> ids ---------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        assert isinstance(text, str)  # (one sequence of ids decodes to one string)
        return text

    def turn_ids(self, role: str, text: str) -> list[int]:
        """Token ids of one finished turn (with its end-of-turn token; a new list)."""
        # Cached: every later prompt of the conversation reads the turn again.
        cache: dict[tuple[str, str], tuple[int, ...]] = self.__dict__.setdefault("_turns", {})
        found = cache.get((role, text))
        if found is None:
            if len(cache) >= _TURN_CACHE:
                cache.clear()
            found = cache[(role, text)] = tuple(self.encode(format_turn(role, text, eot=self.eot)))
        return list(found)

    def prompt_ids(
        self, turns: Sequence[Sequence[int] | tuple[str, str]], budget: int
    ) -> list[int]:
        """The prompt for the agent's next reply in at most ``budget`` tokens: the latest
        turns (``(role, text)`` pairs, or their token ids from :meth:`turn_ids`), cut
        from the left, then ``"Agent:"``."""
        ids: list[int] = list(self.agent_prefix_ids)
        for turn in reversed(turns):
            if len(ids) >= budget:
                break
            ids[:0] = self.turn_ids(*turn) if _is_text_turn(turn) else turn
        return ids[-budget:]

    @property
    def agent_prefix_ids(self) -> list[int]:
        """The ids of ``"Agent:"``, after which a reply is generated."""
        ids = getattr(self, "_agent_prefix", None)
        if ids is None:
            ids = self._agent_prefix = self.encode(AGENT_PREFIX)
        return ids

    def reply_text(self, ids: Sequence[int]) -> str:
        """The reply that generated token ids spell (end-of-turn and padding dropped)."""
        return self.decode([i for i in ids if i not in (self.eot_id, self.pad_id)]).strip()

    # --- scoring ----------------------------------------------------------------------

    @torch.inference_mode()
    def logprobs_of(
        self, contexts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]]
    ) -> list[np.ndarray]:
        """Log-probability of each continuation token given its context, for a batch.

        Each (context, continuation) is left-truncated to ``max_positions`` tokens, keeping
        the whole continuation.
        """
        contexts_kept, kept = [], []
        for ctx, cont in zip(contexts, continuations, strict=False):
            cont = list(cont)[: self.max_positions - 1]
            contexts_kept.append(list(ctx)[-(self.max_positions - len(cont)) :])
            kept.append(cont)
        with self.lock:
            return continuation_logprobs(self.model, contexts_kept, kept, self.pad_id)

    def start(self, context: Sequence[int]) -> IncrementalScorer:
        """An incremental scorer positioned after ``context`` (see :class:`IncrementalScorer`)."""
        return IncrementalScorer(self, context)

    @torch.no_grad()
    def sample(
        self,
        context: Sequence[int],
        n: int,
        max_new_tokens: int,
        seed: int,
        temperature: float = 1.0,
    ) -> list[list[int]]:
        """``n`` replies sampled from the model after ``context`` (each up to and including
        its end-of-turn token, or ``max_new_tokens`` long), reproducible from ``seed``."""
        keep = max(1, self.max_positions - int(max_new_tokens))
        ctx = list(context)[-keep:]
        ids = torch.tensor([ctx] * int(n), dtype=torch.long)
        generator = torch.Generator().manual_seed(int(seed))
        done = torch.zeros(int(n), dtype=torch.bool)
        out: list[list[int]] = [[] for _ in range(int(n))]
        past = None
        step_input = ids
        with self.lock:
            for _ in range(int(max_new_tokens)):
                result = self.model(
                    input_ids=step_input, use_cache=True, **{self.cache_keyword: past}
                )
                past = cache_of(result)
                logits = result.logits[:, -1, :].float() / max(float(temperature), 1e-6)
                if self.pad_id != self.eot_id:
                    logits[:, self.pad_id] = -torch.inf
                probs = torch.softmax(logits, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)[:, 0]
                for i in range(int(n)):
                    if not done[i]:
                        out[i].append(int(token[i]))
                done |= token == self.eot_id
                if bool(done.all()):
                    break
                step_input = token[:, None]
        return out


class IncrementalScorer:
    """Next-token log-probabilities as a reply is written one token at a time.

    Tokens are fed lazily: :meth:`advance` only records the token, and the forward pass
    (one token through the model with the key/value cache, or the whole context the
    first time) runs when :meth:`logprob` needs it. That lets a vector env run the
    pending forwards of all its sub-envs as one batch (:func:`feed_batch`). Exact: the
    same numbers as scoring the whole window again (to float rounding).
    """

    def __init__(self, lm: ReferenceLM, context: Sequence[int]):
        self.lm = lm
        self.length = 0  # tokens in the key/value cache
        self._kv: list[tuple[torch.Tensor, torch.Tensor]] | None = (
            None  # per layer, (1, heads, length, dim)
        )
        self._pending: list[int] = list(context) or [lm.eot_id]
        self.logprobs: np.ndarray | None = None
        self._check()

    def _check(self) -> None:
        if self.length + len(self._pending) > self.lm.max_positions:
            raise ValueError(
                f"the window would hold {self.length + len(self._pending)} tokens; the model "
                f"reads at most {self.lm.max_positions}"
            )

    @property
    def pending(self) -> bool:
        """Whether tokens wait to be fed (the next :meth:`logprob` runs a forward pass)."""
        return bool(self._pending)

    def logprob(self, token: int) -> float:
        """log p(token | everything fed so far)."""
        if self._pending:
            feed_batch([self])
        assert self.logprobs is not None  # (set by the feed)
        return float(self.logprobs[int(token)])

    def advance(self, token: int) -> None:
        self._pending.append(int(token))
        self._check()


def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (keys, values) of a transformers cache (recent ``Cache`` objects or the
    legacy tuple of tuples)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "to_legacy_cache"):
        return [tuple(kv) for kv in cache.to_legacy_cache()]
    return [tuple(kv) for kv in cache]


def _make_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    from transformers import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):
        return DynamicCache.from_legacy_cache(tuple(layers))
    return DynamicCache(ddp_cache_data=layers)


@torch.no_grad()
def feed_batch(scorers: Sequence[IncrementalScorer]) -> None:
    """Run the pending tokens of several scorers of one LM in a single forward pass.

    Each row is laid out as ``[pad][cached tokens][pad][new tokens]``: cached keys and
    values are left-padded to the longest cache, new tokens to the longest feed, and the
    attention mask and position ids skip the padding, so every row gets the numbers it
    would get alone.
    """
    scorers = [s for s in scorers if s._pending]
    if not scorers:
        return
    lm = scorers[0].lm
    if any(s.lm is not lm for s in scorers):
        raise ValueError("feed_batch() needs scorers of one reference LM")
    width = max(s.length for s in scorers) + max(len(s._pending) for s in scorers)
    if width > lm.max_positions and len(scorers) > 1:
        # Wider than the model's positions (a long cache beside a new context): some
        # models' attention masks cannot take that, so such groups go apart.
        fresh = [s for s in scorers if s.length == 0]
        going = [s for s in scorers if s.length > 0]
        groups = [fresh, going] if fresh and going else [[s] for s in scorers]
        for group in groups:
            feed_batch(group)
        return
    _feed_rows(lm, scorers)


def _feed_rows(lm: ReferenceLM, scorers: Sequence[IncrementalScorer]) -> None:
    n = len(scorers)
    past = max(s.length for s in scorers)
    new = max(len(s._pending) for s in scorers)
    ids = torch.full((n, new), lm.pad_id, dtype=torch.long)
    mask = torch.zeros((n, past + new), dtype=torch.long)
    positions = torch.zeros((n, new), dtype=torch.long)
    for i, s in enumerate(scorers):
        k = len(s._pending)
        ids[i, new - k :] = torch.tensor(s._pending, dtype=torch.long)
        mask[i, past - s.length : past] = 1
        mask[i, past + new - k :] = 1
        positions[i, new - k :] = torch.arange(s.length, s.length + k)
    cache = None
    if past:
        layers = []
        template = next(s._kv for s in scorers if s._kv is not None)
        for layer, (keys, _) in enumerate(template):
            shape = (n, keys.shape[1], past, keys.shape[3])
            k_all, v_all = keys.new_zeros(shape), keys.new_zeros(shape)
            for i, s in enumerate(scorers):
                if s.length:
                    assert s._kv is not None  # (a scorer with a cache length has its cache)
                    k_all[i, :, past - s.length :] = s._kv[layer][0][0]
                    v_all[i, :, past - s.length :] = s._kv[layer][1][0]
            layers.append((k_all, v_all))
        cache = _make_cache(layers)
    with lm.lock:
        result = lm.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{lm.cache_keyword: cache},
        )
    out_layers = _cache_layers(cache_of(result))
    logprobs = torch.log_softmax(result.logits[:, -1].float(), dim=-1).numpy()
    for i, s in enumerate(scorers):
        k = len(s._pending)
        keep = [
            (
                torch.cat(
                    (
                        keys[i : i + 1, :, past - s.length : past],
                        keys[i : i + 1, :, past + new - k :],
                    ),
                    dim=2,
                ),
                torch.cat(
                    (
                        values[i : i + 1, :, past - s.length : past],
                        values[i : i + 1, :, past + new - k :],
                    ),
                    dim=2,
                ),
            )
            for keys, values in out_layers
        ]
        s._kv, s.length, s._pending, s.logprobs = keep, s.length + k, [], logprobs[i]


_CACHE: dict[str, ReferenceLM] = {}
_CACHE_LOCK = threading.Lock()


def load_reference_lm(path: str | Path) -> ReferenceLM:
    """The :class:`ReferenceLM` in ``path``, loaded once per process and shared."""
    key = str(Path(path).expanduser().resolve())
    with _CACHE_LOCK:
        lm = _CACHE.get(key)
        if lm is None:
            lm = _CACHE[key] = ReferenceLM(key)
        return lm
