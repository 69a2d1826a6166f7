"""The task tokenizer and the reference LM: round trips, a deterministic build, the
LM far better than a unigram model, exact incremental scoring, clear errors."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from rlhf_envs.dialogue import EOT, format_turn, transcript_text
from rlhf_envs.lm.build import LM_ENV_VAR, LMBuildConfig, build_reference_lm, default_lm_path
from rlhf_envs.lm.reference import LMError, ReferenceLM, load_reference_lm
from rlhf_envs.lm.sft import SFTConfig, perplexity, unigram_perplexity
from rlhf_envs.lm.tokenizer import train_tokenizer
from rlhf_envs.simulation.corpus import expert_transcripts

TINY_BUILD = LMBuildConfig(
    domains=("tiny",),
    episodes=40,
    held_out=5,
    vocab_size=400,
    sft=SFTConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64, steps=3, batch_size=4),
)


@pytest.fixture(scope="module")
def lm() -> ReferenceLM:
    """The session's test LM (built by conftest.py from the project's pipeline)."""
    return load_reference_lm(os.environ[LM_ENV_VAR])


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


def _digest(folder) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def test_build_is_deterministic_and_saved_without_pickles(tmp_path):
    info = build_reference_lm(tmp_path / "a", TINY_BUILD, progress=False)
    build_reference_lm(tmp_path / "b", TINY_BUILD, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "rlhf_lm.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert info["vocab_size"] == 400 and info["build_seconds"] >= 0 and info["parameters"] > 0
    # Rebuilding replaces the folder; a folder that is not a model is never overwritten.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a reference-LM folder"):
        build_reference_lm(tmp_path / "other", TINY_BUILD, progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_built_lm_is_far_better_than_a_unigram_model(lm):
    """Held-out expert transcripts (a seed the build never saw): the LM's perplexity is
    a small fraction of a unigram model's fitted on the same training corpus."""
    tok = lm.tokenizer
    config = lm.info["config"]

    def ids(dialogues):
        return [tok.encode(transcript_text(d, EOT), add_special_tokens=False) for d in dialogues]

    train = ids(expert_transcripts(tuple(config["domains"]), config["episodes"], config["seed"]))
    test = ids(expert_transcripts(("customer_service",), 40, seed=777))
    lm_ppl = perplexity(lm.model, test, lm.max_positions)
    unigram = unigram_perplexity(train, test, lm.vocab_size)
    assert lm_ppl < unigram / 10, (lm_ppl, unigram)


def test_incremental_scoring_matches_scoring_the_whole_window(lm):
    context = (
        lm.turn_ids("user", "I want to return my jeans, order 1234567890.") + lm.agent_prefix_ids
    )
    reply = lm.encode(" Sure, could you tell me your full name?") + [lm.eot_id]
    batch = lm.logprobs_of([context, context[3:]], [reply, reply[:4]])
    scorer = lm.start(context)
    steps = []
    for token in reply:
        steps.append(scorer.logprob(token))
        scorer.advance(token)
    np.testing.assert_allclose(steps, batch[0], atol=1e-4)
    assert len(batch[1]) == 4 and np.all(batch[1] < 0)


def _alone(lm, context):
    scorer = lm.start(context)
    scorer.logprob(0)  # runs its forward pass
    return scorer


def test_batched_feeding_matches_each_scorer_alone(lm):
    """One forward for scorers at different cache lengths, some starting a new context,
    gives each the log-probabilities it gets alone."""
    from rlhf_envs.lm.reference import feed_batch

    contexts = [
        lm.turn_ids("user", "I want to return my jeans, order 1234567890.") + lm.agent_prefix_ids,
        lm.turn_ids("user", "Hi.") + lm.agent_prefix_ids,
        lm.turn_ids("user", "My password does not work and I am locked out of my account.")
        + lm.agent_prefix_ids,
    ]
    reply = lm.encode(" Sure, could you tell me your full name please?") + [lm.eot_id]
    alone = [lm.start(c) for c in contexts]
    together = [lm.start(c) for c in contexts]
    for t, token in enumerate(reply):
        active = [i for i in range(3) if t >= i]  # later rows join later: caches differ in length
        if t == 5:  # row 0 restarts on a new context while the others go on
            alone[0], together[0] = lm.start(contexts[1][:3]), lm.start(contexts[1][:3])
        feed_batch([together[i] for i in active])
        for i in active:
            assert not together[i].pending
            np.testing.assert_allclose(
                together[i].logprob(token), alone[i].logprob(token), atol=1e-4
            )
            np.testing.assert_allclose(together[i].logprobs, alone[i].logprobs, atol=1e-4)
            alone[i].advance(token)
            together[i].advance(token)
    assert [s.length for s in together] == [s.length for s in alone]
    # A long cache beside a new context is wider than the model's positions: fed apart.
    long_context = (contexts[2] * 8)[: lm.max_positions - 8]
    wide = [lm.start(long_context), lm.start(contexts[0] * 2)]
    feed_batch([wide[0]])
    wide[0].advance(reply[0])
    assert wide[0].length + 1 + len(contexts[0] * 2) > lm.max_positions
    feed_batch(wide)
    np.testing.assert_allclose(wide[1].logprobs, _alone(lm, contexts[0] * 2).logprobs, atol=1e-4)
    np.testing.assert_allclose(
        wide[0].logprobs, _alone(lm, long_context + [reply[0]]).logprobs, atol=1e-4
    )


def test_sampling_is_reproducible_and_ends_at_end_of_turn(lm):
    context = lm.turn_ids("user", "Hi, I need help with my order.") + lm.agent_prefix_ids
    a = lm.sample(context, n=4, max_new_tokens=40, seed=3)
    assert a == lm.sample(context, n=4, max_new_tokens=40, seed=3)
    assert a != lm.sample(context, n=4, max_new_tokens=40, seed=4)
    for sample in a:
        assert 1 <= len(sample) <= 40
        assert lm.eot_id not in sample[:-1] and lm.pad_id not in sample
    # The SFT model writes an agent's reply, in words.
    assert any(len(lm.reply_text(s).split()) >= 3 for s in a)


def test_reference_lm_pickles_by_path(lm):
    clone = pickle.loads(pickle.dumps(lm))
    assert clone is lm  # the same process shares one loaded model


def test_missing_model_and_bad_folders_get_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv(LM_ENV_VAR, raising=False)
    monkeypatch.setenv("RLHF_ENVS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="rlhf-envs build-lm"):
        default_lm_path(build=False)
    with pytest.raises(LMError, match="no config.json"):
        ReferenceLM(tmp_path)
    monkeypatch.setenv(LM_ENV_VAR, str(tmp_path / "mine"))
    assert default_lm_path() == (tmp_path / "mine").resolve()


def test_build_lm_command_builds_into_a_folder(tmp_path, capsys):
    from rlhf_envs.cli import main

    assert (
        main(["build-lm", "--out", str(tmp_path / "lm"), "--episodes", "20", "--steps", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "held-out perplexity" in out and "unigram" in out
    assert ReferenceLM(tmp_path / "lm").vocab_size > 256
    with pytest.raises(SystemExit, match="--episodes must be at least 10"):
        main(["build-lm", "--out", str(tmp_path / "x"), "--episodes", "2"])
