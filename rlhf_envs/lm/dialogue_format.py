"""Moved to :mod:`rlhf_envs.dialogue`; this module name is kept so old imports work."""

import sys
import warnings

from rlhf_envs import dialogue

warnings.warn(
    "rlhf_envs.lm.dialogue_format moved to rlhf_envs.dialogue", DeprecationWarning, stacklevel=2
)
sys.modules[__name__] = dialogue
