"""The task tokenizer: byte-level BPE trained on the project's corpus.

Byte-level, so any text round-trips (nothing is out of vocabulary); a few thousand
merges learned from the expert transcripts, so common words of the domains are single
tokens. Saved in the Hugging Face format (``tokenizer.json`` plus its config), so
``transformers.AutoTokenizer`` loads it like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rlhf_envs.dialogue import EOT, PAD

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

DEFAULT_VOCAB_SIZE = 2048
MIN_VOCAB_SIZE = 300  # 256 byte symbols plus the special tokens and a few merges


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    Returns:
        a ``transformers.PreTrainedTokenizerFast`` whose ``eos_token`` is the
        end-of-turn token and ``pad_token`` the padding token.

    Raises:
        ValueError: ``vocab_size`` is below 300.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if int(vocab_size) < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 bytes + special tokens), "
            f"got {vocab_size}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=2,
        special_tokens=[PAD, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # The trainer takes batches of strings; special tokens inside the texts are kept
    # whole because they are added as special tokens first.
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOT,
        pad_token=PAD,
        bos_token=EOT,
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
