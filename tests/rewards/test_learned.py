"""Learned reward models: the Bradley-Terry loss, training that learns, checkpoints that
reload exactly, clear errors for bad checkpoints, and use as an env reward plugin."""

from __future__ import annotations

import json
import math
import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlhf_envs  # noqa: F401
from rlhf_envs.dialogue import Turn
from rlhf_envs.feedback.annotators import FeedbackCollector, SimulatedAnnotator
from rlhf_envs.preference_data import PreferencePair, Rating
from rlhf_envs.rewards import RewardModelError, make_reward_model
from rlhf_envs.rewards.learned import (
    CheckpointError,
    EnsembleRewardModel,
    LearnedRewardModel,
    bradley_terry_loss,
    load_learned,
    pairwise_accuracy,
    rating_agreement,
    train_reward_model,
)
from rlhf_envs.rewards.learned.features import PairFeaturizer
from rlhf_envs.rewards.protocol import Exchange

torch.set_num_threads(1)


def test_bradley_terry_gradient_matches_hand_computation():
    chosen = torch.tensor([1.0, -0.25], requires_grad=True)
    rejected = torch.tensor([0.5, 0.75], requires_grad=True)
    loss = bradley_terry_loss(chosen, rejected)
    loss.backward()

    def sigmoid(x):
        return 1 / (1 + math.exp(-x))

    # loss = mean(-log sigmoid(c - r)); d/dc = -(1 - sigmoid(c - r)) / n = -sigmoid(r - c) / n.
    assert loss.item() == pytest.approx((-math.log(sigmoid(0.5)) - math.log(sigmoid(-1.0))) / 2)
    assert chosen.grad.tolist() == pytest.approx([-sigmoid(-0.5) / 2, -sigmoid(1.0) / 2])
    assert rejected.grad.tolist() == pytest.approx([sigmoid(-0.5) / 2, sigmoid(1.0) / 2])


@pytest.fixture(scope="module")
def tiny_pairs():
    panel = [(SimulatedAnnotator("balanced", "balanced", temperature=0.25, flip_rate=0.0), 1.0)]
    train = FeedbackCollector("RLHF-Tiny-v0", panel, seed=0).preferences(800, progress=False)
    test = FeedbackCollector("RLHF-Tiny-v0", panel, seed=1).preferences(300, progress=False)
    return train, test


@pytest.fixture(scope="module")
def linear_rm(tiny_pairs, tmp_path_factory):
    result = train_reward_model(tiny_pairs[0], "linear", progress=False)
    folder = tmp_path_factory.mktemp("rm") / "linear"
    result.model.save(folder, note="test")
    return result, folder


def test_linear_model_learns_the_annotators_preferences(tiny_pairs, linear_rm):
    result, _ = linear_rm
    report = pairwise_accuracy(result.model, tiny_pairs[1])
    assert report.ceiling is not None and report.ceiling > 0.85
    assert report.accuracy > 0.9 * report.ceiling, report.summary()
    assert report.low < report.accuracy < report.high
    untrained = LearnedRewardModel(type(result.model.scorer)())
    assert pairwise_accuracy(untrained, tiny_pairs[1]).accuracy == pytest.approx(0.5)  # all ties
    assert result.metrics["validation_records"] > 0 and result.metrics["best_epoch"] >= 1


def test_scores_are_normalised_on_training_replies(tiny_pairs, linear_rm):
    model = linear_rm[0].model
    pairs = tiny_pairs[0]
    scores = model.score_texts(
        [p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs]
    )
    assert abs(scores.mean()) < 0.2 and 0.8 < scores.std() < 1.2


def test_checkpoint_reloads_with_identical_scores(tiny_pairs, linear_rm):
    result, folder = linear_rm
    config = json.loads((folder / "config.json").read_text())
    assert (
        config["kind"] == "linear"
        and config["objective"] == "preference"
        and config["note"] == "test"
    )
    assert config["training"]["metrics"]["val_accuracy"] > 0.5
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = LearnedRewardModel.load(folder)
    pairs = tiny_pairs[1][:50]
    args = ([p.prompt for p in pairs], [p.chosen for p in pairs])
    np.testing.assert_array_equal(loaded.score_texts(*args), result.model.score_texts(*args))


def test_batched_scoring_equals_one_at_a_time(tiny_pairs, linear_rm):
    model = linear_rm[0].model
    pairs = tiny_pairs[1][:40]
    batch = model.score_texts([p.prompt for p in pairs], [p.chosen for p in pairs])
    single = [model.score_texts([p.prompt], [p.chosen])[0] for p in pairs]
    np.testing.assert_allclose(batch, single, rtol=1e-6, atol=1e-6)


