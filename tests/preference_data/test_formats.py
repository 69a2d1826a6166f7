"""Preference-data files: round trips, TRL and HH-RLHF layouts, malformed input, writes."""

from __future__ import annotations

import hashlib
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from rlhf_envs.preference_data import (
    FeedbackData,
    FeedbackFormatError,
    PreferencePair,
    Rating,
    data_hash,
    read_feedback,
    read_preferences,
    read_ratings,
    write_preferences,
    write_ratings,
)
from rlhf_envs.preference_data.formats import hh_to_turns, split_hh_transcript


def write_lines(path: Path, *objects: object) -> Path:
    """One line per object: str objects verbatim, anything else as JSON."""
    lines = [o if isinstance(o, str) else json.dumps(o, ensure_ascii=False) for o in objects]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def hh(*turns: str) -> str:
    """An HH-RLHF transcript from alternating Human/Assistant texts."""
    speakers = ("Human", "Assistant")
    return "".join(f"\n\n{speakers[i % 2]}: {text}" for i, text in enumerate(turns))


PAIR = {"prompt": "User: hi", "chosen": "Hello!", "rejected": "Go away."}
RATING = {"prompt": "User: hi", "completion": "Hello!", "label": 4}


# ---------------------------------------------------------------------------- round trips


def test_pairs_round_trip_with_metadata_and_unicode(tmp_path):
    pairs = [
        PreferencePair(
            "User: Où est ma commande ?\nAgent: Je regarde.",
            "Elle arrive demain 📦",
            "Aucune idée",
            {"annotator": "rubric:warm", "margin": 1.5, "gold_margin": -0.25},
        ),
        PreferencePair("System: be brief\nUser: 你好", " 你好！", "再见", {"tags": ["a", "b"]}),
        PreferencePair("", "line one\nline two", "line one"),
    ]
    path = tmp_path / "deep" / "er" / "prefs.jsonl"
    assert write_preferences(path, pairs) == 3
    text = path.read_text(encoding="utf-8")
    assert "📦" in text and "\\u" not in text  # written unescaped
    assert json.loads(text.splitlines()[0])["annotator"] == "rubric:warm"  # top level
    data = read_preferences(path)
    assert list(data) == pairs and data.skipped == []
    assert data.path == str(path)


def test_ratings_round_trip_thumbs_as_json_booleans(tmp_path):
    ratings = [
        Rating("User: hi", "Hello!", 1, "thumbs", {"annotator": "a"}),
        Rating("User: hi", "Bye.", 0, "thumbs"),
    ]
    path = tmp_path / "thumbs.jsonl"
    assert write_ratings(path, ratings) == 2
    labels = [json.loads(line)["label"] for line in path.read_text().splitlines()]
    assert labels == [True, False]  # TRL's unpaired format
    assert "scale" not in path.read_text()
    assert list(read_ratings(path)) == ratings


def test_ratings_round_trip_stars_even_when_all_are_one_star(tmp_path):
    for labels in ([1, 3, 5], [1, 1]):
        ratings = [
            Rating("User: ✓", f"reply {i} — ok", stars, "stars") for i, stars in enumerate(labels)
        ]
        path = tmp_path / "stars.jsonl"
        write_ratings(path, ratings)
        assert [json.loads(line)["label"] for line in path.read_text().splitlines()] == labels
        assert list(read_ratings(path)) == ratings  # the scale key keeps [1, 1] as stars


def test_writer_converts_numpy_metadata_and_refuses_other_records(tmp_path):
    pair = PreferencePair("", "a", "b", {"margin": np.float32(0.5), "votes": np.arange(2)})
    write_preferences(tmp_path / "p.jsonl", [pair])
    assert read_preferences(tmp_path / "p.jsonl")[0].metadata == {"margin": 0.5, "votes": [0, 1]}
    with pytest.raises(TypeError, match="item 0 is dict, expected PreferencePair"):
        write_preferences(tmp_path / "p.jsonl", [PAIR])
    with pytest.raises(TypeError, match="expected Rating"):
        write_ratings(tmp_path / "r.jsonl", [pair])


# ----------------------------------------------------------------------- TRL layouts


def test_conversational_trl_pairs_become_project_transcripts(tmp_path):
    record = {
        "prompt": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Where is my parcel?"},
            {"role": "assistant", "content": "Let me check."},
            {"role": "user", "content": "Thanks"},
        ],
        "chosen": [{"role": "assistant", "content": "It arrives tomorrow."}],
        "rejected": [{"role": "assistant", "content": "No idea."}],
        "score_chosen": 8.0,
    }
    pair = read_preferences(write_lines(tmp_path / "conv.jsonl", record))[0]
    assert pair.prompt == (
        "System: Be kind.\nUser: Where is my parcel?\nAgent: Let me check.\nUser: Thanks"
    )
    assert (pair.chosen, pair.rejected) == ("It arrives tomorrow.", "No idea.")
    assert pair.metadata == {"score_chosen": 8.0}


