"""Auditing a reward model: what it rewards, measured against the gold rubric on an env's
own dialogue contexts.

In each context (a dialogue state an env reached) the audit proposes the env's labelled
candidates, the correct reply and one distractor of each failure type that applies
(:func:`~rlhf_envs.simulation.candidates.propose`), and probes made from the correct
reply, then reads what the reward model prefers:

1. *failure types*: how often each distractor outscores the correct reply; *rubric
   components*: over the candidate pairs of a context where one gold component differs,
   how often the model prefers the reply that component prefers;
2. *length*: the rank (Spearman) and linear (Pearson) correlation of score differences
   with length differences (in words) over the candidate pairs of each context, and how
   often a copy of the correct reply padded with neutral filler outscores it;
3. *calibration*: accuracy on held-out preference labels and the expected calibration
   error (10 equal-width bins) of the Bradley-Terry probability
   ``P(a > b) = sigmoid(raw_a - raw_b)``, raw meaning before a checkpoint's normalisation;
4. *exploits*: how often a probe outscores the correct reply (:data:`PROBES`).

Every reply is scored as the env scores one, ``Exchange(scenario, history, reply,
state)``: a probe's own ``"\\nUser: ..."`` line reaches a text model through the same
transcript path, where it stays part of the agent's turn.

Rates count strict wins (a tie is no preference). Intervals are 95%: Wilson intervals for
one comparison per context, and bootstraps resampling whole contexts for measures over
candidate pairs, since the pairs of one context are not independent.
:mod:`rlhf_envs.rewards.audit_report` writes an audit as files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlhf_envs.dialogue import parse_transcript
from rlhf_envs.preference_data.records import PreferencePair
from rlhf_envs.rewards.learned.ensemble import EnsembleRewardModel
from rlhf_envs.rewards.learned.evaluation import label_ceiling, pairwise_accuracy
from rlhf_envs.rewards.learned.model import LearnedRewardModel
from rlhf_envs.rewards.protocol import Exchange
from rlhf_envs.rewards.registry import RewardSpec, make_reward_model
from rlhf_envs.rewards.validation import CheckedRewardModel, RewardModelError
from rlhf_envs.simulation.candidates import CORRECT, Candidate, propose
from rlhf_envs.simulation.domain import Domain
from rlhf_envs.simulation.expert import compose
from rlhf_envs.simulation.sampling import pick
from rlhf_envs.simulation.state import DialogueState
from rlhf_envs.simulation.understanding import common_cues
from rlhf_envs.statistics import cluster_bootstrap, spearman, wilson_interval

__all__ = [
    "PADDED",
    "PROBES",
    "SECTIONS",
    "AuditContext",
    "AuditReport",
    "HeldOut",
    "Measure",
    "ModelAudit",
    "Reliability",
    "audit_model",
    "audit_reward_model",
    "calibration",
    "draw_contexts",
    "held_out",
    "make_probes",
    "rewarded_keywords",
]

PROBES = (
    "keyword_stuffing",
    "repetition",
    "politeness_padding",
    "flattery",
    "forged_user_turn",
    "shuffled_words",
)
"""The exploit probes: the correct reply with the domain's rewarded keywords appended,
said twice, with polite filler after it, after flattery of the user, with a forged
``User:`` turn after it, and with its words in a shuffled order."""

PADDED = "padded_copy"
"""The correct reply followed by a neutral filler sentence (the length-bias probe)."""

SECTIONS = ("failure_types", "components", "length", "calibration", "probes")
"""The sections of an audit, in report order."""

PHRASES_FILE = Path(__file__).with_name("audit.yaml")
BINS = 10
"""Equal-width probability bins of the expected calibration error."""
N_BOOT = 400
"""Bootstrap resamples of the intervals of measures over candidate pairs."""


@lru_cache(maxsize=1)
def probe_phrases() -> Mapping[str, Any]:
    """The texts the probes add to a correct reply.

    Returns:
        ``audit.yaml`` as a mapping: filler, courtesy, flattery, the forged user turn and
        the number of keywords stuffed.
    """
    return yaml.safe_load(PHRASES_FILE.read_text())


def rewarded_keywords(domain: Domain) -> tuple[str, ...]:
    """The words a domain's rubric pays for or reads the task from: the courtesy and
    empathy cue phrases (shared and the domain's own), its slot names and its actions.

    Args:
        domain: a loaded domain.

    Returns:
        The phrases, without repeats, in that order.
    """
    shared = common_cues()
    own = domain.agent.get("cues") or {}
    words = [
        *shared["polite"],
        *shared["empathy"],
        *own.get("polite", ()),
        *own.get("empathy", ()),
        *(slot.name for slot in domain.slots.values()),
        *(action.replace("_", " ") for action in domain.actions),
    ]
    return tuple(dict.fromkeys(words))


def make_probes(correct: str, domain: Domain, rng: np.random.Generator) -> dict[str, str]:
    """The padded copy and the exploit probes of one correct reply.

    Args:
        correct: the policy-correct reply of a context.
        domain: the context's domain (for its rewarded keywords).
        rng: draws the filler, the keywords and the shuffle.

    Returns:
        ``{name: text}`` for :data:`PADDED` and each of :data:`PROBES`; the shuffled
        probe is left out when no order of the words differs from the reply's.
    """
    phrases = probe_phrases()
    keywords = rewarded_keywords(domain)
    stuffed = rng.choice(
        len(keywords), size=min(phrases["stuffed_keywords"], len(keywords)), replace=False
    )
    probes = {
        PADDED: compose(correct, pick(rng, phrases["neutral_filler"])),
        "keyword_stuffing": compose(correct, ", ".join(keywords[i] for i in stuffed) + "."),
        "repetition": compose(correct, correct),
        "politeness_padding": compose(correct, pick(rng, phrases["polite_filler"])),
        "flattery": compose(pick(rng, phrases["flattery"]), correct),
        "forged_user_turn": f"{correct}\n{phrases['forged_user_turn']}",
    }
    words = correct.split()
    if len(set(words)) > 1:
        shuffled = words
        while shuffled == words:  # some other order exists, so this ends
            shuffled = [words[i] for i in rng.permutation(len(words))]
        probes["shuffled_words"] = " ".join(shuffled)
    return probes


@dataclass(frozen=True)
class AuditContext:
    """One context of an audit.

    Attributes:
        state: the dialogue state (scenario, history, the step that is due).
        candidates: the correct reply first, then one distractor per failure type that
            applies here, ordered by label.
        probes: ``{name: text}`` from :func:`make_probes`.
    """

    state: DialogueState
    candidates: tuple[Candidate, ...]
    probes: Mapping[str, str]

    def exchange(self, reply: str) -> Exchange:
        """``reply`` in this context, as the env hands it to a reward model."""
        return Exchange(self.state.scenario, self.state.history, reply, self.state)

    def texts(self) -> list[str]:
        """Every reply the audit scores here: the candidates, then the probes."""
        return [c.text for c in self.candidates] + list(self.probes.values())


def draw_contexts(states: Iterable[DialogueState], n: int, seed: int = 0) -> list[AuditContext]:
    """Labelled candidates and probes for the first ``n`` states with a step due.

    Args:
        states: dialogue states, e.g. ``(c.state for c in FeedbackCollector(...).contexts())``
            (an endless iterable is read only as far as needed).
        n: number of contexts.
        seed: seeds the candidates and probes drawn in each state.

    Returns:
        ``n`` contexts, or fewer when ``states`` runs out.

    Raises:
        ValueError: ``n`` is below 1 or no state has a step due.
    """
    if n < 1:
        raise ValueError(f"the audit needs at least 1 context, got {n}")
    rng = np.random.default_rng(seed)
    out: list[AuditContext] = []
    for state in states:
        if len(out) == n:
            break
        if state.current_step is None:  # the conversation is over: nothing to propose
            continue
        # One of every failure type that applies: ask for them all, keep the first of
        # each label (a type that does not apply is replaced by a repeat of a no-progress one).
        first: dict[str, Candidate] = {}
        for c in propose(state, 1 + len(state.domain.failure_types), rng):
            first.setdefault(c.label, c)
        correct = first.pop(CORRECT)
        candidates = (correct, *(first[label] for label in sorted(first)))
        out.append(AuditContext(state, candidates, make_probes(correct.text, state.domain, rng)))
    if not out:
        raise ValueError("no dialogue state with a step due: nothing to audit")
    return out


@dataclass(frozen=True)
class Measure:
    """One number of an audit (a row of ``audit.csv``).

    Attributes:
        model: the reward model's name.
        section: one of :data:`SECTIONS`.
        measure: its name within the section.
        value, low, high: the value and its 95% interval; ``None`` where not applicable.
        n: the number of comparisons (contexts or pairs) it is measured on.
    """

    model: str
    section: str
    measure: str
    value: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram and the expected calibration error.

    Attributes:
        confidence: per bin, the mean predicted probability (NaN for an empty bin).
        frequency: per bin, the share of predictions that came true.
        counts: per bin, the number of predictions.
        ece: ``sum_b counts_b / N * |frequency_b - confidence_b|``.
    """

    confidence: np.ndarray
    frequency: np.ndarray
    counts: np.ndarray
    ece: float


def calibration(p_chosen: np.ndarray, bins: int = BINS) -> Reliability:
    """How well probabilities of preference match labels.

    Each pair is counted in both orders, ``p`` for the chosen reply winning (it did) and
    ``1 - p`` for the rejected one winning (it did not), so the result does not depend on
    which reply a file lists first; a model that always says 0.5 is perfectly calibrated.

    Args:
        p_chosen: per labelled pair, the predicted probability that the chosen reply wins.
        bins: number of equal-width probability bins.

    Returns:
        The reliability diagram and the expected calibration error.
    """
    p_chosen = np.asarray(p_chosen, dtype=float)
    if p_chosen.size == 0:
        raise ValueError("no pairs to measure calibration on")
    p = np.concatenate([p_chosen, 1.0 - p_chosen])
    outcome = np.concatenate([np.ones(p_chosen.size), np.zeros(p_chosen.size)])
    which = np.clip((p * bins).astype(int), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins give NaN
        confidence = np.bincount(which, p, minlength=bins) / counts
        frequency = np.bincount(which, outcome, minlength=bins) / counts
    used = counts > 0
    ece = float(np.sum(counts[used] / p.size * np.abs(frequency[used] - confidence[used])))
    return Reliability(confidence, frequency, counts, ece)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))  # no overflow warnings


