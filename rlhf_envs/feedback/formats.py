"""Moved to :mod:`rlhf_envs.preference_data.formats`; this module name is kept so old imports
work."""

import sys
import warnings

from rlhf_envs.preference_data import formats

warnings.warn(
    "rlhf_envs.feedback.formats moved to rlhf_envs.preference_data.formats",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = formats
