"""Reading and writing feedback files: preference pairs and ratings as JSON Lines.

Preference pairs are read from two layouts, chosen per record with ``format="auto"``:

* ``"trl"``: TRL's preference format, ``{"prompt": ..., "chosen": ..., "rejected": ...}``.
  Each field is either a string or, in TRL's conversational form, a list of
  ``{"role", "content"}`` messages (``chosen``/``rejected`` hold one assistant message).
  Extra keys become the pair's metadata.
* ``"hh"``: Anthropic HH-RLHF, ``{"chosen": transcript, "rejected": transcript}`` where a
  transcript is ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. Both are split at their last
  ``"\\n\\nAssistant:"``: the dialogue before it is the prompt (it must be the same in
  both) and the text after it is the reply.

Ratings are read from TRL's unpaired format, ``{"prompt", "completion", "label"}``.

Prompts are converted to the project's transcript format (``Role: text`` lines with roles
``User``, ``Agent``, ``System``). Every malformed line raises ``FeedbackFormatError``
naming the file, the line and what was expected, or with ``skip_invalid=True`` is skipped,
listed in ``FeedbackData.skipped`` and counted in a warning. Writers produce files the
readers accept and replace an existing file atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_envs.dialogue import Turn, format_transcript
from rlhf_envs.preference_data.records import (
    PAIR_KEYS,
    RATING_SCALES,
    TIE_KEY,
    PreferencePair,
    Rating,
    scale_description,
)

__all__ = [
    "FeedbackData",
    "FeedbackFormatError",
    "data_hash",
    "hh_to_turns",
    "read_feedback",
    "read_preferences",
    "read_ratings",
    "split_hh_transcript",
    "write_preferences",
    "write_ratings",
]

PathLike = str | os.PathLike[str]

PAIR_FORMATS = ("auto", "trl", "hh")

_TRL_PAIR = "a JSON object with string keys 'prompt', 'chosen', 'rejected' (TRL preference format)"
_HH_PAIR = "'chosen', 'rejected' transcripts (Anthropic HH-RLHF)"
_EXPECTED_PAIR = {
    "auto": f"expected {_TRL_PAIR} or {_HH_PAIR}",
    "trl": f"expected {_TRL_PAIR}",
    "hh": f"expected a JSON object with {_HH_PAIR}",
}
_EXPECTED_RATING = (
    "expected a JSON object with string keys 'prompt', 'completion' and a 'label' "
    "(TRL unpaired format)"
)

# Role names: TRL messages -> project roles -> transcript speaker names.
_TRL_ROLES = {"user": "user", "assistant": "agent", "system": "system"}
_HH_ROLES = {"Human": "user", "Assistant": "agent"}

_HH_ASSISTANT = "\n\nAssistant:"
_HH_HUMAN = "\n\nHuman:"
# A turn marker opens the text or follows a blank line; "Human:" inside a reply (a known
# quirk of HH-RLHF samples) is ordinary text, as it is for the last-Assistant split.
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")

_MAX_REASONS_SHOWN = 3


class FeedbackFormatError(ValueError):
    """A feedback file, or one line of it, is not in an accepted format.

    Attributes:
        reason: what was wrong and what is accepted, without the location.
        path: the file, as given to the reader.
        line: the 1-based line number, or ``None`` for a problem with the whole file.
    """

    def __init__(self, reason: str, path: str, line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call __init__ with the formatted message only.
        return (type(self), (self.reason, self.path, self.line))


class _Invalid(Exception):
    """One record is malformed; ``structural`` adds the format description to the message."""

    def __init__(self, reason: str, *, structural: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.structural = structural


@dataclass
class FeedbackData(Sequence):
    """The records read from one file, plus the lines skipped as invalid.

    Behaves as a read-only sequence of its records (``len``, indexing, iteration).

    Attributes:
        records: ``PreferencePair`` or ``Rating`` objects, in file order.
        path: the file read, as given to the reader.
        skipped: ``(line number, reason)`` for each invalid line skipped with
            ``skip_invalid=True``; empty otherwise.
    """

    records: list[Any]
    path: str
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: Any) -> Any:
        return self.records[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.records)

    def summary(self) -> str:
        """One line for logs, e.g. ``"1794 pairs read from f.jsonl (6 lines skipped: ...)"``."""
        n = len(self.records)
        if self.records and all(isinstance(r, Rating) for r in self.records):
            scales = sorted({r.scale for r in self.records})
            noun = f"{_plural(n, 'rating')} ({', '.join(scales)})"
        elif self.records and all(isinstance(r, PreferencePair) for r in self.records):
            noun = _plural(n, "pair")
        else:
            noun = _plural(n, "record")
        text = f"{noun} read from {self.path}"
        if self.skipped:
            text += f" ({_plural(len(self.skipped), 'line')} skipped: {_reasons(self.skipped)})"
        return text


# ----------------------------------------------------------------------------- HH-RLHF


def hh_to_turns(text: str) -> list[tuple[str, str]]:
    """Split an HH-RLHF transcript into turns.

    Args:
        text: e.g. ``"\\n\\nHuman: hi\\n\\nAssistant: hello"``.

    Returns:
        ``(role, text)`` per turn with the project's roles (``"user"`` for Human,
        ``"agent"`` for Assistant) and stripped texts, e.g.
        ``[("user", "hi"), ("agent", "hello")]``.

    Raises:
        ValueError: there is text before the first ``Human:``/``Assistant:`` turn.
    """
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError(
            f"has text before its first 'Human:' turn ({_snip(parts[0])!r}); an HH-RLHF "
            "transcript looks like '\\n\\nHuman: ...\\n\\nAssistant: ...'"
        )
    return [(_HH_ROLES[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def split_hh_transcript(text: str) -> tuple[str, str]:
    """Split an HH-RLHF transcript into its prompt and its final reply.

    Args:
        text: an HH-RLHF transcript ending with an Assistant turn.

    Returns:
        ``(prompt, reply)``: the dialogue before the last ``"\\n\\nAssistant:"`` as a
        project transcript (``"User: ...\\nAgent: ..."``) and the stripped reply after it
        (possibly empty).

    Raises:
        ValueError: there is no Assistant turn, the transcript ends with a Human turn, or
            there is text before the first turn.
    """
    turns, reply = _split_hh(text)
    return _format_turns(turns), reply


def _split_hh(text: str) -> tuple[list[tuple[str, str]], str]:
    if text.startswith(("Human:", "Assistant:")):
        text = "\n\n" + text  # same transcript without the usual leading blank line
    cut = text.rfind(_HH_ASSISTANT)
    if cut < 0:
        raise ValueError(
            "has no '\\n\\nAssistant:' turn; an HH-RLHF transcript looks like "
            "'\\n\\nHuman: ...\\n\\nAssistant: ...' and ends with the reply being compared"
        )
    reply = text[cut + len(_HH_ASSISTANT) :]
    if _HH_HUMAN in reply:
        raise ValueError(
            "ends with a 'Human:' turn, not an 'Assistant:' reply; an HH-RLHF transcript ends "
            "with the reply being compared"
        )
    return hh_to_turns(text[:cut]), reply.strip()


def _format_turns(turns: Iterable[tuple[str, str]]) -> str:
    return format_transcript([Turn(role, text) for role, text in turns])


def _parse_hh_pair(obj: dict[str, Any]) -> PreferencePair:
    if "prompt" in obj:
        raise _Invalid(
            "has a 'prompt' key, which HH-RLHF records do not have; read TRL records with "
            "format='trl' or format='auto'"
        )
    _require_keys(obj, ("chosen", "rejected"))
    split: dict[str, tuple[list[tuple[str, str]], str]] = {}
    for key in ("chosen", "rejected"):
        value = obj[key]
        if isinstance(value, list):
            raise _Invalid(
                f"{key!r} is a list of messages but there is no 'prompt' key; conversational "
                "records need a 'prompt' (TRL's implicit-prompt form is not supported)"
            )
        if not isinstance(value, str):
            raise _Invalid(
                f"{key!r} is {_json_type(value)}, expected a transcript string", structural=True
            )
        try:
            split[key] = _split_hh(value)
        except ValueError as exc:
            raise _Invalid(f"{key!r} {exc}") from None
        if not split[key][1]:
            raise _Invalid(
                f"the final reply in {key!r} is empty (the transcript ends with "
                "'\\n\\nAssistant:' and nothing after it); a preference pair needs two "
                "non-empty replies"
            )
    (chosen_turns, chosen), (rejected_turns, rejected) = split["chosen"], split["rejected"]
    if chosen_turns != rejected_turns:
        raise _Invalid(
            "'chosen' and 'rejected' have different prompts "
            f"({_first_difference(chosen_turns, rejected_turns)}); HH-RLHF pairs share the "
            "dialogue before the last '\\n\\nAssistant:' and differ only in the final reply"
        )
    extra = {k: v for k, v in obj.items() if k not in (*PAIR_KEYS, TIE_KEY)}
    return _make(
        PreferencePair,
        _format_turns(chosen_turns),
        chosen,
        rejected,
        {"source": "hh-rlhf", **extra},
        _tie(obj),
    )


def _first_difference(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    def show(turns: list[tuple[str, str]]) -> str:
        return repr(_snip(_format_turns([turns[i]]))) if i < len(turns) else "no such turn"

    return f"they differ from turn {i + 1} on: chosen has {show(a)}, rejected has {show(b)}"


# --------------------------------------------------------------------------------- TRL


def _messages_to_transcript(key: str, messages: list[Any]) -> str:
    turns = []
    for n, message in enumerate(messages, 1):
        role, content = _message(key, n, message)
        turns.append((_TRL_ROLES[role], content))
    return _format_turns(turns)


def _message(key: str, n: int, message: Any) -> tuple[str, str]:
    where = f"{key!r} message {n}"
    if not isinstance(message, dict) or "role" not in message or "content" not in message:
        raise _Invalid(f"{where} is not a {{'role': ..., 'content': ...}} object", structural=True)
    role, content = message["role"], message["content"]
    if role not in _TRL_ROLES:
        accepted = ", ".join(repr(r) for r in _TRL_ROLES)
        raise _Invalid(f"{where} has role {role!r}; accepted roles: {accepted}")
    if not isinstance(content, str):
        raise _Invalid(f"{where} content is {_json_type(content)}, expected a string")
    return role, content


def _prompt_text(obj: dict[str, Any]) -> str:
    value = obj["prompt"]
    if isinstance(value, list):
        return _messages_to_transcript("prompt", value)
    if not isinstance(value, str):
        raise _Invalid(
            f"'prompt' is {_json_type(value)}, expected a string or a list of "
            "{'role', 'content'} messages",
            structural=True,
        )
    return value


def _reply_text(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if isinstance(value, list):
        # Conversational form: the reply is a one-message list from the assistant.
        if len(value) != 1:
            raise _Invalid(
                f"{key!r} is a list of {len(value)} messages; the conversational form holds "
                "exactly one assistant message"
            )
        role, content = _message(key, 1, value[0])
        if role != "assistant":
            raise _Invalid(f"{key!r} message 1 has role {role!r}; a reply must be 'assistant'")
        return content
    if not isinstance(value, str):
        raise _Invalid(
            f"{key!r} is {_json_type(value)}, expected a string or a list with one "
            "{'role': 'assistant', 'content': ...} message",
            structural=True,
        )
    return value


def _parse_trl_pair(obj: dict[str, Any]) -> PreferencePair:
    _require_keys(obj, PAIR_KEYS)
    prompt = _prompt_text(obj)
    chosen, rejected = _reply_text(obj, "chosen"), _reply_text(obj, "rejected")
    extra = {k: v for k, v in obj.items() if k not in (*PAIR_KEYS, TIE_KEY)}
    return _make(PreferencePair, prompt, chosen, rejected, extra, _tie(obj))


def _tie(obj: dict[str, Any]) -> bool:
    value = obj.get(TIE_KEY, False)
    if not isinstance(value, bool):
        raise _Invalid(
            f"'tie' is {_json_type(value)}; it is true for a tie, false or absent otherwise"
        )
    return value


def _parse_pair(obj: Any, fmt: str) -> PreferencePair:
    _require_object(obj)
    kind = fmt if fmt != "auto" else ("trl" if "prompt" in obj else "hh")
    return _parse_trl_pair(obj) if kind == "trl" else _parse_hh_pair(obj)


# ----------------------------------------------------------------------------- ratings


def _rating_fields(obj: Any, scale: str) -> tuple[str, str, Any, str | None, dict[str, Any]]:
    """Check a rating object's shape; the label is checked once the scale is known."""
    _require_object(obj)
    _require_keys(obj, ("prompt", "completion", "label"))
    prompt, completion = _prompt_text(obj), _reply_text(obj, "completion")
    label = obj["label"]
    if isinstance(label, float) and math.isfinite(label) and label.is_integer():
        label = int(label)  # 4.0 from a float column is the integer 4
    elif not isinstance(label, (bool, int, float)):
        raise _Invalid(f"label {label!r} is {_json_type(label)}; {_scale_words(scale)}")
    # Other floats (3.5) are left to Rating, whose message names the scale in use.
    declared = obj.get("scale")
    if declared is not None:
        if declared not in RATING_SCALES:
            accepted = ", ".join(repr(s) for s in RATING_SCALES)
            raise _Invalid(f"'scale' is {declared!r}; accepted: {accepted}")
        if scale != "auto" and declared != scale:
            raise _Invalid(f"the record says scale {declared!r} but scale={scale!r} was asked for")
    extra = {k: v for k, v in obj.items() if k not in ("prompt", "completion", "label", "scale")}
    return prompt, completion, label, declared, extra