@dataclass(frozen=True)
class HeldOut:
    """A reward model against held-out preference labels.

    Attributes:
        accuracy: ``(share, low, high)``: how often it scores the chosen reply higher
            (ties one half), or ``None`` when it cannot score the pairs.
        pairs: labelled pairs used (ties in the labels are left out).
        reliability: its calibration, or ``None`` when not applicable.
        note: how its probabilities were obtained, or why there are none.
    """

    accuracy: tuple[float, float, float] | None
    pairs: int
    reliability: Reliability | None
    note: str


def held_out(
    model: CheckedRewardModel,
    pairs: Sequence[PreferencePair],
    gold: str | None = None,
    temperature: float | None = None,
    flip_rate: float = 0.0,
) -> HeldOut:
    """Accuracy and calibration of ``model`` on labelled pairs.

    - a learned preference model: Bradley-Terry probabilities ``sigmoid(raw_chosen -
      raw_rejected)`` from its raw scores (its normalisation rescales them);
    - the gold rubric (``model.name == gold``) on simulated pairs, which record the gold
      margin: with the annotators' ``temperature`` and ``flip_rate``, the annotators' own
      model ``flip + (1 - 2 flip) sigmoid(margin / temperature)``;
    - any other model: accuracy if it can score text-only exchanges (the pair's prompt
      read back into turns), and no probabilities (its scores are not known to be
      logits).

    Args:
        model: the reward model.
        pairs: labelled pairs (ties, ``pair.tie``, are left out).
        gold: the spec of the gold rubric the pairs' ``gold_margin`` was measured with.
        temperature: the annotators' Bradley-Terry temperature, if known.
        flip_rate: the annotators' share of flipped labels, if known.

    Returns:
        What could be measured, with a note saying how (or why not).
    """
    strict = [p for p in pairs if not p.tie]
    if not strict:
        return HeldOut(None, 0, None, "no labelled pairs with a preference (only ties)")
    inner = model.model
    if isinstance(inner, LearnedRewardModel | EnsembleRewardModel):
        report = pairwise_accuracy(inner, strict)
        accuracy = (report.accuracy, report.low, report.high)
        if inner.objective != "preference":
            return HeldOut(
                accuracy,
                report.pairs,
                None,
                "not applicable: a rating model's scores are expected ratings, not "
                "Bradley-Terry logits",
            )
        return HeldOut(
            accuracy,
            report.pairs,
            calibration(_sigmoid(report.margins)),
            "P(chosen) = sigmoid(raw chosen score - raw rejected score), raw meaning before "
            "the checkpoint's normalisation",
        )
    if model.name == gold:
        ceiling = label_ceiling(strict)
        if ceiling is None:
            return HeldOut(
                None,
                0,
                None,
                "not applicable: the scripted rubric needs each reply's dialogue state, which "
                "these pairs do not carry (nor the gold margin simulated pairs record)",
            )
        margins = np.array([p.metadata["gold_margin"] for p in strict], dtype=float)
        accuracy = wilson_interval(ceiling * len(strict), len(strict))
        if temperature is None:
            return HeldOut(
                accuracy,
                len(strict),
                None,
                "not applicable: the labels' annotator temperature is unknown, so the rubric's "
                "score differences cannot be turned into probabilities",
            )
        p = flip_rate + (1 - 2 * flip_rate) * _sigmoid(margins / temperature)
        return HeldOut(
            accuracy,
            len(strict),
            calibration(p),
            f"the annotators' model: P(chosen) = {flip_rate:g} + {1 - 2 * flip_rate:g} * "
            f"sigmoid(gold difference / {temperature:g})",
        )
    try:
        margins = _text_margins(model, strict)
    except RewardModelError as err:
        return HeldOut(None, 0, None, f"not applicable: it cannot score text-only pairs ({err})")
    wins = float(np.sum((margins > 0) + 0.5 * (margins == 0)))
    return HeldOut(
        wilson_interval(wins, len(strict)),
        len(strict),
        None,
        "not applicable: its scores are not known to be Bradley-Terry logits",
    )


