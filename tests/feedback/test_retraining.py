"""Retraining on the store: a new reward model is promoted only when it is not worse on
the held-out labels; the labelling app's pair source follows the promoted model."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from rlhf_envs.feedback import write_preferences
from rlhf_envs.feedback.annotators import FeedbackCollector
from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.retraining import retrain_reward_model
from rlhf_envs.feedback.store import FeedbackStore, StoreError, is_heldout


@pytest.fixture(scope="module")
def labelled_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("retrain")
    pairs = FeedbackCollector("RLHF-Chat-v0", seed=5).preferences(600, progress=False)
    write_preferences(folder / "pairs.jsonl", pairs)
    with FeedbackStore(folder / "feedback.sqlite") as store:
        store.import_file(folder / "pairs.jsonl")
    return folder


def test_promotes_only_a_model_that_is_not_worse(labelled_db, tmp_path):
    db = tmp_path / "feedback.sqlite"
    db.write_bytes((labelled_db / "feedback.sqlite").read_bytes())
    rm_dir = tmp_path / "rms"
    with FeedbackStore(db) as store:
        first = retrain_reward_model(store, rm_dir, "linear", seed=0)
        assert first.promoted and first.version == 1 and first.baseline_version is None
        assert first.accuracy > 0.65
        assert first.train_labels + first.heldout_labels == 600
        assert (rm_dir / "current").resolve() == (rm_dir / "v1").resolve()

        # A link left pointing elsewhere (a crash after a swap) is put back from the store.
        (rm_dir / "current").unlink()
        (rm_dir / "current").symlink_to("v-elsewhere")
        # A batch of reversed training labels (a confused annotator, a swapped key) makes
        # the next model worse on the same held-out labels, which stay untouched.
        training = [
            c.id
            for c in map(store.comparison, range(1, 601))
            if not is_heldout(c.context, c.reply_a, c.reply_b)
        ]
        conn = sqlite3.connect(db)
        with conn:
            conn.executemany(
                "UPDATE labels SET choice = CASE choice WHEN 'a' THEN 'b' ELSE 'a' END "
                "WHERE comparison_id = ?",
                [(c,) for c in training],
            )
        conn.close()
        weak = retrain_reward_model(store, rm_dir, "linear", seed=1)
        assert weak.version == 2 and weak.baseline_version == 1
        assert weak.baseline_accuracy == pytest.approx(first.accuracy)
        assert weak.accuracy < first.accuracy and not weak.promoted
        assert (rm_dir / "current").resolve() == (rm_dir / "v1").resolve()
        assert (rm_dir / "v2" / "model.safetensors").exists()  # kept for the record, not served

        tolerant = retrain_reward_model(store, rm_dir, "linear", seed=1, tolerance=1.0)
        assert tolerant.promoted and (rm_dir / "current").resolve() == (rm_dir / "v3").resolve()
        assert [(r["version"], r["promoted"]) for r in store.reward_models()] == [
            (1, 1),
            (2, 0),
            (3, 1),
        ]
        assert store.current_reward_model()["version"] == 3


def test_too_few_labels_is_a_clear_error(tmp_path):
    with FeedbackStore(tmp_path / "f.sqlite") as store:
        me = store.annotator("Ada")
        for n in range(10):
            c = store.add_comparison(f"User: q{n}", "yes", "no", source="test")
            store.add_label(f"label-{n:04d}", c, me, "a")
        with pytest.raises(StoreError, match="retraining needs at least 20 and 5"):
            retrain_reward_model(store, tmp_path / "rms")
        assert store.reward_models() == []


def test_active_pairs_are_the_ones_the_promoted_model_is_least_sure_about(labelled_db, tmp_path):
    db = tmp_path / "feedback.sqlite"
    db.write_bytes((labelled_db / "feedback.sqlite").read_bytes())
    with FeedbackStore(db) as store:
        active = PairSource(store, "RLHF-Chat-v0", mode="active", pool=16, seed=1)
        assert active.draw().rm_version is None  # no model yet: a plain random pair
        retrain_reward_model(store, tmp_path / "rms", seed=0)
        drawn = [active.draw() for _ in range(30)]
        assert {d.rm_version for d in drawn} == {1}
        random = PairSource(store, "RLHF-Chat-v0", mode="random", seed=1)
        model = active.reward_model()[1]
        baseline = []
        for _ in range(30):
            d = random.draw()
            a, b = model.score((d.context.exchange(d.reply_a), d.context.exchange(d.reply_b)))
            baseline.append(abs(a - b))
        assert np.mean([abs(d.rm_margin) for d in drawn if d.active]) < 0.5 * np.mean(baseline)
        picked = [d for d in drawn if d.active]
        assert picked
        c = store.comparison(active.add(picked[0]))
        assert (c.source, c.rm_version, c.rm_margin) == (
            "active",
            1,
            pytest.approx(picked[0].rm_margin),
        )
        # Held-out pairs are never picked actively: the slice judges models on random pairs.
        for d in drawn:
            assert d.active != is_heldout(d.context.prompt(), d.reply_a, d.reply_b)
        active.close()
        random.close()


def test_a_missing_model_folder_falls_back_to_random_pairs(labelled_db, tmp_path):
    import shutil

    db = tmp_path / "feedback.sqlite"
    db.write_bytes((labelled_db / "feedback.sqlite").read_bytes())
    with FeedbackStore(db) as store:
        retrain_reward_model(store, tmp_path / "rms", seed=0)
        shutil.rmtree(tmp_path / "rms" / "v1")
        source = PairSource(store, "RLHF-Chat-v0", mode="active", seed=2)
        with pytest.warns(UserWarning, match="v1 cannot be loaded"):
            drawn = source.draw()
        assert drawn.rm_version is None and drawn.reply_a != drawn.reply_b
        source.close()


def test_a_lost_current_model_or_an_old_folder_does_not_block_retraining(labelled_db, tmp_path):
    import shutil

    db = tmp_path / "feedback.sqlite"
    db.write_bytes((labelled_db / "feedback.sqlite").read_bytes())
    rm_dir = tmp_path / "rms"
    (rm_dir / "v4").mkdir(parents=True)  # left by an older database: never written over
    (rm_dir / "v4" / "keep.txt").write_text("old")
    with FeedbackStore(db) as store:
        first = retrain_reward_model(store, rm_dir, seed=0)
        assert first.version == 5 and (rm_dir / "v4" / "keep.txt").read_text() == "old"
        shutil.rmtree(rm_dir / "v5")
        with pytest.warns(UserWarning, match="v5 cannot be loaded"):
            second = retrain_reward_model(store, rm_dir, seed=1)
        assert second.promoted and second.baseline_accuracy is None
        assert store.current_reward_model()["version"] == 6
