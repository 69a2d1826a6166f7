"""The examples and the command line run as a user would run them (tiny budgets)."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_ppo_example_runs_with_a_tiny_budget():
    module = runpy.run_path(str(ROOT / "examples" / "train_ppo.py"))
    result = module["main"](module["Args"](steps=1024, episodes=3))
    assert 0.0 <= result["ppo_success"] <= 1.0


def test_cli_lists_envs_and_reward_models():
    out = subprocess.run(
        [sys.executable, "-m", "rlhf_envs.cli", "envs"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "RLHF-Chat-v0" in out.stdout and "rubric" in out.stdout


@pytest.mark.timeout(600)
def test_demo_prints_a_leaderboard_with_every_agent(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_envs.cli",
            "demo",
            "--steps",
            "1024",
            "--episodes",
            "4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for agent in ("expert", "random", "best-of-n", "ppo", "ppo-mlp", "a2c", "dqn"):
        assert f"| {agent} |" in out.stdout
        transcript = (
            tmp_path / "transcripts" / "RLHF-Chat-v0" / "default" / f"{agent}.md"
        ).read_text()
        assert "User: " in transcript and f"# {agent} on RLHF-Chat-v0" in out.stdout
    assert "deterministic (greedy)" in out.stdout
    assert (
        (tmp_path / "leaderboard.csv")
        .read_text()
        .startswith("env,reward,agent,runs,episodes,return")
    )


def test_learned_reward_example_runs_with_a_tiny_budget(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "learned_reward.py"))
    result = module["main"](
        module["Args"](pairs=300, steps=1024, episodes=3, out=str(tmp_path / "rm"))
    )
    assert result["rm_accuracy"] > 0.6
    assert (tmp_path / "rm" / "model.safetensors").is_file()


def _cli(*args, cwd):
    out = subprocess.run(
        [sys.executable, "-m", "rlhf_envs.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    return out


def test_collect_train_eval_commands_end_to_end(tmp_path):
    out = _cli(
        "collect", "--env", "RLHF-Tiny-v0", "--pairs", "400", "--out", "prefs.jsonl", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote 400 pairs to prefs.jsonl" in out.stdout
    assert "collect pairs" in out.stderr  # the progress bar
    out = _cli(
        "collect",
        "--env",
        "RLHF-Tiny-v0",
        "--pairs",
        "200",
        "--seed",
        "1",
        "--out",
        "test.jsonl",
        "--no-progress",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    out = _cli(
        "train-rm",
        "--data",
        "prefs.jsonl",
        "--model",
        "linear",
        "--out",
        "rm",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained linear preference model on" in out.stdout
    assert f'reward="learned:{tmp_path / "rm"}"' in out.stdout  # absolute: works from anywhere
    out = _cli("eval-rm", "--data", "test.jsonl", "--rm", "rm", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["pairs"] == 200 and 0.6 < result["accuracy"] <= 1.0
    assert result["ci95"][0] < result["accuracy"] < result["ci95"][1] and result["ceiling"] > 0.6


def test_rm_commands_report_bad_input_without_a_traceback(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "User: hi", "chosen": "Hello"}\n')
    out = _cli("train-rm", "--data", "bad.jsonl", "--out", "rm", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "bad.jsonl, line 1" in out.stderr and "rejected" in out.stderr
    out = _cli("eval-rm", "--data", "bad.jsonl", "--rm", "missing", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "'missing' does not exist; expected a folder with config.json" in out.stderr
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "good.jsonl").write_text(
        '{"prompt": "User: hi", "chosen": "Hello!", "rejected": "Go away."}\n'
    )
    out = _cli("train-rm", "--data", "good.jsonl", "--out", "notes", cwd=tmp_path)
    assert out.returncode != 0 and "is not a reward-model checkpoint" in out.stderr
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    out = _cli(
        "collect", "--pairs", "5", "--out", "x.jsonl", "--annotators", "balanced=lots", cwd=tmp_path
    )
    assert out.returncode != 0 and "NAME=WEIGHT" in out.stderr


def test_check_domain_command_passes_a_domain_and_explains_a_folder_that_is_not_one(tmp_path):
    out = _cli("check-domain", "tiny", "--episodes", "30", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "expert success 100.0%" in out.stdout and "no problems found" in out.stdout
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hooks.py").write_text("DECISIONS = {}\n")
    out = _cli("check-domain", "mine", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "the domain does not load" in out.stderr and "policy.yaml" in out.stderr


def test_rlhf_tokens_example_runs_with_a_tiny_budget(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "rlhf_tokens.py"))
    result = module["main"](module["Args"](steps=1024, episodes=2, out=str(tmp_path / "tuned")))
    assert result["kl"] >= -1e-3 and abs(result["ppo_gold"]) < 100
    assert (tmp_path / "tuned" / "model.safetensors").is_file()


def test_custom_reward_example_trains_against_its_plugin():
    module = runpy.run_path(str(ROOT / "examples" / "custom_reward.py"))
    result = module["main"](module["Args"](steps=512, episodes=3))
    assert 0.0 <= result["success"] <= 1.0 and result["words_per_reply"] > 0
    from rlhf_envs.rewards.registry import make_reward_model

    assert "brevity" in make_reward_model("brevity:10").name  # the plugin stays registered by name


@pytest.mark.timeout(600)
def test_compare_reward_models_example_trains_one_agent_per_reward(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "compare_reward_models.py"))
    gold = module["main"](
        module["Args"](steps=512, seeds=1, scenarios=3, out=str(tmp_path), jobs=1)
    )
    assert set(gold) == {"rubric:warm", "rubric:stickler"}
    assert (tmp_path / "leaderboard.md").read_text().count("### RLHF-Chat-v0") == 2


def test_evaluate_saved_agent_example_loads_a_checkpoint(tmp_path):
    from rlhf_agents.checkpoint import save_agent
    from rlhf_agents.training import HYPERPARAMS, train

    model = train("ppo", "RLHF-Chat-v0", total_timesteps=256, n_envs=2, n_steps=128, batch_size=128)
    save_agent(
        model,
        tmp_path / "ckpt",
        algo="ppo",
        policy="candidate",
        env_id="RLHF-Chat-v0",
        hyperparams={**HYPERPARAMS["ppo"], "n_steps": 128, "batch_size": 128},
    )
    module = runpy.run_path(str(ROOT / "examples" / "evaluate_saved_agent.py"))
    result = module["main"](module["Args"](checkpoint=str(tmp_path / "ckpt"), episodes=3))
    assert 0.0 <= result["success"] <= 1.0
    with pytest.raises(FileNotFoundError, match="is not an agent checkpoint"):
        module["main"](module["Args"](checkpoint=str(tmp_path), episodes=1))


def test_benchmark_suite_prints_tables_and_writes_csv(tmp_path):
    """A smoke run of two cheap sections: the command, its tables and its CSV (the
    figures themselves are for `make bench`, not for assertions)."""
    import csv

    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "suite.py"),
        "--quick",
        "--sections",
        "kl,length",
        "--out",
        str(tmp_path),
    ]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "## kl" in run.stdout and "## length" in run.stdout and "| case | value |" in run.stdout
    with open(tmp_path / "benchmarks.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["section"] for r in rows} == {"kl", "length"}
    assert all(float(r["value"]) > 0 for r in rows)
    assert any(r["target"] == "<= 1.5" and r["met"] in ("yes", "NO") for r in rows)
    bad = subprocess.run(
        [*command[:2], "--sections", "nope"], check=False, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown sections ['nope']" in bad.stderr


def test_cross_domain_benchmark_trains_on_each_domain_and_evaluates_on_all(tmp_path):
    """A smoke run with a tiny budget: every train x eval cell is filled and the table has
    a row per training domain (the figures are for `make cross-domain`)."""
    import csv

    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "cross_domain.py"),
        "--steps",
        "64",
        "--seeds",
        "1",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
    ]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {(r["train"], r["eval"]) for r in rows} == {
        (t, e)
        for t in ("customer service", "finance", "medical", "all three")
        for e in ("customer service", "finance", "medical")
    }
    assert all(json.loads(r["chosen"]) for r in rows)
    table = (tmp_path / "table.md").read_text()
    assert table.count("\n") == 8 and "| all three |" in table


def test_feedback_store_example_runs_with_a_tiny_budget(tmp_path):
    module = runpy.run_path(str(ROOT / "examples" / "feedback_store.py"))
    result = module["main"](
        module["Args"](db=str(tmp_path / "f.sqlite"), rm_dir=str(tmp_path / "rms"), pairs=120)
    )
    assert result["accuracy"] > 0.6
    assert result["exported"] >= 240
    assert (tmp_path / "rms" / "current" / "model.safetensors").is_file()
