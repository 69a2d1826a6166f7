"""A domain's policy book: the steps an agent must take for each task, and their branches.

The policy book is data (``policy.yaml`` in each domain folder). Each subflow has a plan: a
list of step ids, where an item may be a branch ``{if: hook, then: [...], else: [...]}``
decided by a domain hook on the scenario's facts (``return_allowed``, ...). A scenario's
facts fix every branch, so its path through the plan is known when it is sampled; the
agent learns the outcome only when a check step reveals it in a system line.

Step kinds:

- ``ask``: request ``slots`` from the user (``need`` of them, default all); the user
  answers and a system line confirms the lookup. May ``decide`` a branch.
- ``check``: tell the user you are checking; a system line gives the result. May ``decide``.
- ``act``: perform an ``action`` (refund, update, ...), stating the ``mention`` facts.
- ``inform``: tell the user the ``mention`` facts (and one of ``keywords`` if given).
- ``decline``: apologise and refuse, as the policy requires; ``offer_manager`` if it says so.
- ``close``: ask whether the user needs anything else.

A step may also list ``disclose``: statements the reply must make when it does the step
(a risk warning before a recommendation, safety-netting with advice). They are defined
under ``disclosures`` as regular expressions on the lower-cased reply.

``rules`` are the rules of conduct that hold at every step ("never promise a return",
"never name a prescription drug"): a reply that matches one of a rule's ``forbid``
patterns, or names one of the values of its ``forbid_facts`` (facts of the scenario,
such as the medicines this patient must not take), breaks it, where the rule applies:

- ``if: hook`` / ``unless: hook``: only in scenarios where the hook holds (or does not);
  rule hooks must work for every task of the domain;
- ``after: step``: until that step of the plan is done (naming a medicine before the
  allergies are checked); a rule whose step is not on the scenario's path holds for
  the whole episode.

A match does not count when a negation ("no", "not", "never", "n't", "cannot",
"without") comes at most four words before it in the same clause, or one of the rule's
``unless_preceded_by`` phrases anywhere before it in the same sentence part (after the
last ``.!?:;`` or "but"): "nobody can guarantee a return" does not promise one, and with
``unless_preceded_by: [if]``, "if it gets worse, call 911 right away" is safety-netting.
``negatable: false`` turns both off for a rule.

A ``critical`` rule (the default) is a safety violation that fails the episode; a
``minor`` one costs ``conduct`` points in the rubric (jargon, for instance).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

STEP_KINDS = ("ask", "check", "act", "inform", "decline", "close")
_STEP_FIELDS = {
    "kind",
    "slots",
    "need",
    "action",
    "mention",
    "keywords",
    "decide",
    "system",
    "verdict",
    "offer_manager",
    "purpose",
    "say",
    "disclose",
}
_RULE_FIELDS = {
    "forbid",
    "forbid_facts",
    "if",
    "unless",
    "after",
    "severity",
    "description",
    "negatable",
    "unless_preceded_by",
}
_NEGATION = re.compile(r"(?<![\w'])(?:no|not|never|nobody|cannot|without)(?![\w'])|n't(?![\w'])")
_NEGATION_WORDS = 4  # how far before a match a negation cancels it
_CLAUSE_END = re.compile(r"[.!?:;]\s")
_CONTRAST = re.compile(r"\bbut\b")
RULE_SEVERITIES = ("critical", "minor")


class PolicyBookError(ValueError):
    """A domain's policy data is malformed (raised at load time, naming file and entry)."""


