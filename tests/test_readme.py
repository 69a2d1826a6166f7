"""Every ```python block of README.md runs, each in a fresh interpreter, as a reader would
paste it, so the README cannot drift from the code.

Blocks that train run with a tiny budget: ``SUBSTITUTIONS`` lists each change, and a
substitution that no longer matches exactly one block fails, so it cannot silently stop
applying. The blocks run in a temporary folder holding ``runs/rm``, the reward model the
README trains (``rlhf-envs train-rm ... --out runs/rm``) before its blocks name it.

A block that truly cannot run alone is preceded in the README by the line
``<!-- readme-test: not run (WHY) -->``: it is reported as skipped with its reason, and
``NOT_RUN`` lists the reasons, so every such exception is counted and seen here. There is
one: the OpenEnv client, which needs a server. Other fenced blocks (bash, toml, yaml) are
not run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import rlhf_envs

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"
# What the README's blocks train with -> what they train with here.
SUBSTITUTIONS = {
    "model.learn(50_000)": "model.learn(256)",
    "steps=370, horizon=4)": (
        "steps=2, horizon=1, group_size=2, groups_per_step=2, max_branch_turn=2)"
    ),
}
NOT_RUN_MARK = re.compile(r"<!-- readme-test: not run \((?P<why>.+)\) -->")
# The reasons of the blocks marked not run, in README order.
NOT_RUN: tuple[str, ...] = (
    "needs the server of the block above running; tests/serving/test_serve_openenv.py "
    "drives it the same way",
)
LM_IDS = {i for i, kw in rlhf_envs.ENV_PRESETS.items() if kw["interface"] in ("tokens", "text")}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence
    code: str
    not_run: str | None  # the reason given in the README, for a block that is not run


def python_blocks(text: str) -> list[Block]:
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = NOT_RUN_MARK.fullmatch(before.strip())
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(line, match.group(1), mark.group("why") if mark else None))
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def _param(block: Block):
    # A block that makes a tokens or text env needs the test LM (tests/conftest.py).
    marks = [pytest.mark.lm] if any(env_id in block.code for env_id in LM_IDS) else []
    return pytest.param(block, marks=marks, id=f"README.md:{block.line}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with ``runs/rm``: a linear reward model on simulated preferences."""
    from rlhf_envs.feedback.annotators import FeedbackCollector
    from rlhf_envs.rewards.learned import train_reward_model

    folder = tmp_path_factory.mktemp("readme")
    pairs = FeedbackCollector("RLHF-Chat-v0", seed=0).preferences(100, progress=False)
    train_reward_model(pairs, "linear", progress=False).model.save(folder / "runs" / "rm")
    return folder


def test_the_readme_has_python_blocks_and_each_substitution_applies_once():
    assert len(BLOCKS) >= 5
    for old in SUBSTITUTIONS:
        where = [b.line for b in BLOCKS if old in b.code]
        assert sum(b.code.count(old) for b in BLOCKS) == 1, (
            f"{old!r} should occur in exactly one README block; found at lines {where}"
        )


def test_blocks_not_run_are_the_declared_ones():
    assert tuple(b.not_run for b in BLOCKS if b.not_run) == NOT_RUN


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_python_block_runs(block, workdir):
    if block.not_run:
        pytest.skip(f"README.md:{block.line} is marked not run: {block.not_run}")
    code = block.code
    for old, new in SUBSTITUTIONS.items():
        code = code.replace(old, new)
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"README.md:{block.line}\n{code}\n{run.stderr[-3000:]}"