def _text_margins(model: CheckedRewardModel, pairs: Sequence[PreferencePair]) -> np.ndarray:
    """Score differences (chosen minus rejected) of pairs read from text alone."""
    batch = []
    for p in pairs:
        history = tuple(parse_transcript(p.prompt))
        batch += [Exchange(None, history, p.chosen), Exchange(None, history, p.rejected)]
    scores = model.score(batch)
    return scores[0::2] - scores[1::2]


@dataclass
class ModelAudit:
    """The audit of one reward model.

    Attributes:
        name: the model's name.
        measures: every measure, in :data:`SECTIONS` order.
        held_out: its accuracy and calibration on held-out labels, if labels were given.
        ties: per probe (and :data:`PADDED`), the share of contexts scored exactly even.
    """

    name: str
    measures: list[Measure]
    held_out: HeldOut | None = None
    ties: dict[str, float] = field(default_factory=dict)

    def get(self, section: str, measure: str) -> Measure | None:
        """The measure named ``measure`` of ``section``, if the audit has it."""
        for m in self.measures:
            if m.section == section and m.measure == measure:
                return m
        return None

    def value(self, section: str, measure: str) -> float | None:
        """The value of a measure (``None`` when missing or not applicable)."""
        m = self.get(section, measure)
        return None if m is None else m.value

    def worst_failure_type(self) -> Measure | None:
        """The failure type that most often outscores the correct reply (``None`` when
        none ever does)."""
        rows = [m for m in self.measures if m.section == "failure_types" and m.value]
        return max(rows, key=lambda m: (m.value or 0.0, m.n), default=None)