def _scale_words(scale: str) -> str:
    if scale == "auto":
        return "; ".join(scale_description(s) for s in RATING_SCALES)
    return scale_description(scale)


def _detect_scale(labels: list[Any]) -> str:
    """The scale of a file's labels: thumbs if all are bools or 0/1, else the better fit."""
    thumbs = sum(1 for x in labels if isinstance(x, bool) or x in (0, 1))
    if thumbs == len(labels):
        return "thumbs"
    low, high = RATING_SCALES["stars"]
    stars = sum(
        1 for x in labels if isinstance(x, int) and not isinstance(x, bool) and low <= x <= high
    )
    # A few stray labels should not flip a whole thumbs file to stars (every valid line
    # would then be reported); they are reported themselves instead.
    return "thumbs" if thumbs > stars else "stars"


# ----------------------------------------------------------------------------- reading


def read_preferences(
    path: PathLike, *, format: str = "auto", skip_invalid: bool = False
) -> FeedbackData:
    """Read preference pairs from a JSON Lines file.

    Args:
        path: the file.
        format: ``"trl"``, ``"hh"`` or ``"auto"`` (per record: ``"trl"`` if it has a
            ``prompt`` key, else ``"hh"``). See the module docstring for the layouts.
        skip_invalid: skip malformed lines (listed in ``skipped`` and counted in a
            warning) instead of raising on the first one.

    Returns:
        ``FeedbackData`` of ``PreferencePair``. HH-RLHF pairs get ``{"source": "hh-rlhf"}``
        metadata; extra keys of a record become metadata.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        FeedbackFormatError: a line is malformed (unless ``skip_invalid``), or the file
            holds no valid pair.
        ValueError: ``format`` is not one of the accepted names.
    """
    return _read_preferences(path, format, skip_invalid)


