"""A short soak of the label server (benchmarks/label_soak.py): annotators at once,
leases expiring, a SIGKILL and a restart; nothing lost or doubled, every pair labelled
exactly as often as it wants. The full run (about 20,000 requests) is in the README."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "label_soak.py"


def test_a_short_soak_loses_and_doubles_nothing(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("label_soak", SCRIPT)
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    args = ["--pairs", "160", "--clients", "4", "--max-seconds", "240", "--out", str(tmp_path)]
    status = soak.main(args)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0, result
    assert result["killed_and_restarted"] and result["lost"] == 0 and result["doubled"] == 0
    assert result["pairs_off_wanted"] == 0 and result["labels"] == result["labels_wanted"] == 200