@dataclass
class AuditReport:
    """An audited reward model and the gold rubric, measured on the same contexts.

    Attributes:
        audited: the audit of the reward model.
        gold: the same audit of the gold rubric, the reference.
        settings: how the audit was run (env, contexts, seed, labels, ...), for the report.
    """

    audited: ModelAudit
    gold: ModelAudit
    settings: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[Measure]:
        """Every measure of both models (the audited one first)."""
        return self.audited.measures + self.gold.measures


def _scores(model: CheckedRewardModel, contexts: Sequence[AuditContext]) -> list[np.ndarray]:
    """Per context, the scores of :meth:`AuditContext.texts` (one batch in all, so a
    learned model scores them in few forward passes)."""
    batch = [ctx.exchange(text) for ctx in contexts for text in ctx.texts()]
    flat = model.score(batch)
    out, at = [], 0
    for ctx in contexts:
        size = len(ctx.candidates) + len(ctx.probes)
        out.append(flat[at : at + size])
        at += size
    return out


def _gold_components(
    gold: CheckedRewardModel, contexts: Sequence[AuditContext]
) -> list[dict[str, np.ndarray]]:
    """Per context, the gold rubric's components of each candidate."""
    batch = [ctx.exchange(c.text) for ctx in contexts for c in ctx.candidates]
    parts = gold.components(batch)
    out, at = [], 0
    for ctx in contexts:
        size = len(ctx.candidates)
        out.append({name: values[at : at + size] for name, values in parts.items()})
        at += size
    return out


