"""The task tokenizer: byte-level BPE that round-trips any text, keeps the end-of-turn
marker one token, and trains deterministically."""

from __future__ import annotations

import pytest

from rlhf_envs.dialogue import EOT, format_turn
from rlhf_envs.lm.tokenizer import train_tokenizer
from rlhf_envs.simulation.corpus import expert_transcripts


def _turn_texts(episodes: int, seed: int) -> list[str]:
    return [
        format_turn(r, t, eot="")
        for d in expert_transcripts(("customer_service",), episodes, seed)
        for r, t in d
    ]


def test_tokenizer_round_trips_any_text():
    tokenizer = train_tokenizer(_turn_texts(40, 0), vocab_size=500)
    assert len(tokenizer) == 500
    texts = [
        "Agent: Your refund of $94.00 for order 8716638489 is on its way.",
        "User: naïve café — “quotes”, emoji 🙂, tabs\tand\nnewlines, 20°F",
        "",
        "zzqx ###  multiple   spaces ",
    ]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    # The end-of-turn marker is one token, never split into merges.
    ids = tokenizer.encode(f"User: hi{EOT}Agent:", add_special_tokens=False)
    assert ids.count(tokenizer.eos_token_id) == 1
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


def test_tokenizer_training_is_deterministic():
    a = train_tokenizer(_turn_texts(30, 1), vocab_size=400)
    b = train_tokenizer(_turn_texts(30, 1), vocab_size=400)
    assert a.get_vocab() == b.get_vocab()
    with pytest.raises(ValueError, match="vocab_size must be at least 300"):
        train_tokenizer(["a b"], vocab_size=10)
