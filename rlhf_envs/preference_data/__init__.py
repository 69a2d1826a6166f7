"""Human feedback as data: preference pairs and ratings, and the files that hold them.

``records.py`` defines the two kinds of feedback record: ``PreferencePair`` (one reply
preferred to another in the same context) and ``Rating`` (one reply judged alone, thumbs
or stars). ``formats.py`` reads and writes them as JSON Lines in TRL's preference and
unpaired formats, and reads Anthropic HH-RLHF pairs; malformed lines are reported with
the file, the line and what was expected.

This package sits below both the learned reward models (which train on these records)
and the feedback loop (which collects and stores them): it imports only
:mod:`rlhf_envs.dialogue`.
"""

from rlhf_envs.preference_data.formats import (
    FeedbackData,
    FeedbackFormatError,
    data_hash,
    read_feedback,
    read_preferences,
    read_ratings,
    write_preferences,
    write_ratings,
)
from rlhf_envs.preference_data.records import RATING_SCALES, PreferencePair, Rating

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
