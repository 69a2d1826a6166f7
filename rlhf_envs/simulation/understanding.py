"""Reading a reply as a rater or a user would: what it asks, does, refuses and states.

The user simulator and the scripted rubric both judge replies by their text alone, so
the same reading serves the select interface's templated candidates, free text typed by
a person and tokens sampled by a language model. The reading is deliberately simple and
transparent: cue phrases (``language.yaml``), the domain's slot names (``slots.yaml``)
and action patterns (``actions.yaml``), matched sentence by sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from rlhf_envs.simulation.values import extract_values

SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
# Words, keeping amounts, emails and ids whole ("$94.00", "a.b@c.org") but not a
# sentence's final full stop.
_WORD_RE = re.compile(r"[a-z0-9$%@'-]+(?:\.[a-z0-9$%@'-]+)*")
LANGUAGE_FILE = Path(__file__).with_name("language.yaml")
CUE_KINDS = (
    "request",
    "commit",
    "negation",
    "decline",
    "check",
    "close",
    "manager",
    "polite",
    "empathy",
    "rude",
)


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str]:
    # Longest first so "i'm sorry" wins over "sorry" in the alternation.
    alternatives = sorted({p.lower() for p in phrases}, key=lambda p: (-len(p), p))
    if not alternatives:
        return re.compile(r"(?!x)x")  # matches nothing
    body = "|".join(re.escape(p) for p in alternatives)
    return re.compile(rf"(?<![\w'])(?:{body})(?![\w'])")


@lru_cache(maxsize=1)
def common_cues() -> Mapping[str, tuple[str, ...]]:
    """The shared cue phrases of ``language.yaml``, by kind."""
    data = yaml.safe_load(LANGUAGE_FILE.read_text())
    return {kind: tuple(data[f"{kind}_cues"]) for kind in CUE_KINDS}


@dataclass(frozen=True)
class ReplyAnalysis:
    """What a reply says, independent of the dialogue it is in.

    Attributes:
        requested: slot ids the reply asks the user for.
        performed: action ids the reply reports doing or commits to doing.
        declined: it refuses something ("unfortunately ... can't ...").
        offered_manager: it mentions a manager or escalation.
        checking: it announces a lookup ("let me check").
        offered_help: it asks whether the user needs anything else.
        values: fact-like values it states (normalised; see ``values.py``).
        rude, polite, empathy: numbers of cue phrases of each kind.
        words: length in words.
        word_set: its distinct words (for repetition checks).
    """

    text: str
    requested: frozenset[str]
    performed: frozenset[str]
    declined: bool
    offered_manager: bool
    checking: bool
    offered_help: bool
    values: frozenset[str]
    rude: int
    polite: int
    empathy: int
    words: int
    word_set: frozenset[str]

    @property
    def has_act(self) -> bool:
        """True if the reply does anything recognisable for the task."""
        return bool(
            self.requested
            or self.performed
            or self.declined
            or self.checking
            or self.offered_help
            or self.offered_manager
        )


class Lexicon:
    """Compiled cue phrases plus one domain's slot names and action patterns.

    Args:
        slot_synonyms: ``{slot id: phrases that name it}``.
        action_patterns: ``{action id: regular expressions for doing it}``.
        extra_cues: ``{cue kind: more phrases}`` a domain adds to ``language.yaml``'s.
    """

    def __init__(
        self,
        slot_synonyms: Mapping[str, Sequence[str]],
        action_patterns: Mapping[str, Sequence[str]],
        extra_cues: Mapping[str, Sequence[str]] | None = None,
    ):
        cues = {kind: list(phrases) for kind, phrases in common_cues().items()}
        for kind, phrases in (extra_cues or {}).items():
            if kind not in cues:
                raise ValueError(f"unknown cue kind {kind!r}; accepted: {', '.join(CUE_KINDS)}")
            cues[kind].extend(phrases)
        self.cues = {kind: _phrase_regex(phrases) for kind, phrases in cues.items()}
        # Cues are counted sentence by sentence (cached per sentence) unless a phrase could
        # match across a sentence break: one with ". " inside or space at its start.
        self._whole_text_cues = any(
            SENTENCE_RE.search(p) or p[:1].isspace() for phrases in cues.values() for p in phrases
        )
        self._slot_of: dict[str, str] = {}
        for slot, phrases in slot_synonyms.items():
            for phrase in phrases:
                self._slot_of.setdefault(phrase.lower(), slot)
        self._slot_re = _phrase_regex(self._slot_of)
        self.actions = {
            action: re.compile("|".join(f"(?:{p})" for p in patterns))
            for action, patterns in action_patterns.items()
        }

    def analyse(self, text: str) -> ReplyAnalysis:
        """Read one reply (cached per lexicon: the same texts recur across episodes)."""
        return self._analyse(text)

    # B019: the shared caches keep ``self`` alive, but a lexicon belongs to a domain and
    # domains are loaded once and kept for the life of the process (``get_domain``).
    @lru_cache(maxsize=16384)  # noqa: B019
    def _analyse(self, text: str) -> ReplyAnalysis:
        # Read sentence by sentence and combined: replies are new texts made of recurring
        # sentences, so most sentences are cache hits. (Words never span a sentence break,
        # and cue phrases that could are read from the whole text, so the sums equal a
        # reading of the whole text.)
        cues = self.cues
        requested: set[str] = set()
        performed: set[str] = set()
        declined = manager = checking = offered_help = False
        rude = polite = empathy = 0
        words: list[str] = []
        for sentence in SENTENCE_RE.split(text.lower()):
            r, p, d, m, c, h, n_rude, n_polite, n_empathy, w = self._sentence(sentence)
            requested |= r
            performed |= p
            declined, manager = declined or d, manager or m
            checking, offered_help = checking or c, offered_help or h
            rude, polite, empathy = rude + n_rude, polite + n_polite, empathy + n_empathy
            words += w
        if self._whole_text_cues:
            lower = text.lower()
            declined = bool(cues["decline"].search(lower))
            manager = bool(cues["manager"].search(lower))
            checking = bool(cues["check"].search(lower))
            offered_help = bool(cues["close"].search(lower))
            rude = len(cues["rude"].findall(lower))
            polite = len(cues["polite"].findall(lower))
            empathy = len(cues["empathy"].findall(lower))
        return ReplyAnalysis(
            text=text,
            requested=frozenset(requested),
            performed=frozenset(performed),
            declined=declined,
            offered_manager=manager,
            checking=checking,
            offered_help=offered_help,
            values=extract_values(text),
            rude=rude,
            polite=polite,
            empathy=empathy,
            words=len(words),
            # (what reply_words(text) gives, without a second scan)
            word_set=frozenset(words),
        )

    @lru_cache(maxsize=32768)  # noqa: B019
    def _sentence(self, sentence: str) -> tuple[Any, ...]:
        """One lower-cased sentence read: the fields of :class:`ReplyAnalysis` from
        ``requested`` to ``empathy`` (``values`` aside), then its words."""
        cues = self.cues
        requested: frozenset[str] = frozenset()
        if sentence.rstrip().endswith("?") or cues["request"].search(sentence):
            slots = self._slot_of
            requested = frozenset(slots[m.group(0)] for m in self._slot_re.finditer(sentence))
        performed: frozenset[str] = frozenset()
        commits = [m.start() for m in cues["commit"].finditer(sentence)]
        if commits:
            # "I'll need your order ID" asks and "I'll check your refund" looks
            # something up: neither commits to an action.
            not_commits = {
                m.start() for kind in ("request", "check") for m in cues[kind].finditer(sentence)
            }
            commits = [c for c in commits if c not in not_commits]
            performed = frozenset(self._performed_in(sentence, commits))
        return (
            requested,
            performed,
            bool(cues["decline"].search(sentence)),
            bool(cues["manager"].search(sentence)),
            bool(cues["check"].search(sentence)),
            bool(cues["close"].search(sentence)),
            len(cues["rude"].findall(sentence)),
            len(cues["polite"].findall(sentence)),
            len(cues["empathy"].findall(sentence)),
            tuple(_WORD_RE.findall(sentence)),
        )

    def _performed_in(self, sentence: str, commits: list[int]) -> set[str]:
        """Actions a sentence commits to: a commitment cue and the action's pattern with
        no negation between them ("Don't worry, I'll refund it" counts; "I have to say we
        cannot refund it" does not)."""
        found = set()
        negations = [m.start() for m in self.cues["negation"].finditer(sentence)]
        for action, pattern in self.actions.items():
            for match in pattern.finditer(sentence):
                at = match.start()
                for c in commits:
                    lo, hi = (c, at) if c < at else (at, c)
                    if not any(lo <= n <= hi for n in negations):
                        found.add(action)
                        break
                if action in found:
                    break
        return found

    def __getstate__(self) -> dict[str, Any]:
        # Compiled patterns pickle fine; the lru_cache on the bound method is rebuilt.
        return self.__dict__

    def __hash__(self) -> int:  # lru_cache keys on self
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


@lru_cache(maxsize=16384)
def reply_words(text: str) -> frozenset[str]:
    """The distinct words of a reply, as used for repetition checks."""
    return frozenset(_WORD_RE.findall(text.lower()))


def word_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (1.0 = same words)."""
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)
