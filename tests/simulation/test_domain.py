"""Domains load from a folder path too; mistakes in their data fail at load time."""

from __future__ import annotations

import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs  # noqa: F401
from rlhf_envs.rewards import RubricRewardModel
from rlhf_envs.simulation import DomainError, get_domain
from rlhf_envs.simulation.domain import _load_domain

TINY = Path(rlhf_envs.__file__).parent / "domains" / "tiny"


@pytest.fixture
def tiny_copy(tmp_path):
    folder = tmp_path / "my_domain"
    shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    return folder


@pytest.mark.integration
def test_a_domain_folder_runs_in_the_env_and_survives_pickling_elsewhere(tiny_copy, monkeypatch):
    monkeypatch.chdir(tiny_copy.parent)
    env = gym.make("RLHF-Chat-v0", domain="my_domain", num_candidates=3)
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.unwrapped.expert_action())
    assert info["step_completed"]
    assert get_domain("my_domain") is get_domain(str(tiny_copy) + "/")  # one load per folder
    # Unpickled in a process started in another directory, it finds the same folder.
    blob = pickle.dumps(env)
    code = (
        "import pickle, sys; env = pickle.loads(sys.stdin.buffer.read()); "
        "print(env.unwrapped.domain.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, cwd="/", timeout=120
    )
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout.decode().strip() == str(tiny_copy.resolve())


def test_a_template_with_an_unknown_field_fails_at_load(tiny_copy):
    policy = tiny_copy / "policy.yaml"
    policy.write_text(policy.read_text().replace("{due_date}.", "{due_dat}.", 1))
    with pytest.raises(
        DomainError, match=r"step 'renew' uses \{due_dat\}, which is not a fact declared"
    ):
        get_domain(tiny_copy)


def test_a_missing_file_is_named(tiny_copy):
    (tiny_copy / "user.yaml").unlink()
    with pytest.raises(DomainError, match="missing .*user.yaml"):
        get_domain(tiny_copy)


RULE = """
rules:
  no_fee_talk:
    forbid: ['\\\\bfees?\\\\b']
    description: never mention fees
"""


@pytest.mark.parametrize(
    ("append", "message"),
    [
        ("\nrules: [no_tips]\n", "'rules' must be a mapping of names to entries, got a list"),
        (
            "\nrules:\n  no_tips: {forbid: ['(']}\n",
            "policy.yaml: rule 'no_tips': bad regular expression '('",
        ),
        (
            "\nrules:\n  no_tips: {if: no_such_hook, forbid: [tip]}\n",
            "if-hook 'no_such_hook' is not defined in hooks.py",
        ),
        (
            "\nrules:\n  no_tips: {after: no_such_step, forbid: [tip]}\n",
            "after-step 'no_such_step' is not a step",
        ),
        (
            "\nrules:\n  no_tips: {severity: fatal, forbid: [tip]}\n",
            "severity 'fatal' is not one of",
        ),
        (
            "\nrules:\n  no_tips: {description: nothing to forbid}\n",
            "a rule needs 'forbid' patterns or 'forbid_facts'",
        ),
        (
            "\nrules:\n  no_tips: {forbid_facts: [shoe_size]}\n",
            "forbid_facts names 'shoe_size', which is not a fact",
        ),
        ("\nrules:\n  no_tips: {forbid: [tip], sevrity: minor}\n", "unknown field(s) ['sevrity']"),
        ("\ndisclosures:\n  risk: [loss]\n", "disclosure 'risk'"),
    ],
)
def test_mistakes_in_rules_and_disclosures_are_named(tiny_copy, append, message):
    policy = tiny_copy / "policy.yaml"
    policy.write_text(policy.read_text() + append)
    with pytest.raises(ValueError, match=re.escape(message)):
        get_domain(tiny_copy)


def test_a_rule_with_its_distractors_becomes_a_failure_type_and_a_disclosure_may_be_one_name(
    tiny_copy,
):
    policy = tiny_copy / "policy.yaml"
    text = (
        policy.read_text()
        + RULE
        + "\ndisclosures:\n  due:\n    patterns: ['\\\\buntil\\\\b', 'due date']\n"
    )
    text = text.replace(
        "    mention: [due_date]\n", "    mention: [due_date]\n    disclose: due\n", 1
    )
    policy.write_text(text)
    agent = tiny_copy / "agent.yaml"
    agent.write_text(
        agent.read_text().replace(
            "distractors:\n",
            'distractors:\n  no_fee_talk: ["{core} There\'s a small fee for that."]\n',
            1,
        )
    )
    domain = get_domain(tiny_copy)
    assert domain.failure_types[-2:] == ("missing_disclosure", "no_fee_talk")
    assert domain.policy.steps["renew"].disclose == ("due",)
    with pytest.raises(ValueError, match="unknown rubric persona 'librarian'"):
        RubricRewardModel("librarian").check_domain(domain)


def test_a_domain_folder_may_add_its_own_rubric_persona(tiny_copy):
    (tiny_copy / "rubric.yaml").write_text("personas:\n  librarian: {politeness: 3.0}\n")
    env = gym.make(
        "RLHF-Chat-v0", domain=str(tiny_copy), num_candidates=3, reward="rubric:librarian"
    )
    env.reset(seed=0)
    _, reward, *_ = env.step(env.unwrapped.expert_action())
    assert np.isfinite(reward)
    # Checked against the env's own domain when it is made, not at the first step.
    with pytest.raises(
        ValueError, match="persona 'librarian': it is not defined for domain 'customer_service'"
    ):
        gym.make("RLHF-Chat-v0", reward="rubric:librarian")
    (tiny_copy / "rubric.yaml").write_text("personas:\n  librarian: {kindness: 3.0}\n")
    _load_domain.cache_clear()
    with pytest.raises(
        DomainError, match=r"persona 'librarian' weighs unknown component\(s\) \['kindness'\]"
    ):
        gym.make("RLHF-Chat-v0", domain=str(tiny_copy), num_candidates=3)


@pytest.mark.parametrize(
    ("rubric", "message"),
    [
        ("points:\n  safety: -4\n", "rubric.yaml points.safety must map names to numbers, got -4"),
        ("points:\n  safety: {per_violation: lots}\n", "points.safety must map names to numbers"),
        (
            "points:\n  safety: {per_slip: -1}\n",
            "points.safety ['per_slip'] is not among the shared rubric's points",
        ),
        ("personas:\n  owl: 2\n", "rubric.yaml persona 'owl' must map names to numbers, got 2"),
        ("personas: [owl]\n", "sections 'points' and 'personas' must be mappings"),
        ("weights: {}\n", "rubric.yaml may hold only 'points' and 'personas'"),
    ],
)
def test_mistakes_in_a_domain_rubric_are_named(tiny_copy, rubric, message):
    (tiny_copy / "rubric.yaml").write_text(rubric)
    # The rubric checks its part of a domain folder when an env is made on it.
    with pytest.raises(DomainError, match=re.escape(message)):
        gym.make("RLHF-Chat-v0", domain=str(tiny_copy), num_candidates=3)
