"""The task tokenizer and the small reference language model.

RLHF starts from a language model fine-tuned on demonstrations. This package builds one
from the project's own corpus (expert transcripts of its domains): a byte-level BPE
tokenizer and a small GPT-2, trained in minutes on a CPU and cached
(:func:`~rlhf_envs.lm.build.default_lm_path`), and loads it or any local Hugging Face
causal LM as a :class:`~rlhf_envs.lm.reference.ReferenceLM`. The tokens interface acts
in its vocabulary, KL shaping and the fluency reward use its log-probabilities, and
best-of-n samples from it.
"""

from __future__ import annotations

from rlhf_envs.dialogue import EOT, PAD, format_turn, prompt_text
from rlhf_envs.dialogue import ROLES as ROLE_LABELS  # the name this package exported before
from rlhf_envs.lm.reference import ReferenceLM, load_reference_lm

__all__ = [
    "EOT",
    "PAD",
    "ROLE_LABELS",
    "ReferenceLM",
    "format_turn",
    "load_reference_lm",
    "prompt_text",
]
