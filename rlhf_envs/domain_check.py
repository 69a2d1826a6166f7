"""Checking a domain folder: ``rlhf-envs check-domain PATH``, and what the test suite runs.

It sits above both the dialogue engine (``simulation``) and the reward models, since it
plays conversations and scores them with every rubric persona.

Loading a domain already checks its data for consistency (every reference resolves, every
template field is a declared fact). What loading cannot see needs conversations, so this
module plays them:

- the scripted expert completes every task without a violation (success rate);
- choosing uniformly among the proposed replies rarely succeeds (success rate);
- every step of every task is on some sampled path (every branch is reachable);
- every proposed candidate does what its failure type says, and every failure type of
  the domain is proposed somewhere;
- under every annotator persona, every distractor scores below the correct reply.

Each finding names the task, step and reply, so a domain author can fix the data.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlhf_envs.dialogue import MAX_TURNS
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.rubric import RubricRewardModel, check_domain_rubric, personas
from rlhf_envs.simulation.assessment import Assessment
from rlhf_envs.simulation.candidates import propose
from rlhf_envs.simulation.conversation import Conversation
from rlhf_envs.simulation.domain import CORRECT, Domain, DomainError, get_domain
from rlhf_envs.simulation.expert import expert_reply
from rlhf_envs.simulation.policy import PolicyBookError
from rlhf_envs.simulation.state import DialogueState

VERBOSE_WORDS = 45  # a "verbose" distractor is at least this long
_MAX_EXAMPLES = 5  # findings kept per kind


def label_holds(label: str, a: Assessment, domain: Domain) -> bool:
    """Whether a reply judged as ``a`` does what its candidate label says."""
    rule = domain.policy.rules.get(label)
    if rule is not None:
        return label in (a.violations if rule.severity == "critical" else a.minor)
    if label == CORRECT:
        return (
            a.completes and not a.violations and not a.minor and not a.rude and not a.wrong_refusal
        )
    if label == "missing_disclosure":
        return "missing_disclosure" in a.violations and bool(a.undisclosed)
    if label in ("invented_fact", "skipped_verification", "privacy_leak"):
        return label in a.violations
    if label == "off_policy":
        return "off_policy" in a.violations or a.wrong_refusal
    if label == "rude":
        return a.rude
    if label == "verbose":
        return a.completes and a.analysis.words > VERBOSE_WORDS
    if label in ("evasive", "off_topic"):
        return not a.completes and not a.violations
    if label == "repeated":
        return a.repeated
    raise ValueError(f"unknown candidate label {label!r}")


@dataclass
class DomainReport:
    """What :func:`check_domain` found. ``problems`` is empty for a sound domain."""

    domain: str
    episodes: int
    expert_success: float = 0.0
    random_success: float = 0.0
    proposed: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"domain {self.domain}: {self.episodes} episodes per check",
            f"  expert success {self.expert_success:.1%}, "
            f"random choice success {self.random_success:.1%}",
            "  candidates proposed: "
            + ", ".join(f"{k} {v}" for k, v in sorted(self.proposed.items())),
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems] or ["  no problems found"]
        return "\n".join(lines)


def _play(
    domain: Domain, seed: int, choose: Callable[[DialogueState, np.random.Generator], str]
) -> DialogueState:
    """One conversation where ``choose(state, rng)`` returns the agent's reply."""
    rng = np.random.default_rng(seed)
    conversation = Conversation(domain, rng)
    for _ in range(MAX_TURNS):
        if conversation.over:
            break
        conversation.turn(choose(conversation.state, rng))
    return conversation.state


