"""What installing the project gives: its packages, its import names, old import paths."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_installed():
    # Listed by hand in pyproject.toml (agents/ is mapped to rlhf_agents, which package
    # discovery cannot do), so a new sub-package must be added there.
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    mapped = PYPROJECT["tool"]["setuptools"]["package-dir"]
    assert mapped == {"rlhf_agents": "agents"}
    found = set()
    folders = (
        ("rlhf_envs", ROOT / "rlhf_envs"),
        ("rlhf_agents", ROOT / "agents"),
        ("rlhf_verifiers", ROOT / "rlhf_verifiers"),
    )
    for name, folder in folders:
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "these are listed but do not exist"


def test_the_agents_folder_installs_as_rlhf_agents_not_agents(tmp_path):
    # As an installed environment sees it: run from another folder, since `python -m
    # pytest` puts the repository root on sys.path. The OpenAI Agents SDK installs a
    # top-level `agents`; this project must not claim that name.
    code = (
        "import importlib.util, pathlib, rlhf_agents\n"
        "print(pathlib.Path(rlhf_agents.__file__).resolve().parent)\n"
        "spec = importlib.util.find_spec('agents')\n"
        "print(spec.origin if spec else None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    folder, agents_origin = done.stdout.split("\n")[:2]
    assert Path(folder) == ROOT / "agents"
    assert agents_origin == "None" or not agents_origin.startswith(str(ROOT)), agents_origin
    for command, target in PYPROJECT["project"]["entry-points"]["rlhf_envs.commands"].items():
        module = target.split(":")[0]
        assert module.split(".")[0] in ("rlhf_envs", "rlhf_agents"), command
        assert importlib.util.find_spec(module) is not None, f"{command}: {module} not found"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("rlhf_envs.tasks.sampling", "rlhf_envs.simulation.sampling"),
        ("rlhf_envs.tasks.domain", "rlhf_envs.simulation.domain"),
        ("rlhf_envs.tasks.check", "rlhf_envs.domain_check"),
        ("rlhf_envs.tasks.tiny", "rlhf_envs.domains.tiny"),
        ("rlhf_envs.feedback.formats", "rlhf_envs.preference_data.formats"),
        ("rlhf_envs.feedback.records", "rlhf_envs.preference_data.records"),
        ("rlhf_envs.lm.dialogue_format", "rlhf_envs.dialogue"),
    ],
)
def test_old_import_paths_give_the_module_at_its_new_home_with_a_warning(old, new):
    # In a fresh interpreter: the warning is raised once per process, at first import.
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"assert old is importlib.import_module({new!r}), old\n"
        "assert any(issubclass(w.category, DeprecationWarning) for w in caught), caught\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_old_tasks_package_still_exports_the_domain_api():
    with pytest.warns(DeprecationWarning):
        tasks = importlib.import_module("rlhf_envs.tasks")
        importlib.reload(tasks)
    from rlhf_envs import simulation

    assert tasks.get_domain is simulation.get_domain and tasks.Domain is simulation.Domain