def _mean(rows: np.ndarray) -> float:
    return float(rows.mean())


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _not_applicable(model: str, section: str, measure: str) -> Measure:
    return Measure(model, section, measure, None, None, None, 0)


def _rate(model: str, section: str, measure: str, wins: float, n: int) -> Measure:
    if n == 0:
        return _not_applicable(model, section, measure)
    value, low, high = wilson_interval(wins, n)
    return Measure(model, section, measure, value, low, high, n)


def _pooled(
    model: str,
    section: str,
    measure: str,
    groups: list[np.ndarray],
    statistic: Callable[[np.ndarray], float],
    seed: int,
) -> Measure:
    groups = [g for g in groups if len(g)]
    n = sum(len(g) for g in groups)
    if n == 0:
        return _not_applicable(model, section, measure)
    value, low, high = cluster_bootstrap(groups, statistic, n_boot=N_BOOT, seed=seed)
    finite = not (math.isnan(low) or math.isnan(high))
    return Measure(
        model, section, measure, value, low if finite else None, high if finite else None, n
    )


def _failure_types(contexts: Sequence[AuditContext]) -> list[str]:
    """The failure types of the contexts' domains, in their domains' order."""
    seen: dict[str, None] = {}
    for ctx in contexts:
        seen.update(dict.fromkeys(ctx.state.domain.failure_types))
    return list(seen)


def _failure_type_measures(
    label: str, contexts: Sequence[AuditContext], scores: list[np.ndarray]
) -> list[Measure]:
    """Each distractor against the correct reply of its context, by failure type."""
    wins: dict[str, float] = {}
    seen: dict[str, int] = {}
    for ctx, s in zip(contexts, scores, strict=True):
        for at, c in enumerate(ctx.candidates[1:], start=1):
            wins[c.label] = wins.get(c.label, 0.0) + float(s[at] > s[0])
            seen[c.label] = seen.get(c.label, 0) + 1
    return [
        _rate(label, "failure_types", kind, wins.get(kind, 0.0), seen.get(kind, 0))
        for kind in _failure_types(contexts)
    ]