def _read_preferences(path: PathLike, fmt: str, skip_invalid: bool) -> FeedbackData:
    if fmt not in PAIR_FORMATS:
        accepted = ", ".join(repr(f) for f in PAIR_FORMATS)
        raise ValueError(f"format must be one of {accepted}, got {fmt!r}")
    name = os.fspath(path)
    return _finish(
        _pairs_from(_load_lines(name), name, fmt, skip_invalid), "pairs", _EXPECTED_PAIR[fmt]
    )


def _pairs_from(
    lines: Iterable[tuple[int, Any]], name: str, fmt: str, skip_invalid: bool
) -> FeedbackData:
    expected = _EXPECTED_PAIR[fmt]
    records: list[PreferencePair] = []
    skipped: list[tuple[int, str]] = []
    for line, obj in lines:
        try:
            if isinstance(obj, _Invalid):
                raise obj
            records.append(_parse_pair(obj, fmt))
        except _Invalid as exc:
            _fail_or_skip(exc, name, line, expected, skip_invalid, skipped)
    return FeedbackData(records, name, skipped)


def read_ratings(
    path: PathLike, *, scale: str = "auto", skip_invalid: bool = False
) -> FeedbackData:
    """Read ratings of single replies from a JSON Lines file (TRL unpaired format).

    Each line is ``{"prompt", "completion", "label"}``; ``prompt`` and ``completion`` may
    be conversational message lists, extra keys become metadata. A record's own
    ``"scale"`` key (written for stars ratings) takes precedence over detection.

    Args:
        path: the file.
        scale: ``"thumbs"`` (labels true/false or 0/1), ``"stars"`` (integers 1 to 5) or
            ``"auto"``: thumbs if every label is a bool or 0/1, otherwise the scale that
            fits most labels (stars for a clean stars file). Integral floats such as
            ``4.0`` count as integers.
        skip_invalid: skip malformed lines instead of raising on the first one.

    Returns:
        ``FeedbackData`` of ``Rating``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        FeedbackFormatError: a line is malformed or its label does not fit the scale
            (unless ``skip_invalid``), or the file holds no valid rating.
        ValueError: ``scale`` is not one of the accepted names.
    """
    return _read_ratings(path, scale, skip_invalid)