def test_exchange_scoring_uses_the_transcript():
    featurizer = PairFeaturizer(dim=4096)
    history = (
        Turn("user", "I want a refund"),
        Turn("agent", "Your name please?"),
        Turn("user", "Ann Lee"),
    )
    exchange = Exchange(None, history, "Thanks Ann, I found order 123456.")
    ids, counts = featurizer.features(exchange.transcript(), exchange.reply)
    assert len(ids) == len(set(ids.tolist())) and np.all(counts > 0)
    # The same reply after a different context has different (cross) features.
    other, _ = featurizer.features("User: where is my parcel?", exchange.reply)
    assert set(ids.tolist()) != set(other.tolist())


def test_exchange_is_scored_as_its_transcript_and_reply(linear_rm):
    model = linear_rm[0].model
    env = gym.make("RLHF-Tiny-v0").unwrapped
    env.reset(seed=3)
    env.step(env.expert_action())
    state = env.state
    exchanges = [
        Exchange(state.scenario, state.history, c.text, state) for c in env.interface.candidates
    ]
    np.testing.assert_array_equal(
        model.score(exchanges),
        model.score_texts([e.transcript() for e in exchanges], [e.reply for e in exchanges]),
    )
    assert (
        exchanges[0].transcript().startswith("User: ") and "\nAgent: " in exchanges[0].transcript()
    )


def test_learned_paths_are_made_absolute_in_the_env_spec(linear_rm, tmp_path, monkeypatch):
    _, folder = linear_rm
    monkeypatch.chdir(folder.parent)
    env = gym.make(
        "RLHF-Tiny-v0",
        reward=f"learned:{folder.name}",
        gold={"rubric": 1.0, f"learned:{folder.name}": 1.0},
    )
    assert env.spec.kwargs["reward"] == f"learned:{folder}"
    assert env.spec.kwargs["gold"] == {"rubric": 1.0, f"learned:{folder}": 1.0}
    monkeypatch.chdir(tmp_path)  # somewhere else: the spec still finds the checkpoint
    rebuilt = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    rebuilt.reset(seed=0)
    vec = gym.make_vec("RLHF-Tiny-v0", num_envs=2, reward=f"learned:{folder}")
    assert vec.spec.kwargs["reward"] == f"learned:{folder}"


def test_vector_env_scores_with_one_learned_model_call_per_step(linear_rm):
    _, folder = linear_rm
    vec = gym.make_vec("RLHF-Tiny-v0", num_envs=4, reward=f"learned:{folder}")
    sync = gym.make_vec(
        "RLHF-Tiny-v0", num_envs=4, vectorization_mode="sync", reward=f"learned:{folder}"
    )
    model = vec.reward_model.model
    calls = []
    original = model.score_texts
    model.score_texts = lambda contexts, replies, **kw: (
        calls.append(len(replies)) or original(contexts, replies, **kw)
    )
    try:
        vec.reset(seed=0)
        sync.reset(seed=0)
        for _ in range(3):
            a = vec.step(np.zeros(4, dtype=np.int64))
            b = sync.step(np.zeros(4, dtype=np.int64))
            np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-6)
    finally:
        del model.score_texts
    assert calls == [4, 1, 1, 1, 1] * 3  # native: one call of 4; sync: 4 calls of 1


def test_learned_spec_in_env_and_in_a_mix(linear_rm):
    _, folder = linear_rm
    env = gym.make("RLHF-Tiny-v0", reward=f"learned:{folder}")
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.unwrapped.expert_action())
    assert np.isfinite(reward) and reward != info["gold_reward"]
    mix = gym.make("RLHF-Tiny-v0", reward={"rubric": 1.0, f"learned:{folder}": 0.5})
    mix.reset(seed=0)
    _, mixed, _, _, info = mix.step(mix.unwrapped.expert_action())
    assert mixed == pytest.approx(info["gold_reward"] + 0.5 * reward)
    assert sum(info["reward_components"].values()) == pytest.approx(mixed)
    assert mix.unwrapped.spec.to_json()  # still serialisable


def test_learned_model_is_shared_between_envs_of_one_process(linear_rm):
    _, folder = linear_rm
    a = make_reward_model(f"learned:{folder}").model
    b = make_reward_model(f"learned:{folder}").model
    assert a is b


