"""check-domain: every built-in domain passes (steps reachable, failure types proposed
and doing what they say, distractors below the correct reply, expert and random rates),
and a broken domain's problems are named."""

from __future__ import annotations

import shutil

import pytest

from rlhf_envs.domain_check import check_domain
from rlhf_envs.simulation import BUILTIN_DOMAINS, get_domain

pytestmark = pytest.mark.integration  # whole-domain runs: 60 to 150 episodes per domain


@pytest.mark.parametrize("name", BUILTIN_DOMAINS)
def test_check_domain_finds_no_problem_in_a_built_in_domain(name):
    """Every step reachable, every failure type proposed and doing what it says, every
    distractor below the correct reply under every persona, expert and random rates."""
    report = check_domain(name, episodes=150)
    assert not report.problems, report.summary()
    assert report.expert_success >= 0.95 and report.random_success <= 0.3


def test_check_domain_passes_the_built_in_domains_and_names_what_is_wrong_in_a_broken_one(tmp_path):
    assert not check_domain("tiny", episodes=60).problems
    broken = tmp_path / "library"
    shutil.copytree(get_domain("tiny").folder, broken, ignore=shutil.ignore_patterns("__pycache__"))
    agent = (broken / "agent.yaml").read_text()
    # An "evasive" distractor that in fact renews the book, and a step no fact can reach.
    agent = agent.replace(
        'evasive: ["Libraries are wonderful places."]', 'evasive: ["I\'ll renew it for you."]'
    )
    (broken / "agent.yaml").write_text(agent)
    policy = (
        (broken / "policy.yaml")
        .read_text()
        .replace('fines: ["$0", "$0", "$3", "$7"]', 'fines: ["$0"]')
    )
    (broken / "policy.yaml").write_text(policy)
    report = check_domain(str(broken), episodes=60)
    text = "\n".join(report.problems)
    assert "task renew_book: steps never on a sampled path: ['decline_renewal']" in text
    assert (
        "a candidate labelled 'evasive' does not do what its label says: \"I'll renew it for you.\""
        in text
    )
