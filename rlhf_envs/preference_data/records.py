"""Feedback records: one preference between two replies, or one rating of a single reply.

Both hold text only. ``prompt`` is the context as a transcript in the project's format,
``Role: text`` lines joined by ``"\\n"`` with roles ``User``, ``Agent`` and ``System`` (what
``Exchange.transcript()`` produces); ``chosen``, ``rejected`` and ``completion`` are the
reply texts. Anything else known about a record (annotator, margin, source, ...) lives in
``metadata`` and is written as extra top-level keys in JSON Lines files.

The records validate themselves on construction so that a bad record fails where it is
made, not later inside a training loop.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PAIR_KEYS", "RATING_KEYS", "RATING_SCALES", "TIE_KEY", "PreferencePair", "Rating"]

# Accepted label range (inclusive) of each rating scale.
RATING_SCALES: dict[str, tuple[int, int]] = {"thumbs": (0, 1), "stars": (1, 5)}

# Keys a record's JSON object uses itself; metadata may not reuse them or the record
# could not be written and read back unchanged. "scale" is written for stars ratings.
PAIR_KEYS: tuple[str, ...] = ("prompt", "chosen", "rejected")
TIE_KEY = "tie"
"""Written (as ``true``) only for a tie, so files of strict preferences stay TRL's format."""
RATING_KEYS: tuple[str, ...] = ("prompt", "completion", "label", "scale")


def _check_text(name: str, value: Any, *, allow_empty: bool, what: str) -> None:
    # ValueError throughout, not TypeError: readers turn any invalid record into a line error.
    if not isinstance(value, str):
        got = type(value).__name__
        raise ValueError(f"{name} must be a str, got {got}; {what}")  # noqa: TRY004
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} is empty (or only whitespace); {what}")


def _check_metadata(metadata: Any, reserved: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ValueError(  # noqa: TRY004
            f"metadata must be a mapping of str keys to values, got {type(metadata).__name__}"
        )
    for key in metadata:
        if not isinstance(key, str):
            raise ValueError(  # noqa: TRY004
                f"metadata keys must be str (they become JSON keys), got {key!r}"
            )
        if key in reserved:
            accepted = ", ".join(repr(k) for k in reserved)
            raise ValueError(
                f"metadata key {key!r} collides with a record field; keys {accepted} are "
                "reserved, use another name"
            )
    # A private copy: the record is frozen, so a caller's later edits must not reach it.
    return dict(metadata)


def scale_description(scale: str) -> str:
    """What ``scale`` accepts, in words (for error messages).

    Args:
        scale: a key of ``RATING_SCALES``.

    Returns:
        e.g. ``"thumbs labels are true/false or 0/1"``.
    """
    if scale == "thumbs":
        return "thumbs labels are true/false or 0/1"
    low, high = RATING_SCALES[scale]
    return f"{scale} labels are integers {low} to {high}"


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: ``chosen`` was preferred to ``rejected`` as the reply to ``prompt``,
    or, with ``tie=True``, the two replies were judged equally good.

    Attributes:
        prompt: the context as a ``Role: text`` transcript; may be empty.
        chosen: the preferred reply (for a tie: the first of the two); not empty.
        rejected: the other reply; not empty and different from ``chosen``.
        metadata: anything else (annotator, margin, source, gold_margin, ...). Keys must
            be str and must not be ``prompt``, ``chosen``, ``rejected`` or ``tie``.
        tie: the annotator judged the replies equally good. Reward models trained on
            pairs with ties use a Bradley-Terry model with ties (Davidson's).

    Raises:
        ValueError: on construction, if any of the above does not hold.
    """

    prompt: str
    chosen: str
    rejected: str
    # Left out of the hash so pairs stay hashable whatever the metadata values are.
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    tie: bool = False

    def __post_init__(self) -> None:
        what = "a preference pair needs non-empty chosen and rejected reply texts"
        if not isinstance(self.tie, bool):
            raise ValueError(f"tie must be true or false, got {self.tie!r}")  # noqa: TRY004
        _check_text("prompt", self.prompt, allow_empty=True, what="the prompt is a transcript")
        _check_text("chosen", self.chosen, allow_empty=False, what=what)
        _check_text("rejected", self.rejected, allow_empty=False, what=what)
        if self.chosen == self.rejected:
            raise ValueError(
                "chosen and rejected are identical; a preference pair needs two different replies"
            )
        object.__setattr__(self, "metadata", _check_metadata(self.metadata, (*PAIR_KEYS, TIE_KEY)))

    def to_json(self) -> dict[str, Any]:
        """The pair as a JSON object: ``prompt``, ``chosen``, ``rejected``, ``"tie": true``
        for a tie, then metadata keys."""
        obj: dict[str, Any] = {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
        }
        if self.tie:
            obj[TIE_KEY] = True
        obj.update(self.metadata)
        return obj


@dataclass(frozen=True)
class Rating:
    """One reply judged on its own, e.g. thumbs up/down or one to five stars.

    Attributes:
        prompt: the context as a ``Role: text`` transcript; may be empty.
        completion: the reply rated; not empty.
        label: an int in ``RATING_SCALES[scale]``. ``True``/``False`` are accepted for the
            thumbs scale and stored as 1/0.
        scale: ``"thumbs"`` (0 = down, 1 = up) or ``"stars"`` (1 to 5).
        metadata: anything else (annotator, source, ...). Keys must be str and must not be
            ``prompt``, ``completion``, ``label`` or ``scale``.

    Raises:
        ValueError: on construction, if any of the above does not hold.
    """

    prompt: str
    completion: str
    label: int
    scale: str
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_text("prompt", self.prompt, allow_empty=True, what="the prompt is a transcript")
        _check_text(
            "completion",
            self.completion,
            allow_empty=False,
            what="a rating needs the text of the reply it rates",
        )
        if self.scale not in RATING_SCALES:
            accepted = ", ".join(repr(s) for s in RATING_SCALES)
            raise ValueError(f"unknown rating scale {self.scale!r}; accepted: {accepted}")
        label = self.label
        accepted = scale_description(self.scale)
        if isinstance(label, bool):
            if self.scale != "thumbs":
                raise ValueError(f"label {label!r} is a thumbs label, not {self.scale}; {accepted}")
        elif not isinstance(label, numbers.Integral):
            # Integral floats are the reader's business (JSON 4.0); here a float is a mistake.
            raise ValueError(f"label {label!r} is not an integer; {accepted}")  # noqa: TRY004
        low, high = RATING_SCALES[self.scale]
        if not low <= int(label) <= high:
            raise ValueError(
                f"label {label!r} is out of range for the {self.scale} scale; {accepted}"
            )
        # Normalise bools and numpy ints to a plain int so equal ratings compare equal.
        object.__setattr__(self, "label", int(label))
        object.__setattr__(self, "metadata", _check_metadata(self.metadata, RATING_KEYS))

    @property
    def value(self) -> float:
        """The label as a number (0.0/1.0 for thumbs, 1.0 to 5.0 for stars)."""
        return float(self.label)

    def to_json(self) -> dict[str, Any]:
        """The rating as a JSON object in TRL's unpaired format, then metadata keys.

        Thumbs labels are written as ``true``/``false`` (what TRL expects). Stars ratings
        also get ``"scale": "stars"``: a file whose stars are all 1 would otherwise read
        back as thumbs.
        """
        obj: dict[str, Any] = {"prompt": self.prompt, "completion": self.completion}
        if self.scale == "thumbs":
            obj["label"] = bool(self.label)
        else:
            obj["label"] = self.label
            obj["scale"] = self.scale
        obj.update(self.metadata)
        return obj
