"""A domain: one folder of data plus a few hooks, loaded and checked.

A domain folder holds:

- ``policy.yaml``: steps, flows, subflows and their plans (``policy.py``);
- ``slots.yaml``: what a user can be asked for and which facts are private;
- ``actions.yaml``: the actions an agent can take and how a reply says it took them;
- ``agent.yaml``: model phrasings and distractor ingredients;
- ``user.yaml``: personas, openings and reactions of the simulated user;
- ``profiles.yaml``: what the domain's people and things look like;
- ``rubric.yaml`` (optional): the domain's changes to the scripted rubric's points and
  annotator personas (see ``rewards/rubric.py``);
- ``hooks.py``: ``sample_profile(data, rng)``, ``complete_facts(facts, data, rng)`` and
  ``DECISIONS`` (the policy's branch rules).

Nothing else is domain-specific: the env, the interfaces, the user simulator, the
candidate generator, the expert and the rubric are shared.
"""

from __future__ import annotations

import importlib
import importlib.util
import string
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import numpy as np
import yaml

from rlhf_envs.simulation.policy import PolicyBook, Step
from rlhf_envs.simulation.scenario import Scenario, sample_fact
from rlhf_envs.simulation.understanding import Lexicon
from rlhf_envs.simulation.values import extract_values

BUILTIN_DOMAINS = ("customer_service", "finance", "medical", "tiny")
# Template fields the shared machinery fills in besides the scenario's facts.
_MACHINERY_FIELDS = frozenset(
    {"verdict", "ask", "purpose", "goal", "core", "opening", "name", "value"}
)
_FILES = ("policy", "slots", "actions", "agent", "user", "profiles")
# Distractor ingredients every domain's agent.yaml gives (besides one entry per rule).
GENERIC_DISTRACTORS = ("rude", "rude_alone", "evasive", "off_topic", "filler", "leak", "invented")
# The failure types of every domain's distractors (a domain adds its own: see
# ``Domain.failure_types``), and the label of the policy-correct candidate.
FAILURE_TYPES = (
    "rude",
    "invented_fact",
    "off_policy",
    "skipped_verification",
    "privacy_leak",
    "verbose",
    "evasive",
    "off_topic",
    "repeated",
)
CORRECT = "correct"


class DomainError(ValueError):
    """A domain cannot be found or its data is inconsistent."""


@dataclass(frozen=True)
class Slot:
    """Something a user can be asked for, or a fact a reply can state."""

    id: str
    name: str
    ask: str
    synonyms: tuple[str, ...]
    say: Any  # list of templates, or {value: templates}
    private: bool