def _read_ratings(path: PathLike, scale: str, skip_invalid: bool) -> FeedbackData:
    if scale != "auto" and scale not in RATING_SCALES:
        accepted = ", ".join(repr(s) for s in ("auto", *RATING_SCALES))
        raise ValueError(f"scale must be one of {accepted}, got {scale!r}")
    name = os.fspath(path)
    return _finish(
        _ratings_from(_load_lines(name), name, scale, skip_invalid), "ratings", _EXPECTED_RATING
    )


def _ratings_from(
    lines: Iterable[tuple[int, Any]], name: str, scale: str, skip_invalid: bool
) -> FeedbackData:
    # Two passes: the whole file's labels decide an "auto" scale before any is checked.
    parsed: list[tuple[int, Any]] = []
    for line, obj in lines:
        try:
            parsed.append((line, obj if isinstance(obj, _Invalid) else _rating_fields(obj, scale)))
        except _Invalid as exc:
            parsed.append((line, exc))
    file_scale, detected = scale, False
    if scale == "auto":
        labels = [p[2] for _, p in parsed if not isinstance(p, _Invalid) and p[3] is None]
        file_scale, detected = _detect_scale(labels), True
    records: list[Rating] = []
    skipped: list[tuple[int, str]] = []
    for line, item in parsed:
        try:
            if isinstance(item, _Invalid):
                raise item
            prompt, completion, label, declared, extra = item
            try:
                records.append(Rating(prompt, completion, label, declared or file_scale, extra))
            except ValueError as exc:
                note = ""
                if detected and declared is None and "label" in str(exc):
                    note = " (scale detected from the file's labels; pass scale= to set it)"
                raise _Invalid(f"{exc}{note}") from None
        except _Invalid as exc:
            _fail_or_skip(exc, name, line, _EXPECTED_RATING, skip_invalid, skipped)
    return FeedbackData(records, name, skipped)


