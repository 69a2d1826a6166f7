"""The comparison harness on a tiny budget, run as a user runs it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlhf_agents.compare import CompareConfig, Run, leaderboard_rows, plan
from rlhf_agents.registry import resolve_agents


def _compare_args(out: Path, *args: str) -> list[str]:
    return [
        "compare",
        "--envs",
        "RLHF-Chat-v0",
        "--seeds",
        "2",
        "--steps",
        "512",
        "--scenarios",
        "4",
        "--tries",
        "2",
        "--curve-points",
        "2",
        "--curve-scenarios",
        "2",
        "--n-envs",
        "2",
        "--transcripts",
        "2",
        "--jobs",
        "2",
        "--out",
        str(out),
        *args,
    ]


def _compare(out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlhf_envs.cli", *_compare_args(out, *args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_compare_writes_every_output_and_resumes(tmp_path):
    out = tmp_path / "results"
    first = _compare(out, "--agents", "random,ppo")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "4 runs: 0 finished before, 4 to do, 2 in parallel" in first.stdout
    assert "| ppo |" in first.stdout and "| random |" in first.stdout
    assert "runs:" in first.stderr and "ppo s0" in first.stderr  # progress bars

    with open(out / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["agent"] for r in rows} == {"random", "ppo"}
    expected = {
        "env",
        "reward",
        "agent",
        "runs",
        "episodes",
        "return",
        "return_lo",
        "return_hi",
        "gold",
        "gold_lo",
        "gold_hi",
        "success",
        "success_lo",
        "success_hi",
        "satisfaction",
        "satisfaction_lo",
        "satisfaction_hi",
        "gold_iqm",
        "gold_iqm_lo",
        "gold_iqm_hi",
        "p_improve",
        "p_improve_over",
        "pass^1",
        "pass^2",
        "pass@1",
        "pass@2",
        "train_minutes",
        "deterministic",
    }
    assert set(rows[0]) == expected
    for r in rows:
        assert r["runs"] == "2" and r["episodes"] == str(2 * 4 * 2)
        assert float(r["gold_lo"]) <= float(r["gold"]) <= float(r["gold_hi"])
        assert (
            float(r["pass^2"]) <= float(r["pass^1"]) == pytest.approx(float(r["success"]), abs=1e-4)
        )
    random_row = next(r for r in rows if r["agent"] == "random")
    assert float(random_row["p_improve"]) == 0.5 and random_row["p_improve_over"] == "random"
    assert (
        "| agent | return | gold reward | success | satisfaction | gold IQM | P(> random) "
        "| pass^1 | pass^2 |" in (out / "leaderboard.md").read_text()
    )
    assert (out / "improvement.csv").read_text().startswith("env,reward,agent,over_agent,p_improve")
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Transcripts: the same held-out scenarios for every agent.
    headers = {}
    for agent in ("random", "ppo"):
        text = (out / "transcripts" / "RLHF-Chat-v0" / "default" / f"{agent}.md").read_text()
        headers[agent] = [
            line.split(":")[0] for line in text.splitlines() if line.startswith("## scenario")
        ]
        assert "User: " in text
    assert headers["random"] == headers["ppo"] == ["## scenario 1000000", "## scenario 1000001"]

    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == [0, 1] and run["scenario_seeds"] == [1_000_000 + j for j in range(4)]
    assert "compare" in run["command"] and run["versions"]["gymnasium"] and "git_revision" in run
    assert run["runs_executed"] == 4 and len(run["invocations"]) == 1

    # The learning curve has the untrained point and two more; the checkpoint is safetensors + JSON.
    result = json.loads(
        (out / "runs" / "RLHF-Chat-v0" / "default" / "ppo" / "seed-0" / "result.json").read_text()
    )
    assert [p["step"] for p in result["curve"]] == [0, 256, 512]
    assert np.array(result["success"]).shape == (4, 2)
    checkpoint = out / "runs" / "RLHF-Chat-v0" / "default" / "ppo" / "seed-0" / "checkpoint"
    assert sorted(p.name for p in checkpoint.iterdir()) == ["agent.json", "policy.safetensors"]

    # Rerun with one more agent: the four finished runs are reused, only expert runs.
    second = _compare(out, "--agents", "random,ppo,expert")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "6 runs: 4 finished before, 2 to do" in second.stdout
    assert "2 runs executed, 4 reused" in second.stdout
    with open(out / "leaderboard.csv") as f:
        rows2 = {r["agent"]: r for r in csv.DictReader(f)}
    assert rows2["ppo"]["gold"] == next(r for r in rows if r["agent"] == "ppo")["gold"]
    assert float(rows2["expert"]["success"]) > 0.9
    run = json.loads((out / "run.json").read_text())
    assert [i["runs_executed"] for i in run["invocations"]] == [4, 2] and run["runs_reused"] == 4


def test_compare_rejects_bad_input_with_a_clear_message(tmp_path, cli):
    out = cli(*_compare_args(tmp_path, "--agents", "random,sac"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "unknown agent(s) ['sac']" in out.stderr and "ppo" in out.stderr
    out = cli(*_compare_args(tmp_path, "--agents", "ppo", "--envs", "RLHF-ChatText-v0"))
    assert out.returncode == 2 and "needs the select interface" in out.stderr
    out = cli(*_compare_args(tmp_path, "--agents", "ppo", "--tries", "0"))
    assert out.returncode == 2 and "tries must be at least 1" in out.stderr
    assert not (tmp_path / "leaderboard.md").exists()


def test_changed_settings_rerun_a_finished_run(tmp_path):
    agents = resolve_agents(["expert"])
    cfg = CompareConfig(
        agents=agents, envs=["RLHF-Tiny-v0"], seeds=[0], steps=100, scenarios=2, tries=1, jobs=1
    )
    run = plan(cfg)[0]
    assert isinstance(run, Run)
    from rlhf_agents.compare import execute, load_finished

    execute(run, cfg, run.folder(tmp_path))
    assert load_finished(run, cfg, tmp_path) is not None
    more = CompareConfig(
        agents=agents, envs=["RLHF-Tiny-v0"], seeds=[0], steps=100, scenarios=3, tries=1, jobs=1
    )
    assert load_finished(run, more, tmp_path) is None  # 3 scenarios now: not the same run
    (run.folder(tmp_path) / "result.json").write_text("{truncated")
    assert load_finished(run, cfg, tmp_path) is None  # unreadable: redone, not trusted


def test_leaderboard_rows_from_hand_made_results():
    agents = resolve_agents(["random", "expert"])
    cfg = CompareConfig(
        agents=agents, envs=["RLHF-Tiny-v0"], seeds=[0, 1], scenarios=2, tries=2, jobs=1
    )
    runs = [Run(a, "RLHF-Tiny-v0", None, s) for a in agents for s in (0, 1)]

    def result(gold, success):
        return {
            "ret": gold,
            "gold": gold,
            "success": success,
            "satisfaction": [[0.5, 0.5]] * 2,
            "train_seconds": 0.0,
            "deterministic": True,
        }

    results = {
        runs[0]: result([[0.0, 0.0], [1.0, 1.0]], [[0, 0], [0, 1]]),
        runs[1]: result([[0.0, 2.0], [1.0, 1.0]], [[0, 0], [1, 1]]),
        runs[2]: result([[5.0, 5.0], [5.0, 5.0]], [[1, 1], [1, 1]]),
        runs[3]: result([[5.0, 5.0], [5.0, 5.0]], [[1, 1], [1, 0]]),
    }
    rows = {r["agent"]: r for r in leaderboard_rows(cfg, runs, results)}
    assert rows["random"]["gold"] == pytest.approx(
        0.75
    )  # (seed, scenario) means of tries: 0, 1, 1, 1
    assert rows["random"]["pass^1"] == pytest.approx(3 / 8)
    assert rows["random"]["pass^2"] == pytest.approx(
        1 / 4
    )  # only (seed 1, scenario 1) succeeds twice
    assert rows["expert"]["pass^2"] == pytest.approx(3 / 4)
    assert rows["expert"]["p_improve"] == 1.0 and rows["random"]["p_improve"] == 0.5


def test_duplicate_runs_and_folder_collisions_are_refused():
    agents = resolve_agents(["expert"])
    with pytest.raises(ValueError, match=r"seeds are listed more than once: \['0'\]"):
        CompareConfig(agents=agents, envs=["RLHF-Tiny-v0"], seeds=[0, 0])
    with pytest.raises(ValueError, match="envs are listed more than once"):
        CompareConfig(agents=agents, envs=["RLHF-Tiny-v0", "RLHF-Tiny-v0"])
    from rlhf_agents.registry import AgentSpec

    twins = [AgentSpec("my agent", "expert"), AgentSpec("my_agent", "expert")]
    with pytest.raises(
        ValueError, match="agents 'my agent' and 'my_agent' would share the results folder"
    ):
        plan(CompareConfig(agents=twins, envs=["RLHF-Tiny-v0"]))


def test_a_failed_run_does_not_cost_the_others(tmp_path):
    from rlhf_agents.compare import RunsFailedError, run_comparison

    config = tmp_path / "agents.yaml"
    config.write_text("ppo-broken:\n  base: ppo\n  hyperparams: {n_steps: 0}\n")
    cfg = CompareConfig(
        agents=resolve_agents(["expert", "ppo-broken"], config),
        envs=["RLHF-Tiny-v0"],
        seeds=[0],
        steps=64,
        scenarios=2,
        tries=1,
        jobs=1,
    )
    with pytest.raises(
        RunsFailedError, match=r"(?s)1 of 2 runs failed.*ppo-broken on RLHF-Tiny-v0.*n_steps=0"
    ):
        run_comparison(cfg, tmp_path / "out", progress=False)
    assert "| expert |" in (tmp_path / "out" / "leaderboard.md").read_text()


def test_changed_evaluation_settings_re_evaluate_without_retraining(tmp_path):
    from rlhf_agents.compare import run_comparison

    def cfg(scenarios):
        return CompareConfig(
            agents=resolve_agents(["ppo"]),
            envs=["RLHF-Tiny-v0"],
            seeds=[0],
            steps=256,
            scenarios=scenarios,
            tries=1,
            curve_points=2,
            curve_scenarios=2,
            n_envs=2,
            jobs=1,
        )

    run_comparison(cfg(2), tmp_path, progress=False)
    folder = tmp_path / "runs" / "RLHF-Tiny-v0" / "default" / "ppo" / "seed-0"
    first = json.loads((folder / "result.json").read_text())
    weights = (folder / "checkpoint" / "policy.safetensors").stat().st_mtime_ns
    summary = run_comparison(cfg(3), tmp_path, progress=False)
    second = json.loads((folder / "result.json").read_text())
    assert summary["ran"] == 1 and len(second["gold"]) == 3
    assert second["curve"] == first["curve"] and second["train_seconds"] == first["train_seconds"]
    assert (
        folder / "checkpoint" / "policy.safetensors"
    ).stat().st_mtime_ns == weights  # not retrained
    assert second["gold"][:2] == first["gold"]  # the same agent on the same first two scenarios
