"""The pair source of the labelling app: random pairs, or (active) the pairs the promoted
reward model is least sure about, never from the held-out slice; without a loadable model
it falls back to random pairs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rlhf_envs.feedback.pairs import PairSource
from rlhf_envs.feedback.retraining import retrain_reward_model
from rlhf_envs.feedback.store import FeedbackStore, is_heldout

pytestmark = pytest.mark.integration  # reward models trained on 600 labels


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
