"""Shared by the feedback tests: a store of labelled pairs, made once per session."""

from __future__ import annotations

import pytest

from rlhf_envs.feedback import write_preferences
from rlhf_envs.feedback.annotators import FeedbackCollector
from rlhf_envs.feedback.store import FeedbackStore


@pytest.fixture(scope="session")
def labelled_db(tmp_path_factory):
    """A folder with ``feedback.sqlite``: 600 simulated preference labels on RLHF-Chat-v0
    (copy the file before writing to it)."""
    folder = tmp_path_factory.mktemp("retrain")
    pairs = FeedbackCollector("RLHF-Chat-v0", seed=5).preferences(600, progress=False)
    write_preferences(folder / "pairs.jsonl", pairs)
    with FeedbackStore(folder / "feedback.sqlite") as store:
        store.import_file(folder / "pairs.jsonl")
    return folder
