"""Test-session set-up: a small reference LM for the tokens and text envs.

The registered tokens/text ids build the project's reference LM on first use (a few
minutes). Tests use a smaller build of the same pipeline instead (under a minute, kept
in the user's cache like any build, so later runs reuse it) and point ``RLHF_ENVS_LM``
at it before any env is made; subprocesses inherit it.
"""

from __future__ import annotations

import os

from rlhf_envs.lm.build import LM_ENV_VAR, LMBuildConfig, default_lm_path
from rlhf_envs.lm.sft import SFTConfig

TEST_LM_CONFIG = LMBuildConfig(episodes=600, held_out=60, vocab_size=1024, sft=SFTConfig(steps=150))


def pytest_configure(config):
    if not os.environ.get(LM_ENV_VAR):
        os.environ[LM_ENV_VAR] = str(default_lm_path(TEST_LM_CONFIG, quiet=True))
