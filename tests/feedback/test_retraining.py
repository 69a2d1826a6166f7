"""Retraining on the store: a new reward model is promoted only when it is not worse on
the held-out labels, and neither a lost model nor an old folder blocks the next one."""

from __future__ import annotations

import json
import sqlite3

import pytest

from rlhf_envs.feedback.annotators import FeedbackCollector
from rlhf_envs.feedback.retraining import retrain_reward_model
from rlhf_envs.feedback.store import FeedbackStore, StoreError, is_heldout
from rlhf_envs.preference_data.formats import write_ratings

pytestmark = pytest.mark.integration  # reward models trained on 600 labels


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


def test_retraining_uses_ties_and_ratings_and_counts_skips(labelled_db, tmp_path):
    db = tmp_path / "feedback.sqlite"
    db.write_bytes((labelled_db / "feedback.sqlite").read_bytes())
    conn = sqlite3.connect(db)
    with conn:  # turn 30 labels into ties and 20 into skips
        conn.execute("UPDATE labels SET choice = 'tie' WHERE id BETWEEN 1 AND 30")
        conn.execute("UPDATE labels SET choice = 'skip' WHERE id BETWEEN 31 AND 50")
    conn.close()
    ratings = FeedbackCollector("RLHF-Chat-v0", seed=8).ratings(60, "stars", progress=False)
    write_ratings(tmp_path / "r.jsonl", ratings)
    with FeedbackStore(db) as store:
        store.import_file(tmp_path / "r.jsonl")
        held_ties = sum(p.tie for p in store.preference_pairs(heldout=True, ties=True))
        result = retrain_reward_model(store, tmp_path / "rms", "linear", seed=0)
    assert result.ratings == 60 and result.skips == 20 and result.ties == 30 - held_ties
    assert result.heldout_labels + result.train_labels - 60 == 600 - 20 - held_ties
    assert "skips not trained on" in result.summary()
    metrics = json.loads((result.path / "config.json").read_text())["training"]["metrics"]
    assert metrics["objective"] == "joint" and metrics["ratings"] == 60
    assert result.accuracy > 0.6