def check_domain(
    name: str | Path,
    episodes: int = 300,
    candidates: int = 6,
    min_expert: float = 0.95,
    max_random: float = 0.3,
) -> DomainReport:
    """Play ``episodes`` conversations per check on a domain (a built-in name or a
    folder) and report what is wrong; see the module docstring for the checks."""
    domain = get_domain(name)
    check_domain_rubric(domain)
    report = DomainReport(domain=domain.name, episodes=episodes)
    problems: dict[str, list[str]] = defaultdict(list)

    def note(kind: str, text: str) -> None:
        if len(problems[kind]) < _MAX_EXAMPLES:
            problems[kind].append(text)

    # Expert and random choice.
    expert = [_play(domain, seed, lambda s, rng: expert_reply(s, rng)) for seed in range(episodes)]
    report.expert_success = float(np.mean([s.success for s in expert]))
    for s in expert:
        if not s.success:
            note("expert", f"task {s.scenario.subflow}: expert failed ({s.summary()})")

    def random_choice(state: DialogueState, rng: np.random.Generator) -> str:
        options = propose(state, candidates, rng)
        return options[int(rng.integers(len(options)))].text

    report.random_success = float(
        np.mean([_play(domain, seed, random_choice).success for seed in range(episodes)])
    )

    # Every step reachable.
    reached: dict[str, set[str]] = {sub: set() for sub in domain.subflow_ids}
    for seed in range(max(episodes, 40 * len(domain.subflow_ids))):
        scenario = domain.sample_scenario(np.random.default_rng(seed))
        path = domain.policy.subflows[scenario.subflow].path(scenario.facts, domain.decisions)
        reached[scenario.subflow].update(step.id for step in path)
    for sub_id, sub in domain.policy.subflows.items():
        unreached = sorted({s.id for s in sub.steps()} - reached[sub_id])
        if unreached:
            note(
                "reach",
                f"task {sub_id}: steps never on a sampled path: {unreached} "
                "(check the fact distributions)",
            )

    # Candidates do what their labels say, on random trajectories; and the gold rubric
    # (every persona) ranks each distractor below the correct reply on expert ones.
    for seed in range(episodes):
        rng = np.random.default_rng(10_000 + seed)
        conversation = Conversation(domain, rng)
        for _ in range(12):
            if conversation.over:
                break
            state = conversation.state
            step = state.current_step
            assert step is not None  # (the conversation is not over)
            options = propose(state, candidates, rng)
            for c in options:
                report.proposed[c.label] += 1
                a = state.assess(c.text)
                if not label_holds(c.label, a, domain):
                    note(
                        "label",
                        f"task {state.scenario.subflow}, step {step.id}: a candidate labelled "
                        f"{c.label!r} does not do what its label says: {c.text!r} "
                        f"(violations {a.violations})",
                    )
            conversation.turn(options[int(rng.integers(len(options)))].text)
    missing = sorted(set(domain.failure_types) - set(report.proposed))
    if missing:
        note("types", f"failure types never proposed: {missing}")

    rubrics = [RubricRewardModel(p) for p in personas(domain)]
    for seed in range(min(episodes, 150)):
        rng = np.random.default_rng(20_000 + seed)
        conversation = Conversation(domain, rng)
        while not conversation.over:
            state = conversation.state
            step = state.current_step
            assert step is not None  # (the conversation is not over)
            options = propose(state, 10, rng)
            batch = [Exchange(state.scenario, state.history, c.text, state) for c in options]
            correct = [c.label for c in options].index(CORRECT)
            for rubric in rubrics:
                scores = rubric.score(batch)
                for c, score in zip(options, scores, strict=True):
                    if c.label != CORRECT and score >= scores[correct]:
                        note(
                            "rank",
                            f"persona {rubric.persona}, task {state.scenario.subflow}, step "
                            f"{step.id}: a {c.label!r} reply scores {score:.2f}, "
                            f"the correct one {scores[correct]:.2f}: {c.text!r}",
                        )
            conversation.turn(expert_reply(state, rng))

    if report.expert_success < min_expert:
        report.problems.append(
            f"expert success {report.expert_success:.1%} is below {min_expert:.0%}"
        )
    if report.random_success > max_random:
        report.problems.append(
            f"random choice succeeds {report.random_success:.1%} of the time "
            f"(more than {max_random:.0%})"
        )
    for kind in ("reach", "types", "label", "rank", "expert"):
        report.problems.extend(problems[kind])
    return report


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-domain",
        help="check a domain folder (or a built-in domain) by playing its tasks",
        description=(
            "Load a domain (which checks its data), then play conversations: the expert must "
            "succeed, random choice must not, every step must be reachable, every candidate must "
            "do what its failure type says and score below the correct reply under every rubric "
            "persona. Exits 1 and lists the problems, with the task, step and reply, if any."
        ),
    )
    parser.add_argument("domain", help="a built-in domain name or the path of a domain folder")
    parser.add_argument(
        "--episodes", type=int, default=300, help="conversations per check (default 300)"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise SystemExit("rlhf-envs check-domain: --episodes must be at least 1")
    try:
        report = check_domain(args.domain, episodes=args.episodes)
    except (DomainError, PolicyBookError) as exc:
        print(f"rlhf-envs check-domain: the domain does not load: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 1 if report.problems else 0
