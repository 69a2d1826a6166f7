"""Bad input to the command line and the env, as a new user meets it: one line naming
what was wrong, exit status 2, no traceback, no work done first and nothing overwritten
(issue: harden the human-feedback loop and the command line, findings 1, 4, 6-8)."""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import pytest

from rlhf_envs.cli import build_parser, main

pytestmark = pytest.mark.integration

PAIR = '{"prompt": "User: hi", "chosen": "Hello! How can I help?", "rejected": "Go away."}\n'


def _refused(out, *words: str) -> str:
    """The command refused its input the documented way; returns its one line."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_every_command_prints_its_help():
    """Finding 1: `collect --help` crashed on a % in a help string."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"collect", "label", "train-rm", "train-lm", "feedback"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        assert sub.format_help(), name
        for action in sub._actions:  # nested subcommands (feedback import|export|...)
            if isinstance(action, argparse._SubParsersAction):
                for nested in action.choices.values():
                    assert nested.format_help()
    shown = " ".join(commands.choices["collect"].format_help().split())
    assert "random: random action 100% of turns" in shown


def test_unreadable_feedback_files_are_named_by_line(tmp_path, cli):
    (tmp_path / "folder").mkdir()
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "big.jsonl").write_text(PAIR[:-2] + ', "n": ' + "9" * 5000 + "}\n")
    (tmp_path / "surrogate.jsonl").write_text(PAIR.replace("Hello!", "Hello \\ud800!"))
    cases = {
        "folder": "is a folder",
        "deep.jsonl": "line 1: JSON nested too deeply",
        "big.jsonl": "line 1: not readable JSON",
        "surrogate.jsonl": "line 1: a text holds a lone surrogate",
    }
    for name, reason in cases.items():
        _refused(cli("train-rm", "--data", name, "--out", "rm"), name, reason)
        _refused(cli("feedback", "import", name, "--db", "f.sqlite"), reason)
        assert not (tmp_path / "f.sqlite").exists()  # checked before the database is made
    (tmp_path / "ok.jsonl").write_text(PAIR)
    assert cli("train-rm", "--data", "ok.jsonl", "--out", "rm", "--validation", "0").returncode == 0
    for name, reason in cases.items():
        _refused(cli("eval-rm", "--data", name, "--rm", "rm"), reason)


def test_unknown_ids_and_bad_numbers_are_refused_before_any_work(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("RLHF_ENVS_CACHE", str(tmp_path / "cache"))  # an LM build would land here
    line = _refused(cli("collect", "--env", "RLHF-Chat-v1", "--pairs", "3", "--out", "x.jsonl"))
    assert "unknown env id 'RLHF-Chat-v1'" in line and "RLHF-Chat-v0" in line
    line = _refused(cli("collect", "--env", "RLHF-ChatText-v0", "--pairs", "3", "--out", "x"))
    assert "text interface" in line and "select" in line
    _refused(cli("label", "--db", "new.sqlite", "--env", "RLHF-Nope-v0"), "unknown env id")
    # No access control is offered to other machines.
    _refused(cli("label", "--db", "new.sqlite", "--open", "--host", "0.0.0.0"), "127.0.0.1 only")
    assert not (tmp_path / "new.sqlite").exists()
    _refused(cli("demo", "--steps", "-5"), "steps must be at least 1")
    _refused(cli("train-rm", "--data", "x.jsonl", "--out", "rm", "--model", "bogus"), "'bogus'")
    assert "internet" not in cli("train-rm", "--data", "x", "--out", "rm", "--model", "b").stderr
    _refused(cli("retrain", "--db", "f.sqlite", "--rm-dir", "rms", "--policy", "/missing"))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "rms").exists()


def test_debug_shows_the_traceback(cli):
    with pytest.raises(ValueError, match="steps must be at least 1"):
        main(["--debug", "demo", "--steps", "-5"])


def test_a_checkpoint_is_replaced_only_with_force_and_other_files_are_kept(tmp_path, cli):
    (tmp_path / "ok.jsonl").write_text(PAIR * 3)
    assert cli("train-rm", "--data", "ok.jsonl", "--out", "rm", "--validation", "0").returncode == 0
    (tmp_path / "rm" / "notes.txt").write_text("mine")
    _refused(cli("train-rm", "--data", "ok.jsonl", "--out", "rm", "--validation", "0"), "--force")
    out = cli(
        "train-rm",
        "--data",
        "ok.jsonl",
        "--out",
        "rm",
        "--validation",
        "0",
        "--force",
        "--seed",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rm" / "notes.txt").read_text() == "mine"
    assert (
        json.loads((tmp_path / "rm" / "config.json").read_text())["training"]["settings"]["seed"]
        == 1
    )
    # One pair: an honest interval, not [1.000, 1.000].
    (tmp_path / "one.jsonl").write_text(PAIR)
    out = cli("eval-rm", "--data", "one.jsonl", "--rm", "rm", "--json")
    low, high = json.loads(out.stdout.strip().splitlines()[-1])["ci95"]
    assert high - low > 0.5


def test_importing_a_file_twice_adds_nothing_the_second_time(tmp_path, cli):
    (tmp_path / "two.jsonl").write_text(PAIR + PAIR.replace("hi", "hello"))
    out = cli("feedback", "import", "two.jsonl", "--db", "f.sqlite")
    assert "2 comparisons, 2 labels, 0 duplicates" in out.stdout
    out = cli("feedback", "import", "two.jsonl", "--db", "f.sqlite")
    assert "0 comparisons, 0 labels, 2 duplicates" in out.stdout
    assert "2 comparisons, 2 labels" in cli("feedback", "info", "--db", "f.sqlite").stdout


def test_a_domain_with_broken_yaml_is_named_by_file_and_line(tmp_path, cli):
    import shutil

    from rlhf_envs.simulation import get_domain

    shutil.copytree(get_domain("tiny").folder, tmp_path / "mine")
    (tmp_path / "mine" / "slots.yaml").write_text("slots:\n  a: [1, 2\n  b: 3\n")
    out = cli("check-domain", "mine")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "slots.yaml, line 3" in out.stderr and "not valid YAML" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_env_arguments_actions_and_reset_options_are_checked():
    with pytest.raises(ValueError, match="kl_coef must be a finite number, got '0.1'"):
        gym.make("RLHF-ChatTokens-v0", kl_coef="0.1")
    env = gym.make("RLHF-Tiny-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action inf is not valid"):
        env.step(float("inf"))
    with pytest.raises(TypeError, match="takes a dict or None"):
        env.reset(options="x")
    with pytest.raises(ValueError, match="'scenario_sed' are not known; accepted: scenario_seed"):
        env.reset(options={"scenario_sed": 3})
    env.reset(options={"scenario_seed": 3})  # the documented key still works