def read_feedback(path: PathLike, *, skip_invalid: bool = False) -> FeedbackData:
    """Read a feedback file of pairs, of ratings, or of both mixed.

    A JSON object with a ``completion`` key is a rating, any other line a preference pair
    (a tie when it has ``"tie": true``). Mixed files train one reward model on both kinds
    at once (``train_reward_model``'s joint loss).

    Args:
        path: the file.
        skip_invalid: as for ``read_preferences``/``read_ratings``.

    Returns:
        The ``PreferencePair`` records, then the ``Rating`` records, each kind in file
        order (read with automatic format and scale detection).

    Raises:
        FileNotFoundError, FeedbackFormatError: as for the two readers.
    """
    name = os.fspath(path)
    lines = list(_load_lines(name))
    is_rating = [isinstance(obj, dict) and "completion" in obj for _, obj in lines]
    first = next(
        (r for (_, obj), r in zip(lines, is_rating, strict=True) if isinstance(obj, dict)), False
    )
    if all(
        r == first for (_, obj), r in zip(lines, is_rating, strict=True) if isinstance(obj, dict)
    ):
        if first:
            return _finish(
                _ratings_from(lines, name, "auto", skip_invalid), "ratings", _EXPECTED_RATING
            )
        return _finish(
            _pairs_from(lines, name, "auto", skip_invalid), "pairs", _EXPECTED_PAIR["auto"]
        )
    # Lines that are not objects go to the kind of the file's first record, for its message.
    pairs = _pairs_from(
        [
            x
            for x, r in zip(lines, is_rating, strict=True)
            if not r and (isinstance(x[1], dict) or not first)
        ],
        name,
        "auto",
        skip_invalid,
    )
    ratings = _ratings_from(
        [
            x
            for x, r in zip(lines, is_rating, strict=True)
            if r or (not isinstance(x[1], dict) and first)
        ],
        name,
        "auto",
        skip_invalid,
    )
    skipped = sorted([*pairs.skipped, *ratings.skipped])
    return _finish(FeedbackData([*pairs.records, *ratings.records], name, skipped), "records", "")


