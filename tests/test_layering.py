"""The dependency rules of DESIGN.md, checked on the source: ``rlhf_envs`` never imports
``agents``; reward models never import the env, the vector env or the interfaces; a domain
under ``tasks/`` never imports the env, the interfaces or the language model; ``lm/`` (the
bottom layer) imports none of the env, interfaces, rewards or feedback (its build reads
expert transcripts from ``tasks``, which never import it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlhf_envs"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


RULES = [
    ("", ("agents",)),
    ("rewards", ("rlhf_envs.env", "rlhf_envs.vector", "rlhf_envs.interfaces")),
    ("tasks", ("rlhf_envs.env", "rlhf_envs.vector", "rlhf_envs.interfaces", "rlhf_envs.feedback", "rlhf_envs.lm")),
    ("lm", ("rlhf_envs.env", "rlhf_envs.vector", "rlhf_envs.interfaces", "rlhf_envs.rewards", "rlhf_envs.feedback")),
]


@pytest.mark.parametrize("folder, forbidden", RULES, ids=["rlhf_envs", "rewards", "tasks", "lm"])
def test_imports_point_one_way(folder, forbidden):
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files
    bad = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in files
        for module in sorted(imported_modules(path))
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]
    assert not bad, "\n".join(bad)