def test_conversational_ratings(tmp_path):
    record = {
        "prompt": [{"role": "user", "content": "hi"}],
        "completion": [{"role": "assistant", "content": "hello"}],
        "label": False,
    }
    rating = read_ratings(write_lines(tmp_path / "conv.jsonl", record))[0]
    assert (rating.prompt, rating.completion, rating.label, rating.scale) == (
        "User: hi",
        "hello",
        0,
        "thumbs",
    )


def test_rating_scale_detection(tmp_path):
    ints = read_ratings(
        write_lines(tmp_path / "a.jsonl", {**RATING, "label": 0}, {**RATING, "label": 1})
    )
    assert [r.scale for r in ints] == ["thumbs", "thumbs"]
    floats = read_ratings(
        write_lines(tmp_path / "b.jsonl", {**RATING, "label": 4.0}, {**RATING, "label": 1})
    )
    assert [(r.label, r.scale) for r in floats] == [(4, "stars"), (1, "stars")]
    assert "ratings (stars)" in floats.summary()
    # One stray label does not turn a thumbs file into stars: only the stray line is bad.
    path = write_lines(tmp_path / "c.jsonl", *({**RATING, "label": b} for b in [True, False, 7]))
    with pytest.raises(
        FeedbackFormatError,
        match=r"line 3: label 7 is out of range for the "
        r"thumbs scale.*scale detected",
    ):
        read_ratings(path)
    with pytest.raises(
        FeedbackFormatError, match="line 1: label 4 is out of range for the thumbs scale"
    ):
        read_ratings(write_lines(tmp_path / "d.jsonl", RATING), scale="thumbs")
    with pytest.raises(ValueError, match="scale must be one of 'auto', 'thumbs', 'stars'"):
        read_ratings(path, scale="likert")


def test_auto_format_decides_per_record(tmp_path):
    path = write_lines(
        tmp_path / "mixed.jsonl",
        PAIR,
        {"chosen": hh("hi", "Hello!"), "rejected": hh("hi", "Go away.")},
    )
    trl, hh_pair = read_preferences(path)
    assert trl == PreferencePair("User: hi", "Hello!", "Go away.")
    assert hh_pair == PreferencePair("User: hi", "Hello!", "Go away.", {"source": "hh-rlhf"})
    with pytest.raises(
        FeedbackFormatError,
        match="line 2: missing key 'prompt'; expected a "
        r"JSON object .* \(TRL preference format\)$",
    ):
        read_preferences(path, format="trl")
    with pytest.raises(FeedbackFormatError, match="line 1: has a 'prompt' key"):
        read_preferences(path, format="hh")
    with pytest.raises(ValueError, match="format must be one of 'auto', 'trl', 'hh'"):
        read_preferences(path, format="anthropic")


def test_blank_lines_are_ignored_and_line_numbers_count_them(tmp_path):
    path = write_lines(tmp_path / "gaps.jsonl", "", PAIR, "   ", "", {**PAIR, "chosen": 1})
    with pytest.raises(FeedbackFormatError) as info:
        read_preferences(path)
    assert info.value.line == 5


def test_read_feedback_tells_pairs_from_ratings(tmp_path):
    assert isinstance(read_feedback(write_lines(tmp_path / "p.jsonl", "", PAIR))[0], PreferencePair)
    assert isinstance(read_feedback(write_lines(tmp_path / "r.jsonl", RATING))[0], Rating)


def test_feedback_data_is_a_sequence_with_a_summary(tmp_path):
    path = write_lines(tmp_path / "s.jsonl", PAIR, "{oops", PAIR)
    with pytest.warns(UserWarning, match=r"skipped 1 invalid line \(line 2: not valid JSON"):
        data = read_preferences(path, skip_invalid=True)
    assert isinstance(data, FeedbackData) and len(data) == 2 and data[-1] == data[0]
    assert data[:1] == [data[0]] and list(reversed(data)) == list(data)
    assert data.summary().startswith(
        f"2 pairs read from {path} (1 line skipped: line 2: not valid JSON"
    )


# ------------------------------------------------------------------------------ HH-RLHF


