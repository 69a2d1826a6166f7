"""Preference pairs and ratings validate themselves: texts, labels and scales checked
when a record is made, metadata copied and left out of the hash."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_envs.preference_data import RATING_SCALES, PreferencePair, Rating


def test_pair_validates_itself():
    with pytest.raises(ValueError, match="identical"):
        PreferencePair("User: hi", "same", "same")
    with pytest.raises(ValueError, match="rejected is empty"):
        PreferencePair("User: hi", "a", "   ")
    with pytest.raises(ValueError, match="chosen must be a str, got int"):
        PreferencePair("User: hi", 3, "b")
    with pytest.raises(ValueError, match="'chosen' collides with a record field"):
        PreferencePair("User: hi", "a", "b", {"chosen": "x"})
    assert PreferencePair("", "a", "b").prompt == ""  # no context is allowed


def test_pair_metadata_is_copied_and_left_out_of_the_hash():
    meta = {"annotator": "ann-1", "margins": [0.5]}
    pair = PreferencePair("User: hi", "a", "b", meta)
    meta["annotator"] = "changed"
    assert pair.metadata["annotator"] == "ann-1"
    assert hash(pair) == hash(PreferencePair("User: hi", "a", "b"))
    assert pair.to_json() == {
        "prompt": "User: hi",
        "chosen": "a",
        "rejected": "b",
        "annotator": "ann-1",
        "margins": [0.5],
    }


def test_rating_validates_and_normalises_its_label():
    assert RATING_SCALES == {"thumbs": (0, 1), "stars": (1, 5)}
    up = Rating("", "ok", True, "thumbs")
    assert up.label == 1 and type(up.label) is int and up.value == 1.0
    assert Rating("", "ok", np.int64(5), "stars").label == 5
    with pytest.raises(
        ValueError, match="out of range for the stars scale; stars labels are integers 1 to 5"
    ):
        Rating("", "ok", 0, "stars")
    with pytest.raises(ValueError, match="thumbs label, not stars"):
        Rating("", "ok", True, "stars")
    with pytest.raises(ValueError, match="not an integer"):
        Rating("", "ok", 2.0, "stars")
    with pytest.raises(ValueError, match="unknown rating scale 'likert'"):
        Rating("", "ok", 1, "likert")
    with pytest.raises(ValueError, match="'label' collides"):
        Rating("", "ok", 1, "thumbs", {"label": 0})
