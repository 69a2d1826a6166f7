"""Building the reference LM: deterministic, saved without pickles, far better than a
unigram model, found in (or missing from) the cache, and the build-lm command."""

from __future__ import annotations

import hashlib
import os

import pytest

from rlhf_envs.cli import main
from rlhf_envs.dialogue import EOT, transcript_text
from rlhf_envs.lm.build import (
    CACHE_ENV_VAR,
    LM_ENV_VAR,
    LMBuildConfig,
    build_reference_lm,
    default_lm_path,
)
from rlhf_envs.lm.reference import ReferenceLM, load_reference_lm
from rlhf_envs.lm.sft import SFTConfig, perplexity, unigram_perplexity
from rlhf_envs.simulation.corpus import expert_transcripts

TINY_BUILD = LMBuildConfig(
    domains=("tiny",),
    episodes=40,
    held_out=5,
    vocab_size=400,
    sft=SFTConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64, steps=3, batch_size=4),
)


def _digest(folder) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_build_is_deterministic_and_saved_without_pickles(tmp_path):
    info = build_reference_lm(tmp_path / "a", TINY_BUILD, progress=False)
    build_reference_lm(tmp_path / "b", TINY_BUILD, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "rlhf_lm.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert info["vocab_size"] == 400 and info["build_seconds"] >= 0 and info["parameters"] > 0
    # An LM is rebuilt in place only when asked; a folder that is not one never is, and
    # either is found out before training.
    with pytest.raises(FileExistsError, match="already holds a reference LM"):
        build_reference_lm(tmp_path / "a", TINY_BUILD, progress=False)
    (tmp_path / "a" / "notes.txt").write_text("mine")
    build_reference_lm(tmp_path / "a", TINY_BUILD, progress=False, overwrite=True)
    assert (tmp_path / "a" / "notes.txt").read_text() == "mine"
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a reference-LM folder"):
        build_reference_lm(tmp_path / "other", TINY_BUILD, progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_built_lm_is_far_better_than_a_unigram_model(test_lm_folder):
    """Held-out expert transcripts (a seed the build never saw): the LM's perplexity is
    a small fraction of a unigram model's fitted on the same training corpus."""
    lm = load_reference_lm(test_lm_folder)
    tok = lm.tokenizer
    config = lm.info["config"]

    def ids(dialogues):
        return [tok.encode(transcript_text(d, EOT), add_special_tokens=False) for d in dialogues]

    train = ids(expert_transcripts(tuple(config["domains"]), config["episodes"], config["seed"]))
    test = ids(expert_transcripts(("customer_service",), 40, seed=777))
    lm_ppl = perplexity(lm.model, test, lm.max_positions)
    unigram = unigram_perplexity(train, test, lm.vocab_size)
    assert lm_ppl < unigram / 10, (lm_ppl, unigram)


def test_a_missing_build_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.delenv(LM_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="rlhf-envs build-lm"):
        default_lm_path(build=False)
    assert not (tmp_path / "cache").exists()  # nothing was built
    monkeypatch.setenv(LM_ENV_VAR, str(tmp_path / "mine"))
    assert default_lm_path() == (tmp_path / "mine").resolve()


@pytest.mark.integration
def test_build_lm_command_builds_into_a_folder(tmp_path, capsys):
    assert (
        main(
            [
                "build-lm",
                "--out",
                str(tmp_path / "lm"),
                "--episodes",
                "20",
                "--held-out",
                "5",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "held-out perplexity" in out and "unigram" in out
    assert ReferenceLM(tmp_path / "lm").vocab_size > 256
    assert main(["build-lm", "--out", str(tmp_path / "x"), "--episodes", "2"]) == 2
    assert "--episodes must be at least 10" in capsys.readouterr().err
    # An existing LM is found out before any training: status 2, one line, no traceback.
    assert main(["build-lm", "--out", str(tmp_path / "lm"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "already holds a reference LM" in err and "--force" in err and len(err.splitlines()) == 1


def test_cache_key_follows_the_conversations_not_the_engine_source(monkeypatch):
    from rlhf_envs.dialogue import Turn
    from rlhf_envs.lm import build

    key = build.build_key(TINY_BUILD)
    assert key == build.build_key(TINY_BUILD)  # (stable, and computed once per process)
    assert build.build_key(LMBuildConfig(**{**TINY_BUILD.to_dict(), "seed": 1})) != key

    # The same engine with one transcript changed (as an edit to how conversations go
    # would): another model.
    real = build.expert_transcripts

    def one_turn_reworded(domains, episodes, seed=0):
        for i, transcript in enumerate(real(domains, episodes, seed)):
            if i == 3:
                transcript = (*transcript[:-1], Turn(transcript[-1].role, "Something else."))
            yield transcript

    monkeypatch.setattr(build, "expert_transcripts", one_turn_reworded)
    build._corpus_fingerprint.cache_clear()
    try:
        assert build.build_key(TINY_BUILD) != key
    finally:
        monkeypatch.undo()
        build._corpus_fingerprint.cache_clear()
    assert build.build_key(TINY_BUILD) == key
