"""The benchmark scripts run as a smoke test with tiny budgets: their command line, tables
and CSV files (the figures themselves are for `make bench` and `make cross-domain`)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.lm
def test_benchmark_suite_prints_tables_and_writes_csv(tmp_path):
    """A smoke run of two cheap sections: the command, its tables and its CSV (the
    figures themselves are for `make bench`, not for assertions)."""
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "suite.py"),
        "--smoke",
        "--sections",
        "kl,length",
        "--out",
        str(tmp_path),
    ]
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "## kl" in run.stdout and "## length" in run.stdout and "| case | value |" in run.stdout
    # The tokens and text ids need the reference LM: it is found (or built) first, as a
    # step of its own, before any section times anything.
    assert run.stdout.index("## reference LM") < run.stdout.index("## kl")
    with open(tmp_path / "benchmarks.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["section"] for r in rows} == {"kl", "length"}
    assert all(float(r["value"]) > 0 for r in rows)
    assert any(r["target"] == "<= 1.5" and r["met"] in ("yes", "NO") for r in rows)
    bad = subprocess.run(
        [*command[:2], "--sections", "nope"], check=False, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown sections ['nope']" in bad.stderr


@pytest.mark.parametrize("extra", [[], ["--fixed-observation"]])
def test_step_ratio_prints_the_ratio_to_cartpole(extra):
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "step_ratio.py"),
            "RLHF-Tiny-v0",
            "--rounds",
            "1",
            "--steps",
            "50",
            *extra,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ratio = float(run.stdout.split("ratio ")[1].split(",")[0])
    assert "CartPole-v1" in run.stdout and "RLHF-Tiny-v0" in run.stdout and 0 < ratio < 1


def test_cross_domain_benchmark_trains_on_each_domain_and_evaluates_on_all(tmp_path):
    """A smoke run with a tiny budget: every train x eval cell is filled and the table has
    a row per training domain (the figures are for `make cross-domain`)."""
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