@dataclass(frozen=True)
class Step:
    """One required step of a task; see the module docstring for the kinds."""

    id: str
    kind: str
    slots: tuple[str, ...] = ()
    need: int = 0
    action: str | None = None
    mention: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    decide: str | None = None
    system: str | None = None
    verdict: tuple[str, str] = ("", "")  # (text when the hook says False, when True)
    offer_manager: bool = False
    purpose: str | None = None
    say: tuple[str, ...] = ()
    disclose: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """A rule of conduct: a reply matching any of ``forbid`` breaks it where it applies.

    Attributes:
        id: the rule's name; also the label of the distractors that break it.
        forbid: compiled patterns (on the lower-cased reply).
        when, unless: a hook that must hold (or must not) for the rule to apply.
        after: a step id; the rule applies until that step is done.
        severity: ``"critical"`` (fails the episode) or ``"minor"``.
    """

    id: str
    forbid: tuple[re.Pattern[str], ...]
    when: str | None = None
    unless: str | None = None
    after: str | None = None
    severity: str = "critical"
    description: str = ""
    forbid_facts: tuple[str, ...] = ()
    negatable: bool = True
    cancel: re.Pattern[str] | None = None  # the unless_preceded_by cues

    def broken_by(self, lower_text: str, facts: Mapping[str, Any] | None = None) -> bool:
        """Whether a reply (lower-cased) breaks the rule, given the scenario's ``facts``
        (needed for ``forbid_facts``); the rule's conditions are checked elsewhere."""
        patterns = self.forbid
        if self.forbid_facts and facts is not None:
            patterns = patterns + tuple(_fact_patterns(facts, self.forbid_facts))
        for pattern in patterns:
            for match in pattern.finditer(lower_text):
                if not self._cancelled(lower_text, match.start()):
                    return True
        return False

    def _cancelled(self, text: str, at: int) -> bool:
        if not self.negatable:
            return False
        before = text[:at]
        ends = [m.end() for m in _CLAUSE_END.finditer(before)]
        before = before[ends[-1] :] if ends else before
        contrasts = [m.end() for m in _CONTRAST.finditer(before)]
        before = before[contrasts[-1] :] if contrasts else before
        if self.cancel is not None and self.cancel.search(before):
            return True
        # A negation counts only close before the match, in the same comma-clause:
        # "nobody can guarantee", but not "don't worry, you'll be fine".
        near = " ".join(before.rsplit(",", 1)[-1].split()[-_NEGATION_WORDS:])
        return bool(_NEGATION.search(near))


def _fact_patterns(facts: Mapping[str, Any], names: tuple[str, ...]) -> Iterator[re.Pattern[str]]:
    """Whole-phrase patterns for the values of ``facts[name]`` (a string or a list)."""
    for name in names:
        value = facts.get(name)
        for phrase in [value] if isinstance(value, str) else value or ():
            if phrase:
                yield _phrase_pattern(str(phrase).lower())


@lru_cache(maxsize=4096)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w']){re.escape(phrase)}(?![\w'])")


@dataclass(frozen=True)
class Branch:
    """``if hook(facts): then else: otherwise`` inside a plan."""

    hook: str
    then: tuple[PlanItem, ...]
    otherwise: tuple[PlanItem, ...] = ()


PlanItem = Step | Branch


@dataclass(frozen=True)
class Subflow:
    """One task a user can bring (``return_size``, ``recover_password``, ...)."""

    id: str
    flow: str
    title: str
    goal: str
    plan: tuple[PlanItem, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)

    def path(
        self, facts: Mapping[str, Any], hooks: Mapping[str, Callable[..., bool]]
    ) -> tuple[Step, ...]:
        """The steps this scenario requires, in order, with every branch resolved."""
        out: list[Step] = []
        _walk(self.plan, facts, hooks, out)
        return tuple(out)

    def steps(self) -> tuple[Step, ...]:
        """Every step in the plan, on any branch (each once, in plan order)."""
        seen: dict[str, Step] = {}
        _collect(self.plan, seen)
        return tuple(seen.values())

    def branch_hooks(self) -> tuple[str, ...]:
        """Names of the hooks this subflow branches on."""
        hooks: list[str] = []
        _collect_hooks(self.plan, hooks)
        return tuple(hooks)


