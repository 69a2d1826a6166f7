"""The human-feedback loop: simulated annotators, the SQLite store, the labelling web app,
the pair source that chooses what people label, and retraining the reward model.

The records and their file formats live in :mod:`rlhf_envs.preference_data` (below both
this package and the learned reward models); they are re-exported here, where they were
first published.
"""

from rlhf_envs.preference_data import (
    RATING_SCALES,
    FeedbackData,
    FeedbackFormatError,
    PreferencePair,
    Rating,
    data_hash,
    read_feedback,
    read_preferences,
    read_ratings,
    write_preferences,
    write_ratings,
)

__all__ = [
    "RATING_SCALES",
    "FeedbackData",
    "FeedbackFormatError",
    "PreferencePair",
    "Rating",
    "data_hash",
    "read_feedback",
    "read_preferences",
    "read_ratings",
    "write_preferences",
    "write_ratings",
]
