"""Moved to :mod:`rlhf_envs.preference_data.records`; this module name is kept so old imports
work."""

import sys
import warnings

from rlhf_envs.preference_data import records

warnings.warn(
    "rlhf_envs.feedback.records moved to rlhf_envs.preference_data.records",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = records