def test_wrong_shape_from_a_plugin_is_caught(linear_rm):
    class Broken(LearnedRewardModel):
        def score(self, batch):
            return np.zeros(len(batch) + 1)

    model = Broken(linear_rm[0].model.scorer, name="broken-rm")
    env = gym.make("RLHF-Tiny-v0", reward=model)
    env.reset(seed=0)
    with pytest.raises(RewardModelError, match="broken-rm.*shape"):
        env.step(0)


def _broken_copy(folder, tmp_path, edit):
    target = tmp_path / "ckpt"
    target.mkdir()
    for f in folder.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    edit(target)
    return target


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: (f / "config.json").unlink(), "has no config.json"),
        (lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
        (
            lambda f: (f / "config.json").write_text('{"kind": "linear"}'),
            "not an rlhf-envs reward-model config",
        ),
        (
            lambda f: (f / "config.json").write_text(
                (f / "config.json").read_text().replace('"kind": "linear"', '"kind": "forest"')
            ),
            "model kind 'forest'; known kinds: linear, transformer",
        ),
        (
            lambda f: (f / "model.safetensors").write_bytes(
                (f / "model.safetensors").read_bytes()[:100]
            ),
            "model.safetensors is corrupt",
        ),
        (
            lambda f: (f / "config.json").write_text(
                (f / "config.json").read_text().replace('"dim": 262144', '"dim": 4096')
            ),
            "does not match config.json",
        ),
    ],
    ids=[
        "no-config",
        "no-weights",
        "bad-json",
        "foreign-json",
        "unknown-kind",
        "truncated-weights",
        "shape",
    ],
)
def test_corrupt_checkpoint_fails_clearly(linear_rm, tmp_path, edit, message):
    folder = _broken_copy(linear_rm[1], tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        LearnedRewardModel.load(folder)
    with pytest.raises(RewardModelError, match=f"learned:{folder}"):
        gym.make("RLHF-Tiny-v0", reward=f"learned:{folder}")


def test_saving_replaces_a_checkpoint_but_never_other_folders(linear_rm, tmp_path):
    model = linear_rm[0].model
    folder = model.save(tmp_path / "rm")
    first = make_reward_model(f"learned:{folder}").model
    (folder / "README.md").write_text("my notes on this model")
    with pytest.raises(CheckpointError, match="already holds a reward-model checkpoint"):
        model.save(folder, note="second")  # not replaced without being asked
    assert json.loads((folder / "config.json").read_text()).get("note") != "second"
    model.save(folder, overwrite=True, note="second")
    assert json.loads((folder / "config.json").read_text())["note"] == "second"
    # The folder's mode follows the umask, as mkdir's would (not tempfile's 0700).
    mask = os.umask(0o022)
    os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o777 & ~mask
    # Only the checkpoint's own files were replaced: the user's file is still there.
    assert (folder / "README.md").read_text() == "my notes on this model"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    second = make_reward_model(f"learned:{folder}").model
    assert second is not first  # rewritten on disk: loaded afresh
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a reward-model checkpoint"):
        model.save(other)
    assert (other / "todo.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes",
        "rm",
    ]  # no temporary folders left


def test_missing_checkpoint_and_missing_path_fail_clearly(tmp_path):
    with pytest.raises(
        RewardModelError, match="does not exist; expected a folder with config.json"
    ):
        gym.make("RLHF-Tiny-v0", reward=f"learned:{tmp_path / 'nope'}")
    with pytest.raises(RewardModelError, match="needs a checkpoint folder: write 'learned:PATH'"):
        gym.make("RLHF-Tiny-v0", reward="learned")


@pytest.mark.integration
def test_rating_classifier_scores_by_expected_rating(tmp_path):
    collector = FeedbackCollector("RLHF-Tiny-v0", seed=2)
    train = collector.ratings(800, scale="stars", progress=False)
    test = collector.ratings(300, scale="stars", progress=False)
    result = train_reward_model(train, "linear", progress=False)
    model = result.model
    assert model.objective == "rating" and model.scorer.num_outputs == 5
    raw = model.score_texts([r.prompt for r in test], [r.completion for r in test], normalise=False)
    assert np.all((raw >= 1) & (raw <= 5))
    report = rating_agreement(model, test)
    assert report.spearman > 0.5 and report.accuracy > 0.4, report.summary()
    loaded = LearnedRewardModel.load(model.save(tmp_path / "stars"))
    np.testing.assert_array_equal(
        loaded.score_texts([r.prompt for r in test], [r.completion for r in test]),
        model.score_texts([r.prompt for r in test], [r.completion for r in test]),
    )


def test_training_data_must_be_feedback_records():
    pair = PreferencePair("User: hi", "Hello, how can I help?", "What.")
    with pytest.raises(ValueError, match="PreferencePair and/or Rating records; got"):
        train_reward_model([pair, {"prompt": "hi"}], progress=False)
    tie = PreferencePair("User: hi", "Hello!", "Hi there!", tie=True)
    with pytest.raises(ValueError, match="every pair is a tie"):
        train_reward_model([tie, tie], progress=False)
    with pytest.raises(ValueError, match="no training data"):
        train_reward_model([], progress=False)
    with pytest.raises(ValueError, match="'linear', 'minilm' or a Hugging Face model path"):
        train_reward_model([pair], model="", progress=False)


def test_unknown_transformer_path_is_explained(tmp_path, linear_rm):
    pair = PreferencePair("User: hi", "Hello, how can I help?", "What.")
    with pytest.raises(ValueError, match="nothing is downloaded"):
        train_reward_model([pair], model=str(tmp_path / "no-model"), progress=False)
    with pytest.raises(
        ValueError, match="is an rlhf-envs reward-model checkpoint, not a Hugging Face model"
    ):
        train_reward_model([pair], model=str(linear_rm[1]), progress=False)
    with pytest.raises(
        ValueError, match="max_length 1000 is out of range for minilm: it takes 5 to 512"
    ):
        train_reward_model([pair], model="minilm", max_length=1000, progress=False)


@pytest.mark.integration
def test_minilm_reward_model_trains_saves_and_reloads(tiny_pairs, tmp_path):
    train, test = tiny_pairs
    result = train_reward_model(
        train[:48], "minilm", epochs=1, max_length=64, progress=False, validation_fraction=0.25
    )
    model = result.model
    assert model.scorer.kind == "transformer"
    folder = model.save(tmp_path / "minilm")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    loaded = LearnedRewardModel.load(folder)
    args = ([p.prompt for p in test[:12]], [p.chosen for p in test[:12]])
    np.testing.assert_allclose(
        loaded.score_texts(*args), model.score_texts(*args), rtol=1e-5, atol=1e-5
    )
    batched = model.score_texts(*args)
    single = [model.score_texts([c], [r])[0] for c, r in zip(*args, strict=True)]
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-4)
    # The reply is kept whole even when the context is far longer than max_length.
    long_context = "User: " + " ".join(["please"] * 500)
    (encoded,) = model.scorer.encode([long_context], ["Thanks, your refund is on its way."])
    assert len(encoded["input_ids"]) == 64
    tail = model.scorer.tokenizer.decode(encoded["input_ids"][-12:])
    assert "refund is on its way" in tail
    # Mixed lengths are scored in groups of similar length, interleaved back in order.
    mixed = (["User: hi.", long_context] * 3, [p.chosen for p in test[:6]])
    np.testing.assert_allclose(
        model.score_texts(*mixed),
        [model.score_texts([c], [r])[0] for c, r in zip(*mixed, strict=True)],
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.integration
def test_minilm_rating_classifier_scores_by_expected_rating(tmp_path):
    collector = FeedbackCollector("RLHF-Tiny-v0", seed=5)
    ratings = collector.ratings(40, scale="thumbs", progress=False)
    result = train_reward_model(
        ratings, "minilm", epochs=1, max_length=64, progress=False, validation_fraction=0.2
    )
    model = result.model
    assert model.objective == "rating" and model.scorer.num_outputs == 2
    raw = model.score_texts(
        [r.prompt for r in ratings], [r.completion for r in ratings], normalise=False
    )
    assert np.all((raw > 0) & (raw < 1))  # P(thumbs up)
    loaded = LearnedRewardModel.load(model.save(tmp_path / "thumbs"))
    np.testing.assert_allclose(
        loaded.score_texts([r.prompt for r in ratings[:8]], [r.completion for r in ratings[:8]]),
        model.score_texts([r.prompt for r in ratings[:8]], [r.completion for r in ratings[:8]]),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.integration
def test_minilm_recipe_settings_train_save_and_reload(tiny_pairs, tmp_path):
    """Mean pooling, a capped context, trained embeddings and label smoothing: each is
    recorded in the checkpoint and reloads to the same scores."""
    train, test = tiny_pairs
    result = train_reward_model(
        train[:32],
        "minilm",
        epochs=1,
        max_length=48,
        pooling="mean",
        context_tokens=8,
        train_embeddings=True,
        label_smoothing=0.1,
        progress=False,
        validation_fraction=0.25,
    )
    scorer = result.model.scorer
    assert scorer.pooling == "mean" and scorer.context_tokens == 8
    assert scorer.model.get_input_embeddings().weight.requires_grad
    settings = result.model.info["training"]["settings"]
    assert settings["label_smoothing"] == 0.1 and settings["pooling"] == "mean"
    loaded = LearnedRewardModel.load(result.model.save(tmp_path / "mean"))
    assert loaded.scorer.pooling == "mean" and loaded.scorer.context_tokens == 8
    args = ([p.prompt for p in test[:8]], [p.chosen for p in test[:8]])
    np.testing.assert_allclose(
        loaded.score_texts(*args), result.model.score_texts(*args), rtol=1e-5, atol=1e-5
    )
    # At most 8 tokens of context go in: a longer context's start never reaches the model.
    (capped,) = scorer.encode(["User: alpha beta gamma " + "word " * 40], ["Fine."])
    assert "alpha" not in scorer.tokenizer.decode(capped["input_ids"])
    # With no context at all, the reply alone is read.
    scorer.context_tokens = 0
    (alone,) = scorer.encode(["User: alpha beta"], ["Fine."])
    assert scorer.tokenizer.decode(alone["input_ids"]) == "[CLS] fine. [SEP]"


def test_recipe_settings_are_checked():
    pair = PreferencePair("User: hi", "Hello, how can I help?", "What.")
    with pytest.raises(ValueError, match="settings of transformer models"):
        train_reward_model([pair] * 4, "linear", pooling="mean", progress=False)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\)"):
        train_reward_model([pair] * 4, "linear", label_smoothing=0.5, progress=False)


def test_label_smoothing_keeps_margins_finite():
    d = torch.tensor([50.0], requires_grad=True)
    loss = bradley_terry_loss(d, torch.zeros(1), label_smoothing=0.1)
    (grad,) = torch.autograd.grad(loss, d)
    assert grad.item() > 0.09  # a huge margin is pushed back, not rewarded further
    assert bradley_terry_loss(torch.tensor([1.0]), torch.zeros(1), 0.0).item() == pytest.approx(
        -math.log(1 / (1 + math.exp(-1)))
    )


def test_ensemble_scores_the_members_mean_and_reports_their_spread(tiny_pairs, tmp_path):
    train, test = tiny_pairs
    result = train_reward_model(train[:400], "linear+linear", progress=False)
    ensemble = result.model
    assert isinstance(ensemble, EnsembleRewardModel) and len(ensemble.members) == 2
    # Members see the same data with the same seed: make the second one differ.
    ensemble.members[1] = train_reward_model(train[400:], "linear", seed=1, progress=False).model
    args = ([p.prompt for p in test[:20]], [p.chosen for p in test[:20]])
    each = np.stack([m.score_texts(*args) for m in ensemble.members])
    np.testing.assert_allclose(ensemble.score_texts(*args), each.mean(axis=0))
    np.testing.assert_allclose(ensemble.uncertainty_texts(*args), each.std(axis=0))
    assert ensemble.uncertainty_texts(*args).max() > 0
    folder = ensemble.save(tmp_path / "ens")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "member-1", "member-2"]
    loaded = load_learned(folder)
    assert isinstance(loaded, EnsembleRewardModel)
    np.testing.assert_allclose(loaded.score_texts(*args), ensemble.score_texts(*args))
    assert pairwise_accuracy(loaded, test).accuracy > 0.7
    # As an env's reward plugin, like any learned model.
    env = gym.make("RLHF-Tiny-v0", reward=f"learned:{folder}")
    env.reset(seed=0)
    _, reward, *_ = env.step(0)
    assert np.isfinite(reward)
    # Saving over it replaces only its own files.
    (folder / "notes.txt").write_text("mine")
    ensemble.save(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="already holds a reward-model checkpoint"):
        ensemble.save(folder)


def test_ensemble_needs_scalar_members():
    pair = PreferencePair("User: hi", "Hello, how can I help?", "What.")
    with pytest.raises(ValueError, match="two or more models joined by"):
        train_reward_model([pair] * 4, "linear+", progress=False)
    ratings = [Rating("User: hi", "Hello!", 1, "thumbs"), Rating("User: hi", "Go.", 0, "thumbs")]
    with pytest.raises(ValueError, match="not on ratings of one scale alone"):
        train_reward_model(ratings * 10, "linear+linear", progress=False, validation_fraction=0)