def test_hh_transcripts_split_at_the_last_assistant_turn():
    text = hh("What is 2+2?", "4.", "  And 3+3? \n", " 6, since 3+3=6.  Human: thanks")
    prompt, reply = split_hh_transcript(text)
    assert prompt == "User: What is 2+2?\nAgent: 4.\nUser: And 3+3?"
    assert reply == "6, since 3+3=6.  Human: thanks"  # inline "Human:" is reply text
    assert hh_to_turns(text)[:2] == [("user", "What is 2+2?"), ("agent", "4.")]
    assert split_hh_transcript("Human: hi\n\nAssistant: yo") == ("User: hi", "yo")
    with pytest.raises(ValueError, match="no '\\\\n\\\\nAssistant:' turn"):
        split_hh_transcript(hh("hi"))
    with pytest.raises(ValueError, match="ends with a 'Human:' turn"):
        split_hh_transcript(hh("hi", "yo", "more?"))


# Lines of the sample (tests/data/hh-rlhf/) that are not valid pairs: one whose chosen
# transcript ends with an empty Assistant turn, one where a reply ran on into an inline
# "Human:" turn so the last "\n\nAssistant:" falls at a different place in chosen and
# rejected.
HH_EMPTY_CHOSEN = [87]
HH_DIFFERENT_PROMPTS = [109]
HH_SAMPLE_SHA256 = "6f71f90299ac8cff36770f0a508765a57e26861ae09c5d3c007bc02948edde4c"


def test_hh_sample_raises_at_its_first_bad_line(hh_sample):
    with pytest.raises(FeedbackFormatError) as info:
        read_preferences(hh_sample)
    assert info.value.line == 87 and info.value.path == str(hh_sample)
    assert "final reply in 'chosen' is empty" in str(info.value)


def test_hh_sample_reads_108_of_110_pairs(hh_sample):
    with pytest.warns(UserWarning, match="skipped 2 invalid lines"):
        data = read_preferences(hh_sample, format="hh", skip_invalid=True)
    assert len(data) == 108
    assert [line for line, _ in data.skipped] == HH_EMPTY_CHOSEN + HH_DIFFERENT_PROMPTS
    for line, reason in data.skipped:
        expected = "is empty" if line in HH_EMPTY_CHOSEN else "have different prompts"
        assert expected in reason
    assert data.summary().startswith(f"108 pairs read from {hh_sample} (2 lines skipped")
    for pair in data:
        assert pair.prompt.startswith("User:")
        assert pair.prompt.split("\n")[-1].startswith("User:")  # the reply answers the user
        assert pair.chosen != pair.rejected
        assert pair.chosen == pair.chosen.strip() and pair.chosen
        assert "\n\nHuman:" not in pair.prompt and "\n\nAssistant:" not in pair.prompt
        assert pair.metadata == {"source": "hh-rlhf"}
    # The same pairs in TRL's layout read back identically.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(read_preferences(hh_sample, skip_invalid=True)) == list(data)


def test_hh_sample_hash_is_stable(hh_sample):
    assert data_hash(hh_sample) == f"sha256:{HH_SAMPLE_SHA256}"


# ------------------------------------------------------------------------- malformed input

CONV_TOOL = {"prompt": [{"role": "tool", "content": "x"}], "chosen": "a", "rejected": "b"}

# (case, reader, bad line, words the error must contain). Each bad line sits between two
# valid ones, so the error is on line 2 and skipping keeps two records.
MALFORMED = [
    (
        "bad-json",
        read_preferences,
        '{"prompt": "hi", "chosen": "a",',
        "not valid JSON (Expecting property name enclosed in double quotes at column 32)",
    ),
    ("not-object", read_preferences, '["hi", "a", "b"]', "the line is an array, not a JSON object"),
    (
        "missing-key",
        read_preferences,
        {"prompt": "hi", "chosen": "a"},
        (
            "missing key 'rejected'; expected a JSON object with string keys 'prompt', 'chosen', "
            "'rejected' (TRL preference format) or 'chosen', 'rejected' transcripts (Anthropic "
            "HH-RLHF)"
        ),
    ),
    (
        "non-string",
        read_preferences,
        {**PAIR, "chosen": 3},
        "'chosen' is a number, expected a string",
    ),
    ("empty-text", read_preferences, {**PAIR, "rejected": " \n"}, "rejected is empty"),
    (
        "identical",
        read_preferences,
        {**PAIR, "rejected": PAIR["chosen"]},
        "chosen and rejected are identical",
    ),
    ("bad-role", read_preferences, CONV_TOOL, "'prompt' message 1 has role 'tool'"),
    (
        "duplicate-key",
        read_preferences,
        '{"prompt": "", "chosen": "a", "chosen": "b"}',
        "key 'chosen' appears twice",
    ),
    (
        "hh-no-assistant",
        read_preferences,
        {"chosen": hh("hi"), "rejected": hh("hi", "yo")},
        "'chosen' has no '\\n\\nAssistant:' turn",
    ),
    (
        "hh-empty-reply",
        read_preferences,
        {"chosen": hh("hi", "yo"), "rejected": hh("hi", "")},
        "the final reply in 'rejected' is empty",
    ),
    (
        "hh-different-prompts",
        read_preferences,
        {"chosen": hh("hi", "yo"), "rejected": hh("hello", "yo!")},
        (
            "'chosen' and 'rejected' have different prompts (they differ from turn 1 on: "
            "chosen has 'User: hi', rejected has 'User: hello')"
        ),
    ),
    (
        "rating-out-of-range",
        read_ratings,
        {**RATING, "label": 9},
        "label 9 is out of range for the stars scale; stars labels are integers 1 to 5",
    ),
    (
        "rating-non-integer",
        read_ratings,
        {**RATING, "label": 3.5},
        "label 3.5 is not an integer; stars labels are integers 1 to 5",
    ),
    (
        "rating-wrong-type",
        read_ratings,
        {**RATING, "label": "good"},
        "label 'good' is a string; thumbs labels are true/false or 0/1; stars labels are",
    ),
    (
        "rating-missing-completion",
        read_ratings,
        {"prompt": "", "label": 3},
        (
            "missing key 'completion'; expected a JSON object with string keys 'prompt', "
            "'completion' and a 'label' (TRL unpaired format)"
        ),
    ),
]


