"""The package's layers, checked on the source (DESIGN.md, "Layout").

Every import counts, also one inside a function: an import moved into a function to
dodge a cycle hides the cycle instead of removing it. Two things do not count, and why:

- imports under ``if TYPE_CHECKING:`` never run; they count for the layer rules (a
  reward model may not even name the env's types) but not for cycles, since a pair of
  modules that name each other's types only for the type checker import nothing at run
  time (the dialogue state and its assessment do);
- the implicit import of a parent package (``import rlhf_envs.rewards.rubric`` first
  runs ``rlhf_envs/__init__.py``), which every Python package has.

The layers, bottom up (each may import only what its row allows; see ``ALLOWED``)::

    dialogue                      turns, roles, the transcript formats: imports nothing
    env_ids                       which ids are registered, with which interface
    files                         umask-respecting folders, private files
    preference_data               records and their files: dialogue only
    simulation, domains           the dialogue engine; domain folders (data + hooks)
    words, lm                     hashed-encoder words; the reference LM
    rewards                       reward models (rubric, learned, fluency, mixes)
    interfaces, rendering         how an agent acts and observes
    feedback, domain_check        the human-feedback loop; check-domain
    audit_command                 audit-rm: env contexts and simulated labels for the audit
    env, vector, sb3, cli         the env and what wraps it
    rollouts                      LM policies playing whole conversations (vector env)
    serving                       servers: an id over OpenEnv, an LM over the chat API
    rlhf_agents (agents/)         never imported by rlhf_envs
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rlhf_envs"
AGENTS = ROOT / "agents"  # installed as rlhf_agents

# Group (the part after ``rlhf_envs.``) -> the groups it may import besides itself.
_BELOW_REWARDS = {
    "dialogue",
    "preference_data",
    "simulation",
    "lm",
    "words",
    "statistics",
    "files",
}
ALLOWED: dict[str, set[str]] = {
    "dialogue": set(),
    "statistics": set(),
    "env_ids": set(),
    "files": set(),
    "preference_data": {"dialogue"},
    "simulation": {"dialogue"},
    "domains": {"simulation"},
    "words": {"simulation"},
    "lm": {"dialogue", "simulation", "files"},
    "rewards": set(_BELOW_REWARDS),
    "interfaces": {"dialogue", "simulation", "lm", "words"},
    "rendering": {"dialogue"},
    "feedback": _BELOW_REWARDS | {"rewards", "env_ids"},
    "domain_check": {"dialogue", "simulation", "rewards"},
    "audit_command": {"", "env_ids", "feedback", "preference_data", "rewards"},
    "env": {"dialogue", "simulation", "lm", "rewards", "interfaces", "rendering"},
    "vector": {"dialogue", "simulation", "lm", "rewards", "interfaces", "env"},
    "sb3": {"vector", "env"},
    "rollouts": {"dialogue", "lm", "rewards", "interfaces", "vector"},
    "serving": {"dialogue", "env_ids", "lm"},
    "cli": {"", "rewards", "env_ids"},
    "tasks": {"simulation", "domains", "domain_check"},  # the old name, kept for imports
    "": {"dialogue", "env", "env_ids"},  # rlhf_envs/__init__.py
}
# Modules held to less than their group allows.
ALLOWED_MODULES: dict[str, set[str]] = {
    "rlhf_envs.preference_data.records": set(),
}


def modules(folder: Path, name: str) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under ``folder`` (the package ``name``)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [name, *path.relative_to(folder).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


ALL = {**modules(PACKAGE, "rlhf_envs"), **modules(AGENTS, "rlhf_agents")}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports(module: str) -> Iterator[tuple[str, bool]]:
    """``(imported module, under TYPE_CHECKING)`` for every import in ``module``, with
    ``from package import submodule`` resolved to the submodule."""
    path = ALL[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno in typing_only
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in ALL else base), node.lineno in typing_only


def own(name: str) -> str | None:
    """The project module that ``import name`` runs (longest known prefix), if any."""
    while name and name not in ALL:
        name = name.rpartition(".")[0]
    return name or None


def group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def edges(include_type_checking: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in ALL}
    for module in ALL:
        for name, typing_only in imports(module):
            target = own(name)
            if target and target != module and (include_type_checking or not typing_only):
                graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(edges(include_type_checking=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_part_of_the_package_has_a_place_in_the_layers():
    groups = {group(m) for m in ALL if m.startswith("rlhf_envs")}
    assert groups <= set(ALLOWED), f"add {sorted(groups - set(ALLOWED))} to ALLOWED in {__file__}"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    graph = edges(include_type_checking=True)
    bad = []
    for module, targets in sorted(graph.items()):
        if not module.startswith("rlhf_envs") or group(module) != layer:
            continue
        allowed = ALLOWED_MODULES.get(module, ALLOWED[layer] | {layer})
        for target in sorted(targets):
            if target.startswith("rlhf_agents"):
                bad.append(f"{module} imports {target}: rlhf_envs never imports the agents")
            elif target.startswith("rlhf_envs") and group(target) not in allowed:
                below = f"{group(target) or 'rlhf_envs'} is not below {layer or 'rlhf_envs'}"
                bad.append(f"{module} imports {target} ({below})")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_agents_folder_by_its_folder_name():
    # The folder installs as rlhf_agents; `import agents` would find the OpenAI Agents
    # SDK's package (or nothing) once installed.
    users = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("rlhf_envs", "agents", "tests", "examples", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imported_names(path)
        if name == "agents" or name.startswith("agents.")
    ]
    assert not users, "\n".join(users)


def _imported_names(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