def _read_yaml(name: str, path: Path) -> Any:
    """A domain file's YAML, or a one-line :class:`DomainError` naming file and line."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DomainError(f"domain {name!r}: {where}: not valid YAML ({problem})") from None
    except UnicodeDecodeError as err:
        raise DomainError(f"domain {name!r}: {path} is not UTF-8 text ({err.reason})") from None


class Domain:
    """A loaded domain. Use ``get_domain(name_or_path)`` rather than the constructor.

    Args:
        name: the name it was looked up by (a built-in name or a folder path).
        folder: the data folder.
        hooks: the module with ``sample_profile``, ``complete_facts`` and ``DECISIONS``.
    """

    def __init__(self, name: str, folder: Path, hooks: ModuleType):
        self.name = name
        self.folder = folder
        self.hooks = hooks
        data = {}
        for stem in _FILES:
            path = folder / f"{stem}.yaml"
            if not path.exists():
                raise DomainError(
                    f"domain {name!r}: missing {path}; a domain folder needs "
                    f"{', '.join(f + '.yaml' for f in _FILES)} and hooks.py"
                )
            data[stem] = _read_yaml(name, path)
        rubric_path = folder / "rubric.yaml"
        self.rubric: Mapping[str, Any] = (
            _read_yaml(name, rubric_path) if rubric_path.exists() else {}
        )
        self.data = data
        self.decisions: Mapping[str, Callable[[Mapping[str, Any]], bool]] = dict(hooks.DECISIONS)
        self.slots = {
            sid: Slot(
                id=sid,
                name=spec.get("name", sid.replace("_", " ")),
                ask=spec.get("ask", f"your {spec.get('name', sid.replace('_', ' '))}"),
                synonyms=tuple(spec.get("synonyms", ())),
                say=spec.get("say", ()),
                private=bool(spec.get("private", False)),
            )
            for sid, spec in data["slots"].get("slots", {}).items()
        }
        fact_specs = data["slots"].get("facts", {}) or {}
        self.private_facts: tuple[str, ...] = tuple(
            [s.id for s in self.slots.values() if s.private]
            + [fid for fid, spec in fact_specs.items() if (spec or {}).get("private")]
        )
        self.fact_names = frozenset(self.slots) | frozenset(fact_specs)
        actions = data["actions"].get("actions", {})
        self.actions = {aid: dict(spec) for aid, spec in actions.items()}
        self.lexicon = Lexicon(
            slot_synonyms={s.id: (s.name, s.ask, *s.synonyms) for s in self.slots.values()},
            action_patterns={aid: spec["patterns"] for aid, spec in actions.items()},
            extra_cues=data["agent"].get("cues"),
        )
        self.policy = PolicyBook.from_data(
            data["policy"],
            source=str(folder / "policy.yaml"),
            hooks=self.decisions,
            slots=tuple(self.slots),
            facts=tuple(self.fact_names),
            actions=tuple(self.actions),
        )
        self.agent = data["agent"]
        self.user = data["user"]
        self.profiles = data["profiles"]
        self._policy_values = frozenset().union(
            *(extract_values(v) for v in self.policy.policy_values)
        )
        self._check_consistency()

    def __repr__(self) -> str:
        return f"Domain({self.name!r}, {len(self.policy.subflows)} subflows)"

    def __reduce__(self) -> tuple[Callable[[str], Domain], tuple[str]]:
        # Domains are shared and hold a module: pickle by name and look up again.
        return (get_domain, (self.name,))

    @cached_property
    def subflow_ids(self) -> tuple[str, ...]:
        return tuple(self.policy.subflows)

    def sample_scenario(
        self, rng: np.random.Generator, subflows: tuple[str, ...] | None = None
    ) -> Scenario:
        """Draw a case: task, user profile, task facts and persona, all from ``rng``."""
        ids = subflows or self.subflow_ids
        subflow = self.policy.subflows[ids[int(rng.integers(len(ids)))]]
        facts = self.hooks.sample_profile(self.profiles, rng)
        for name, spec in subflow.facts.items():
            facts[name] = sample_fact(spec, rng)
        self.hooks.complete_facts(facts, self.profiles, rng)
        persona = {
            trait: sample_fact(list(options), rng)
            for trait, options in self.user["persona"].items()
        }
        return Scenario(
            domain=self.name,
            flow=subflow.flow,
            subflow=subflow.id,
            facts=MappingProxyType(facts),
            persona=MappingProxyType(persona),
        )

    def grounded_values(self, scenario: Scenario) -> frozenset[str]:
        """Values stated by the scenario's facts or the policy book."""
        facts = (extract_values(str(v)) for v in scenario.facts.values() if v is not None)
        return self._policy_values.union(*facts)

    def fill(self, template: str, scenario: Scenario, **extra: Any) -> str:
        """Fill a template with the scenario's facts (and ``extra`` fields)."""
        if extra:
            return template.format_map(_Fields(scenario.facts, extra))
        return template.format_map(scenario.facts)

    def system_line(self, step: Step, scenario: Scenario) -> str:
        """The company system's report after ``step`` (with its decision, if any)."""
        assert step.system is not None, f"step {step.id!r} has no system line"
        verdict = ""
        if step.decide:
            verdict = step.verdict[bool(self.decisions[step.decide](scenario.facts))]
            verdict = self.fill(verdict, scenario)
        return self.fill(step.system, scenario, verdict=verdict)

    def goal(self, scenario: Scenario) -> str:
        return self.fill(self.policy.subflows[scenario.subflow].goal, scenario)

    def _check_consistency(self) -> None:
        """Catch data mistakes at load time rather than mid-episode."""
        where = f"domain {self.name!r}"
        for sub in self.policy.subflows.values():
            if sub.id not in self.user.get("openings", {}):
                raise DomainError(f"{where}: subflow {sub.id!r} has no openings in user.yaml")
            for step in sub.steps():
                if step.kind in ("act", "inform", "decline") and not step.say:
                    raise DomainError(
                        f"{where}: step {step.id!r} ({step.kind}) needs 'say' templates in "
                        "policy.yaml"
                    )
                if step.decide and not step.system:
                    raise DomainError(
                        f"{where}: step {step.id!r} decides {step.decide!r} but has no system "
                        "line to reveal it"
                    )
        for action, spec in self.actions.items():
            if "patterns" not in spec:
                raise DomainError(f"{where}: action {action!r} in actions.yaml has no patterns")
        distractors = self.agent.get("distractors", {})
        missing = [k for k in GENERIC_DISTRACTORS if not distractors.get(k)]
        if missing:
            raise DomainError(
                f"{where}: agent.yaml distractors lack {missing}; every domain gives "
                f"{list(GENERIC_DISTRACTORS)}"
            )
        unknown = set(distractors) - set(GENERIC_DISTRACTORS) - set(self.policy.rules)
        if unknown:
            raise DomainError(
                f"{where}: agent.yaml distractors {sorted(unknown)} are neither generic "
                f"ingredients ({', '.join(GENERIC_DISTRACTORS)}) nor rules of policy.yaml "
                f"({', '.join(self.policy.rules) or 'none'})"
            )
        self._check_templates(where)

    @cached_property
    def failure_types(self) -> tuple[str, ...]:
        """The named failure types of this domain's distractors: the shared ones, then
        ``missing_disclosure`` if a step requires disclosures, then each rule that
        agent.yaml gives distractor phrasings for."""
        extra = []
        if any(step.disclose for step in self.policy.steps.values()):
            extra.append("missing_disclosure")
        extra += [rid for rid in self.policy.rules if self.agent["distractors"].get(rid)]
        return FAILURE_TYPES + tuple(extra)

    def _check_templates(self, where: str) -> None:
        """Every ``{field}`` in every template names a declared fact (or one of the few
        fields the machinery fills in), so a typo fails here, not mid-episode."""
        known = set(self.fact_names) | _MACHINERY_FIELDS

        def check(origin: str, templates: Any) -> None:
            if isinstance(templates, Mapping):
                templates = [
                    t
                    for group in templates.values()
                    for t in (group if isinstance(group, list) else [group])
                ]
            elif isinstance(templates, str):
                templates = [templates]
            for template in templates or ():
                if not isinstance(template, str):
                    continue
                for name in template_fields(template):
                    fact = name[len("fake_") :] if name.startswith("fake_") else name
                    if fact not in known:
                        raise DomainError(
                            f"{where}: {origin} uses {{{name}}}, which is not a fact declared in "
                            f"slots.yaml (nor one of {sorted(_MACHINERY_FIELDS)}): {template!r}"
                        )

        for step in self.policy.steps.values():
            check(f"policy.yaml step {step.id!r}", [*step.say, step.system or "", *step.verdict])
        for sub in self.policy.subflows.values():
            check(f"policy.yaml subflow {sub.id!r} goal", sub.goal)
        for slot in self.slots.values():
            check(f"slots.yaml slot {slot.id!r}", slot.say)
        for key in ("openings", "reactions"):
            for name, templates in self.user.get(key, {}).items():
                check(f"user.yaml {key}.{name}", templates)
        for name, value in self.agent.items():
            check(f"agent.yaml {name}", value)
        for action, spec in self.actions.items():
            check(f"actions.yaml {action!r} promise", spec.get("promise", ""))