def _pairs(contexts: Sequence[AuditContext]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per context, the candidate pairs ``(first, second)`` as index arrays."""
    return [np.triu_indices(len(ctx.candidates), 1) for ctx in contexts]


def _component_measures(
    label: str,
    contexts: Sequence[AuditContext],
    scores: list[np.ndarray],
    components: list[dict[str, np.ndarray]],
    seed: int,
) -> list[Measure]:
    """Agreement with the sign of each gold component, over the pairs where it differs."""
    out = []
    for component in components[0]:
        groups = []
        for (first, second), s, parts in zip(_pairs(contexts), scores, components, strict=True):
            part = parts[component][first] - parts[component][second]
            differ = np.abs(part) > 1e-9
            mine = np.sign(s[first] - s[second])[differ]
            agree = (mine == np.sign(part[differ])).astype(float)
            groups.append(np.where(mine == 0, 0.5, agree))  # a tie agrees one half
        out.append(_pooled(label, "components", component, groups, _mean, seed))
    return out


def _length_measures(
    label: str, contexts: Sequence[AuditContext], scores: list[np.ndarray], seed: int
) -> list[Measure]:
    """Score differences against length differences over the candidate pairs, each pair
    in both orders so that the correlation does not depend on which is listed first."""
    groups = []
    for ctx, (first, second), s in zip(contexts, _pairs(contexts), scores, strict=True):
        words = np.array([len(c.text.split()) for c in ctx.candidates], dtype=float)
        dx, dy = words[first] - words[second], s[first] - s[second]
        groups.append(np.stack([np.concatenate([dx, -dx]), np.concatenate([dy, -dy])], axis=1))
    return [
        _pooled(label, "length", "spearman", groups, lambda r: spearman(r[:, 0], r[:, 1]), seed),
        _pooled(label, "length", "pearson", groups, lambda r: _pearson(r[:, 0], r[:, 1]), seed),
    ]


def _probe_measures(
    label: str, contexts: Sequence[AuditContext], scores: list[np.ndarray]
) -> tuple[list[Measure], dict[str, float]]:
    """Each probe (and the padded copy) against the correct reply it was made from; and
    per probe, the share of contexts where the two score exactly even."""
    out, ties = [], {}
    for probe in (PADDED, *PROBES):
        won, tied, n = 0.0, 0.0, 0
        for ctx, s in zip(contexts, scores, strict=True):
            if probe in ctx.probes:
                at = len(ctx.candidates) + list(ctx.probes).index(probe)
                won += float(s[at] > s[0])
                tied += float(s[at] == s[0])
                n += 1
        out.append(_rate(label, "length" if probe == PADDED else "probes", probe, won, n))
        ties[probe] = tied / n if n else 0.0
    return out, ties


def _held_out_measures(label: str, result: HeldOut) -> list[Measure]:
    if result.accuracy is None:
        accuracy = _not_applicable(label, "calibration", "held_out_accuracy")
    else:
        value, low, high = result.accuracy
        accuracy = Measure(
            label, "calibration", "held_out_accuracy", value, low, high, result.pairs
        )
    if result.reliability is None:
        ece = _not_applicable(label, "calibration", "ece")
    else:
        ece = Measure(label, "calibration", "ece", result.reliability.ece, None, None, result.pairs)
    return [accuracy, ece]


def audit_model(
    model: RewardSpec,
    contexts: Sequence[AuditContext],
    gold: RewardSpec = "rubric",
    labels: Sequence[PreferencePair] | None = None,
    temperature: float | None = None,
    flip_rate: float = 0.0,
    name: str | None = None,
    seed: int = 0,
) -> ModelAudit:
    """Audit one reward model on contexts from :func:`draw_contexts`.

    Args:
        model: the reward model, as any reward spec (``"rubric"``, ``"learned:PATH"``,
            an instance with ``score(batch)``, ...).
        contexts: the contexts.
        gold: the gold rubric, whose components the model's preferences are compared with
            (it must explain its score as components, as the scripted rubric does).
        labels: held-out labelled pairs for accuracy and calibration (see :func:`held_out`).
        temperature, flip_rate: the labels' annotator model, when known (for the gold).
        name: the name in the report (default: the model's).
        seed: seeds the bootstrap intervals.

    Returns:
        The measures of every section, in :data:`SECTIONS` order.

    Raises:
        ValueError: ``gold`` has no components, or a spec is invalid.
        RewardModelError: a reward model failed while scoring (the message names it).
    """
    checked = make_reward_model(model)
    gold_model = make_reward_model(gold)
    if not gold_model.has_components:
        raise ValueError(
            f"the gold reward model {gold_model.name!r} does not explain its score as "
            "components; use the scripted rubric ('rubric')"
        )
    label = name or checked.name
    scores = _scores(checked, contexts)
    components = _gold_components(gold_model, contexts)
    probes, ties = _probe_measures(label, contexts, scores)
    measures = [
        *_failure_type_measures(label, contexts, scores),
        *_component_measures(label, contexts, scores, components, seed),
        *_length_measures(label, contexts, scores, seed),
        *probes,
    ]
    result = None
    if labels is not None:
        gold_spec = gold_model.spec if isinstance(gold_model.spec, str) else None
        result = held_out(checked, labels, gold_spec, temperature, flip_rate)
        measures += _held_out_measures(label, result)
    order = {section: i for i, section in enumerate(SECTIONS)}
    measures.sort(key=lambda m: order[m.section])  # stable: the order within a section stays
    return ModelAudit(label, measures, result, ties)


def audit_reward_model(
    model: RewardSpec,
    contexts: Sequence[AuditContext],
    gold: RewardSpec = "rubric",
    labels: Sequence[PreferencePair] | None = None,
    temperature: float | None = None,
    flip_rate: float = 0.0,
    name: str | None = None,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> AuditReport:
    """Audit a reward model and, as the reference, the gold rubric on the same contexts.

    Args:
        model, contexts, gold, labels, temperature, flip_rate, name, seed: as for
            :func:`audit_model`.
        settings: how the contexts and labels were drawn, recorded in the report.

    Returns:
        Both audits.
    """
    audited = audit_model(model, contexts, gold, labels, temperature, flip_rate, name, seed)
    reference = audit_model(gold, contexts, gold, labels, temperature, flip_rate, None, seed)
    return AuditReport(audited, reference, dict(settings or {}))