def _walk(
    plan: Sequence[PlanItem],
    facts: Mapping[str, Any],
    hooks: Mapping[str, Callable[..., bool]],
    out: list[Step],
) -> None:
    for item in plan:
        if isinstance(item, Branch):
            _walk(item.then if hooks[item.hook](facts) else item.otherwise, facts, hooks, out)
        else:
            out.append(item)


def _collect(plan: Sequence[PlanItem], seen: dict[str, Step]) -> None:
    for item in plan:
        if isinstance(item, Branch):
            _collect(item.then, seen)
            _collect(item.otherwise, seen)
        else:
            seen.setdefault(item.id, item)


def _collect_hooks(plan: Sequence[PlanItem], hooks: list[str]) -> None:
    for item in plan:
        if isinstance(item, Branch):
            hooks.append(item.hook)
            _collect_hooks(item.then, hooks)
            _collect_hooks(item.otherwise, hooks)


@dataclass(frozen=True)
class PolicyBook:
    """All steps and subflows of one domain, validated."""

    steps: Mapping[str, Step]
    subflows: Mapping[str, Subflow]
    flows: Mapping[str, tuple[str, ...]]
    flow_titles: Mapping[str, str]
    policy_values: tuple[str, ...]
    rules: Mapping[str, Rule] = field(default_factory=dict)
    disclosures: Mapping[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, Any],
        *,
        source: str,
        hooks: Mapping[str, Callable[..., bool]],
        slots: Sequence[str],
        facts: Sequence[str],
        actions: Sequence[str],
    ) -> PolicyBook:
        """Parse ``policy.yaml`` contents; every reference is checked against ``hooks``,
        ``slots`` (what a user can be asked), ``facts`` (every fact name) and ``actions``,
        so typos fail at load time."""
        disclosures = {
            did: _compile(
                _require(
                    spec, "patterns", f"{source}: disclosure {did!r} (a mapping with 'patterns')"
                ),
                f"{source}: disclosure {did!r}",
            )
            for did, spec in _mapping(data, "disclosures", source).items()
        }
        steps = {
            sid: _parse_step(sid, spec, source, slots, facts, actions, hooks, disclosures)
            for sid, spec in _require(data, "steps", source).items()
        }
        rules = {
            rid: _parse_rule(rid, spec, source, steps, hooks, facts)
            for rid, spec in _mapping(data, "rules", source).items()
        }
        subflows: dict[str, Subflow] = {}
        flows: dict[str, tuple[str, ...]] = {}
        titles: dict[str, str] = {}
        for flow_id, flow in _require(data, "flows", source).items():
            titles[flow_id] = flow.get("title", flow_id)
            ids = []
            for sub_id, sub in _require(flow, "subflows", f"{source}: flow {flow_id!r}").items():
                where = f"{source}: subflow {sub_id!r}"
                if sub_id in subflows:
                    raise PolicyBookError(f"{where} is defined twice; subflow ids must be unique")
                plan = _parse_plan(_require(sub, "plan", where), steps, hooks, where)
                subflow = Subflow(
                    id=sub_id,
                    flow=flow_id,
                    title=sub.get("title", sub_id),
                    goal=_require(sub, "goal", where),
                    plan=plan,
                    facts=dict(sub.get("facts", {})),
                )
                _check_decisions(subflow, where)
                subflows[sub_id] = subflow
                ids.append(sub_id)
            flows[flow_id] = tuple(ids)
        return cls(
            steps,
            subflows,
            flows,
            titles,
            tuple(str(v) for v in data.get("policy_values", ())),
            rules,
            disclosures,
        )


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise PolicyBookError(f"{where}: missing required key {key!r}")
    return mapping[key]