class _Fields(dict[str, Any]):
    def __init__(self, facts: Mapping[str, Any], extra: Mapping[str, Any]):
        super().__init__(facts)
        self.update(extra)


@lru_cache(maxsize=8192)  # (templates are data: a bounded set, parsed once)
def template_fields(template: str) -> tuple[str, ...]:
    """Names of the ``{fields}`` a template uses."""
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def get_domain(name: str | Path) -> Domain:
    """Load a domain by built-in name (``"customer_service"``, ``"tiny"``) or folder path
    (loaded once per absolute path).

    Raises:
        DomainError: the name is neither a built-in domain nor a folder with domain files.
    """
    name = str(name)
    if name not in BUILTIN_DOMAINS and _folder(name).is_dir():
        name = str(_folder(name).resolve())
    return _load_domain(name)


def _folder(name: str) -> Path:
    try:
        return Path(name).expanduser()
    except RuntimeError:  # "~someone" for a user this machine does not know
        raise DomainError(
            f"domain {name!r}: no home folder for {name.split('/')[0]!r}; built-in domains: "
            f"{', '.join(BUILTIN_DOMAINS)}, or give the path of a domain folder"
        ) from None


@cache
def _load_domain(name: str) -> Domain:
    if name in BUILTIN_DOMAINS:
        package = f"rlhf_envs.domains.{name}"
        hooks = importlib.import_module(f"{package}.hooks")
        assert hooks.__file__ is not None  # a built-in domain's hooks.py
        return Domain(name, Path(hooks.__file__).parent, hooks)
    folder = _folder(name)
    if not (folder / "hooks.py").is_file():
        raise DomainError(
            f"domain {name!r} is unknown; built-in domains: {', '.join(BUILTIN_DOMAINS)}; "
            "or give the path of a folder with policy.yaml, slots.yaml, actions.yaml, "
            "agent.yaml, user.yaml, profiles.yaml and hooks.py"
        )
    module_name = f"rlhf_envs_domain_{zlib.crc32(str(folder.resolve()).encode()):08x}"
    spec = importlib.util.spec_from_file_location(module_name, folder / "hooks.py")
    # (a spec and its loader always exist for a .py file)
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return Domain(name, folder, hooks)
