"""Domains load from a folder path too; mistakes in their data fail at load time."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.tasks import DomainError, get_domain

TINY = Path(rlhf_envs.__file__).parent / "tasks" / "tiny"


@pytest.fixture
def tiny_copy(tmp_path):
    folder = tmp_path / "my_domain"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return folder


def test_a_domain_folder_runs_in_the_env_and_survives_pickling_elsewhere(tiny_copy, monkeypatch):
    monkeypatch.chdir(tiny_copy.parent)
    env = gym.make("RLHF-Chat-v0", domain="my_domain", num_candidates=3)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.unwrapped.expert_action())
    assert info["step_completed"]
    assert get_domain("my_domain") is get_domain(str(tiny_copy) + "/")  # one load per folder
    # Unpickled in a process started in another directory, it finds the same folder.
    blob = pickle.dumps(env)
    code = "import pickle, sys; env = pickle.loads(sys.stdin.buffer.read()); print(env.unwrapped.domain.name)"
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == str(tiny_copy.resolve())


def test_a_template_with_an_unknown_field_fails_at_load(tiny_copy):
    policy = tiny_copy / "policy.yaml"
    policy.write_text(policy.read_text().replace("{due_date}.", "{due_dat}.", 1))
    with pytest.raises(DomainError, match=r"step 'renew' uses \{due_dat\}, which is not a fact declared"):
        get_domain(tiny_copy)


def test_a_missing_file_is_named(tiny_copy):
    (tiny_copy / "user.yaml").unlink()
    with pytest.raises(DomainError, match="missing .*user.yaml"):
        get_domain(tiny_copy)