def _mapping(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise PolicyBookError(
            f"{source}: {key!r} must be a mapping of names to entries, got a {type(value).__name__}"
        )
    return value


def _compile(patterns: Any, where: str) -> tuple[re.Pattern[str], ...]:
    if isinstance(patterns, str) or not patterns:
        raise PolicyBookError(f"{where}: patterns must be a non-empty list of regular expressions")
    out = []
    for pattern in patterns:
        try:
            out.append(re.compile(str(pattern)))
        except re.error as exc:
            raise PolicyBookError(f"{where}: bad regular expression {pattern!r}: {exc}") from None
    return tuple(out)


def _parse_rule(
    rid: str,
    spec: Any,
    source: str,
    steps: Mapping[str, Step],
    hooks: Mapping[str, Callable[..., bool]],
    facts: Sequence[str],
) -> Rule:
    where = f"{source}: rule {rid!r}"
    if not isinstance(spec, Mapping):
        raise PolicyBookError(f"{where}: a rule is a mapping with keys {sorted(_RULE_FIELDS)}")
    unknown = set(spec) - _RULE_FIELDS
    if unknown:
        raise PolicyBookError(
            f"{where}: unknown field(s) {sorted(unknown)}; accepted: {sorted(_RULE_FIELDS)}"
        )
    for key in ("if", "unless"):
        if spec.get(key) is not None and spec[key] not in hooks:
            raise PolicyBookError(f"{where}: {key}-hook {spec[key]!r} is not defined in hooks.py")
    if spec.get("after") is not None and spec["after"] not in steps:
        raise PolicyBookError(
            f"{where}: after-step {spec['after']!r} is not a step of the policy book"
        )
    severity = spec.get("severity", "critical")
    if severity not in RULE_SEVERITIES:
        raise PolicyBookError(f"{where}: severity {severity!r} is not one of {RULE_SEVERITIES}")
    forbid_facts = _names(spec.get("forbid_facts", ()), f"{where}: forbid_facts")
    for name in forbid_facts:
        if name not in facts:
            raise PolicyBookError(
                f"{where}: forbid_facts names {name!r}, which is not a fact declared in slots.yaml"
            )
    if "forbid" not in spec and not forbid_facts:
        raise PolicyBookError(f"{where}: a rule needs 'forbid' patterns or 'forbid_facts'")
    forbid = _compile(spec["forbid"], where) if "forbid" in spec else ()
    extra = _names(spec.get("unless_preceded_by", ()), f"{where}: unless_preceded_by")
    cancel = (
        re.compile("|".join(rf"(?<![\w']){re.escape(p.lower())}(?![\w'])" for p in extra))
        if extra
        else None
    )
    return Rule(
        id=rid,
        forbid=forbid,
        when=spec.get("if"),
        unless=spec.get("unless"),
        after=spec.get("after"),
        severity=severity,
        description=str(spec.get("description", "")),
        forbid_facts=forbid_facts,
        negatable=bool(spec.get("negatable", True)),
        cancel=cancel,
    )


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of names; a single string is a list of one (as YAML authors write it)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PolicyBookError(f"{where}: expected a name or a list of names, got {value!r}")
    return tuple(value)


def _parse_step(
    sid: str,
    spec: Any,
    source: str,
    slots: Sequence[str],
    facts: Sequence[str],
    actions: Sequence[str],
    hooks: Mapping[str, Callable[..., bool]],
    disclosures: Mapping[str, tuple[re.Pattern[str], ...]],
) -> Step:
    where = f"{source}: step {sid!r}"
    unknown = set(spec) - _STEP_FIELDS
    if unknown:
        raise PolicyBookError(
            f"{where}: unknown field(s) {sorted(unknown)}; accepted: {sorted(_STEP_FIELDS)}"
        )
    kind = _require(spec, "kind", where)
    if kind not in STEP_KINDS:
        raise PolicyBookError(f"{where}: kind {kind!r} is not one of {STEP_KINDS}")
    step_slots = tuple(spec.get("slots", ()))
    mention = tuple(spec.get("mention", ()))
    for slot in step_slots:
        if slot not in slots:
            raise PolicyBookError(
                f"{where}: slot {slot!r} is not defined under 'slots' in slots.yaml"
            )
    for name in mention:
        if name not in facts:
            raise PolicyBookError(f"{where}: fact {name!r} is not defined in slots.yaml")
    action = spec.get("action")
    if kind == "act" and action not in actions:
        raise PolicyBookError(
            f"{where}: an act step needs an action defined in actions.yaml, got {action!r}"
        )
    if kind == "ask" and not step_slots:
        raise PolicyBookError(f"{where}: an ask step needs slots")
    decide = spec.get("decide")
    if decide is not None and decide not in hooks:
        raise PolicyBookError(f"{where}: decide hook {decide!r} is not defined in hooks.py")
    verdict = spec.get("verdict", {})
    need = int(spec.get("need", len(step_slots)))
    if step_slots and not 1 <= need <= len(step_slots):
        raise PolicyBookError(f"{where}: need={need} must be between 1 and {len(step_slots)}")
    say = spec.get("say", ())
    disclose = _names(spec.get("disclose", ()), f"{where}: disclose")
    for name in disclose:
        if name not in disclosures:
            raise PolicyBookError(
                f"{where}: disclosure {name!r} is not defined under 'disclosures'"
            )
    if disclose and kind not in ("act", "inform"):
        raise PolicyBookError(
            f"{where}: only act and inform steps can require disclosures, not {kind!r}"
        )
    return Step(
        id=sid,
        kind=kind,
        slots=step_slots,
        need=need,
        action=action,
        mention=mention,
        keywords=tuple(k.lower() for k in spec.get("keywords", ())),
        decide=decide,
        system=spec.get("system"),
        verdict=(str(verdict.get(False, "")), str(verdict.get(True, ""))),
        offer_manager=bool(spec.get("offer_manager", False)),
        purpose=spec.get("purpose"),
        say=(say,) if isinstance(say, str) else tuple(say),
        disclose=disclose,
    )


def _parse_plan(
    items: Any,
    steps: Mapping[str, Step],
    hooks: Mapping[str, Callable[..., bool]],
    where: str,
) -> tuple[PlanItem, ...]:
    plan: list[PlanItem] = []
    for item in items:
        if isinstance(item, str):
            if item not in steps:
                raise PolicyBookError(f"{where}: plan names unknown step {item!r}")
            plan.append(steps[item])
        elif isinstance(item, Mapping) and "if" in item:
            hook = item["if"]
            if hook not in hooks:
                raise PolicyBookError(f"{where}: branch hook {hook!r} is not defined in hooks.py")
            plan.append(
                Branch(
                    hook=hook,
                    then=_parse_plan(item.get("then", ()), steps, hooks, where),
                    otherwise=_parse_plan(item.get("else", ()), steps, hooks, where),
                )
            )
        else:
            raise PolicyBookError(
                f"{where}: plan item {item!r} is neither a step id nor an 'if' branch"
            )
    return tuple(plan)


def _check_decisions(subflow: Subflow, where: str) -> None:
    """Every branch must be announced by an earlier step that decides it, on every way
    through the plan, so the agent sees the outcome in a system line before acting on it."""

    def walk(plan: Sequence[PlanItem], decided: frozenset[str]) -> frozenset[str]:
        for item in plan:
            if isinstance(item, Branch):
                if item.hook not in decided:
                    raise PolicyBookError(
                        f"{where}: branch on {item.hook!r} comes before any step that decides it"
                    )
                # Only what both arms decide is decided after the branch.
                decided = walk(item.then, decided) & walk(item.otherwise, decided)
            elif item.decide:
                decided = decided | {item.decide}
        return decided

    walk(subflow.plan, frozenset())
    last = subflow.plan[-1] if subflow.plan else None
    if not isinstance(last, Step) or last.kind != "close":
        raise PolicyBookError(f"{where}: a plan must end with a close step")