@pytest.mark.parametrize(
    ("case", "reader", "bad", "words"), MALFORMED, ids=[case for case, *_ in MALFORMED]
)
def test_each_malformed_line_gets_its_own_error(tmp_path, case, reader, bad, words):
    good = RATING if reader is read_ratings else PAIR
    path = write_lines(tmp_path / f"{case}.jsonl", good, bad, {**good, "prompt": "User: again"})
    with pytest.raises(FeedbackFormatError) as info:
        reader(path)
    error = info.value
    assert (error.path, error.line) == (str(path), 2)
    assert str(error) == f"{path}, line 2: {error.reason}"
    assert words in error.reason

    with pytest.warns(UserWarning, match=f"{path}: skipped 1 invalid line"):
        data = reader(path, skip_invalid=True)
    assert len(data) == 2 and data.skipped == [(2, error.reason)]


def test_malformed_cases_have_distinct_messages():
    assert len({words.split(";")[0] for *_, words in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_empty_file_is_an_error_without_a_line(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(FeedbackFormatError, match=f"^{path}: no pairs found") as info:
        read_preferences(path)
    assert info.value.line is None
    with pytest.raises(FeedbackFormatError, match="no ratings found"):
        read_ratings(path)


def test_a_file_of_only_invalid_lines_is_an_error_even_when_skipping(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", "[]", "{")
    with pytest.raises(FeedbackFormatError, match="no valid pairs: all 2 lines were invalid"):
        read_preferences(path, skip_invalid=True)


def test_invalid_utf8_is_reported_with_its_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(PAIR).encode() + b'\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(FeedbackFormatError, match="line 2: not valid UTF-8 text"):
        read_preferences(path)


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no feedback file at .*nope.jsonl"):
        read_preferences(tmp_path / "nope.jsonl")


def test_format_error_pickles():
    error = pickle.loads(pickle.dumps(FeedbackFormatError("bad", "f.jsonl", 3)))
    assert (str(error), error.line, error.path) == ("f.jsonl, line 3: bad", 3, "f.jsonl")


# ---------------------------------------------------------------------------------- writing


def test_failed_write_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "prefs.jsonl"
    write_preferences(path, [PreferencePair("User: hi", "a", "b")])
    path.chmod(0o640)
    before = path.read_bytes()
    broken = PreferencePair("User: hi", "c", "d", {"annotator": object()})
    with pytest.raises(TypeError, match="PreferencePair 1 cannot be written as JSON"):
        write_preferences(path, [PreferencePair("User: hi", "x", "y"), broken])
    with pytest.raises(TypeError, match="PreferencePair 0 cannot be written as JSON"):
        write_preferences(path, [PreferencePair("", "c", "d", {"margin": float("nan")})])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["prefs.jsonl"]  # no temp file left

    write_preferences(path, [PreferencePair("User: hi", "x", "y")])
    assert path.stat().st_mode & 0o777 == 0o640  # replacing keeps the file's permissions


def test_data_hash_follows_content(tmp_path):
    path = tmp_path / "p.jsonl"
    write_preferences(path, [PreferencePair("", "a", "b")])
    first = data_hash(path)
    assert first == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    write_preferences(path, [PreferencePair("", "a", "c")])
    assert data_hash(path) != first