def _load_lines(name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, JSON value or _Invalid)`` for each non-blank line of the file."""
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no feedback file at {name!r} (looked for {os.path.abspath(name)})"
        ) from None
    except IsADirectoryError:
        raise FeedbackFormatError(
            "is a folder; give a JSON Lines file (one preference pair or rating per line)", name
        ) from None
    # Split on b"\n" only: str.splitlines() would also split inside JSON strings holding
    # U+2028 or form feeds, which are legal there.
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            yield (
                number,
                _Invalid(
                    f"not valid UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1})"
                ),
            )
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicate_keys)
            if "\\u" in text and _has_lone_surrogate(value):
                # Only a \uXXXX escape can make one (the line itself is valid UTF-8); such a
                # text cannot be stored, tokenised or written back out.
                raise _Invalid(
                    "a text holds a lone surrogate escape (e.g. \\ud800): not valid Unicode"
                )
            yield number, value
        except json.JSONDecodeError as exc:
            yield (
                number,
                _Invalid(f"not valid JSON ({exc.msg} at column {exc.colno})", structural=True),
            )
        except RecursionError:
            # A record is a flat object of texts; nesting this deep is never one.
            yield number, _Invalid("JSON nested too deeply to read", structural=True)
        except ValueError:
            # The only other ValueError json raises: Python refuses to parse integers of more
            # than 4,300 digits (sys.get_int_max_str_digits, a guard against slow parsing).
            yield number, _Invalid("not readable JSON: a number with thousands of digits")
        except _Invalid as exc:
            yield number, exc


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # json would silently keep the last one; which text was meant is unknowable.
            raise _Invalid(f"key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def _fail_or_skip(
    exc: _Invalid, name: str, line: int, expected: str, skip: bool, skipped: list[tuple[int, str]]
) -> None:
    reason = f"{exc.reason}; {expected}" if exc.structural and expected else exc.reason
    if not skip:
        raise FeedbackFormatError(reason, name, line) from None
    skipped.append((line, reason))


def _finish(data: FeedbackData, noun: str, expected: str) -> FeedbackData:
    if not data.records:
        if data.skipped:
            n = len(data.skipped)
            which = "the only line was" if n == 1 else f"all {n} lines were"
            reason = f"no valid {noun}: {which} invalid ({_reasons(data.skipped)})"
        else:
            reason = f"no {noun} found (the file is empty or has only blank lines); {expected}"
        raise FeedbackFormatError(reason, data.path)
    if data.skipped:
        warnings.warn(
            f"{data.path}: skipped {_plural(len(data.skipped), 'invalid line')} "
            f"({_reasons(data.skipped)}); the list is in FeedbackData.skipped",
            # Every public reader reaches here through one private one: point at its caller.
            stacklevel=4,
        )
    return data


# ----------------------------------------------------------------------------- writing


def write_preferences(path: PathLike, pairs: Iterable[PreferencePair]) -> int:
    """Write preference pairs as JSON Lines in TRL's preference format.

    One ``{"prompt", "chosen", "rejected", **metadata}`` object per line, UTF-8 text
    unescaped. The file is replaced atomically; parent folders are created.

    Args:
        path: the file to write.
        pairs: ``PreferencePair`` objects.

    Returns:
        The number of pairs written.

    Raises:
        TypeError: an item is not a ``PreferencePair`` or its metadata cannot be written
            as JSON. An existing file at ``path`` is then left as it was.
    """
    return _write_jsonl(path, pairs, PreferencePair)


def write_ratings(path: PathLike, ratings: Iterable[Rating]) -> int:
    """Write ratings as JSON Lines in TRL's unpaired format.

    One ``{"prompt", "completion", "label", **metadata}`` object per line; thumbs labels
    are written as ``true``/``false``, stars as integers with ``"scale": "stars"``. The
    file is replaced atomically; parent folders are created.

    Args:
        path: the file to write.
        ratings: ``Rating`` objects.

    Returns:
        The number of ratings written.

    Raises:
        TypeError: an item is not a ``Rating`` or its metadata cannot be written as JSON.
            An existing file at ``path`` is then left as it was.
    """
    return _write_jsonl(path, ratings, Rating)


def _write_jsonl(
    path: PathLike, records: Iterable[Any], record_type: type[PreferencePair] | type[Rating]
) -> int:
    target = Path(os.fspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target so os.replace is a rename, never a copy across devices.
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    # Mode 0o666 less the umask, as open() would give; mkstemp's 0o600 would leak through.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            for index, record in enumerate(records):
                out.write(_json_line(record, record_type, index))
                count += 1
            out.flush()
            os.fsync(out.fileno())
        if target.exists():
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return count


def _json_line(record: Any, record_type: type[PreferencePair] | type[Rating], index: int) -> str:
    if not isinstance(record, record_type):
        raise TypeError(f"item {index} is {type(record).__name__}, expected {record_type.__name__}")
    try:
        text = json.dumps(
            record.to_json(), ensure_ascii=False, allow_nan=False, default=_json_default
        )
        text.encode("utf-8")  # lone surrogates pass dumps but not the file's encoder
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{record_type.__name__} {index} cannot be written as JSON: {exc}") from exc
    return text + "\n"


def _json_default(value: Any) -> Any:
    # Annotator margins are often numpy scalars or arrays; write them as plain numbers.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def data_hash(path: PathLike) -> str:
    """A content hash of a data file, for recording which data a checkpoint used.

    Args:
        path: the file.

    Returns:
        ``"sha256:"`` followed by the hex digest of the file's bytes.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


# ----------------------------------------------------------------------------- helpers


def _make(cls: type, *args: Any) -> Any:
    """Build a record, turning its validation error into an invalid-line reason."""
    try:
        return cls(*args)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _require_object(obj: Any) -> None:
    if not isinstance(obj, dict):
        raise _Invalid(f"the line is {_json_type(obj)}, not a JSON object", structural=True)


def _require_keys(obj: dict[str, Any], keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise _Invalid(f"missing {'key' if len(missing) == 1 else 'keys'} {names}", structural=True)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _snip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _reasons(skipped: list[tuple[int, str]]) -> str:
    shown = "; ".join(
        f"line {line}: {_snip(reason, 80)}" for line, reason in skipped[:_MAX_REASONS_SHOWN]
    )
    more = len(skipped) - _MAX_REASONS_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")
