"""The SQLite feedback store: schema and migrations, idempotent labels, refusals that
write nothing, import/export, and many writer processes at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from rlhf_envs.feedback import PreferencePair, read_preferences, read_ratings, write_preferences
from rlhf_envs.feedback.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    FeedbackStore,
    LabelConflict,
    StoreError,
    UnknownItem,
    is_heldout,
)
from rlhf_envs.preference_data.formats import FeedbackFormatError


@pytest.fixture
def store(tmp_path):
    with FeedbackStore(tmp_path / "feedback.sqlite") as s:
        yield s


def _comparison(store, n=0, **kw):
    return store.add_comparison(
        f"User: question {n}", f"answer A{n}", f"answer B{n}", source="test", **kw
    )


def test_new_database_is_wal_with_current_schema(store):
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "annotators",
        "comparisons",
        "labels",
        "rating_items",
        "ratings",
        "reward_models",
    } <= tables
    assert store.integrity_check() == "ok"


def test_old_schema_is_migrated_without_losing_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])  # a database written by the schema-1 release
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO annotators VALUES ('ann-0000000001', 'Ada', 0)")
    conn.execute(
        "INSERT INTO comparisons (context, reply_a, reply_b, source, created_at) "
        "VALUES ('', 'x', 'y', 'old', 0)"
    )
    conn.execute(
        "INSERT INTO labels (label_id, comparison_id, annotator_id, choice, created_at) "
        "VALUES ('label-0001', 1, 'ann-0000000001', 'b', 0)"
    )
    conn.commit()
    conn.close()
    with FeedbackStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [(p.chosen, p.rejected) for p in store.preference_pairs()] == [("y", "x")]
        indexes = {
            r[0]
            for r in sqlite3.connect(path).execute(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
            )
        }
        assert "labels_by_comparison" in indexes


def test_newer_schema_and_non_databases_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite"
    sqlite3.connect(newer).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this rlhf-envs knows"):
        FeedbackStore(newer)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, just text " * 100)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        FeedbackStore(junk)
    with pytest.raises(StoreError, match="does not exist"):
        FeedbackStore(tmp_path / "missing-folder" / "f.sqlite")


def test_labels_are_idempotent_and_conflicts_are_refused(store):
    ada, bob = store.annotator("Ada"), store.annotator("Bob")
    assert ada.startswith("ann-") and "Ada" not in ada
    assert store.annotator("  Ada ") == ada  # the same person, however the name was padded
    c = _comparison(store)
    assert store.add_label("label-0001", c, ada, "a") is True
    assert store.add_label("label-0001", c, ada, "a") is False  # the same form sent again
    with pytest.raises(LabelConflict, match="already used for a different label"):
        store.add_label("label-0001", c, ada, "b")
    with pytest.raises(LabelConflict, match="already labelled"):
        store.add_label("label-0002", c, ada, "b")  # a second tab, a new label id
    assert store.add_label("label-0003", c, bob, "tie") is True
    assert store.counts()["labels"] == 2


@pytest.mark.parametrize(
    "args, error, message",
    [
        (
            ("label-0009", 1, "A", "maybe"),
            StoreError,
            "choice 'maybe' is not one of a, b, tie, skip",
        ),
        (("short", 1, "A", "a"), StoreError, "label_id must be 8 to 100"),
        (("label-0009", 999, "A", "a"), UnknownItem, "no comparison with id 999"),
        (("label-0009", 1, "ann-nobody", "a"), UnknownItem, "unknown annotator"),
        (("label-0009", "1", "A", "a"), StoreError, "comparison_id must be an integer"),
    ],
)
def test_bad_labels_write_nothing(store, args, error, message):
    ada = store.annotator("Ada")
    _comparison(store)
    args = tuple(ada if a == "A" else a for a in args)
    with pytest.raises(error, match=message):
        store.add_label(*args)
    assert store.counts()["labels"] == 0
    with pytest.raises(StoreError, match="reason has 2,001 characters"):
        store.add_label("label-0010", 1, ada, "a", reason="x" * 2001)
    with pytest.raises(StoreError, match="seconds must be a finite number"):
        store.add_label("label-0010", 1, ada, "a", seconds=float("nan"))
    assert store.counts()["labels"] == 0


def test_out_of_range_ids_and_odd_label_ids_are_refused(store):
    ada = store.annotator("Ada")
    c = _comparison(store)
    with pytest.raises(StoreError, match="out of range"):
        store.add_label("label-0001", 2**70, ada, "a")
    with pytest.raises(StoreError, match="label_id must be"):
        store.add_label("label-0001\n", c, ada, "a")  # "$" would have let the newline through
    with pytest.raises(StoreError, match="out of range"):
        store.add_comparison("", "x", "y", source="t", seed=-(2**64))
    assert store.counts()["labels"] == 0


def test_bad_comparisons_and_names_are_refused(store):
    with pytest.raises(StoreError, match="identical"):
        store.add_comparison("", "same", "same", source="t")
    with pytest.raises(StoreError, match="reply B is empty"):
        store.add_comparison("", "a", "   ", source="t")
    with pytest.raises(StoreError, match="at most 20,000"):
        store.add_comparison("x" * 20_001, "a", "b", source="t")
    for name in ("", "   ", "a" * 65, "tab\there", "\u200b", "\u202eAda", "Ada\u200bLovelace"):
        with pytest.raises(StoreError, match="annotator name is required"):
            store.annotator(name)
    assert store.counts() == dict.fromkeys(store.counts(), 0)
    for name in (
        "Ana \U0001f469\u200d\U0001f4bb",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    ):
        assert store.annotator(name).startswith("ann-")  # joiners belong to real names


def test_ratings_round_trip_and_validate(store, tmp_path):
    ada = store.annotator("Ada")
    item = store.add_rating_item("User: hi", "Hello, how can I help?", source="test")
    assert store.add_rating("rating-0001", item, ada, "stars", 4) is True
    assert store.add_rating("rating-0001", item, ada, "stars", 4) is False
    with pytest.raises(StoreError, match="stars rating is an integer from 1 to 5"):
        store.add_rating("rating-0002", item, ada, "stars", 6)
    with pytest.raises(StoreError, match="thumbs rating is an integer from 0 to 1"):
        store.add_rating("rating-0002", item, ada, "thumbs", True)
    assert store.add_rating("rating-0003", item, ada, "thumbs", 1) is True
    out = tmp_path / "stars.jsonl"
    assert store.export_ratings(out, "stars") == 1
    [rating] = read_ratings(out)
    assert (rating.completion, rating.label, rating.scale, rating.metadata["annotator"]) == (
        "Hello, how can I help?",
        4,
        "stars",
        ada,
    )


def test_heldout_slice_is_fixed_and_keeps_a_comparison_together(store):
    ada, bob = store.annotator("Ada"), store.annotator("Bob")
    for n in range(200):
        c = _comparison(store, n)
        store.add_label(f"ada-{n:05d}", c, ada, "a" if n % 2 else "b")
        store.add_label(f"bob-{n:05d}", c, bob, "a")
    held, train = store.preference_pairs(heldout=True), store.preference_pairs(heldout=False)
    assert len(held) + len(train) == 400
    assert 0.1 < len(held) / 400 < 0.3
    held_ids = {p.metadata["comparison"] for p in held}
    assert held_ids.isdisjoint(p.metadata["comparison"] for p in train)
    # The slice follows the pair's content: the same pair stored again (a re-import, the
    # replies swapped) lands on the same side.
    c = store.comparison(next(iter(held_ids)))
    again = store.add_comparison(c.context, c.reply_b, c.reply_a, source="again")
    store.add_label("ada-again-1", again, ada, "a")
    assert again in {p.metadata["comparison"] for p in store.preference_pairs(heldout=True)}
    assert is_heldout(c.context, c.reply_a, c.reply_b) and is_heldout(
        c.context, c.reply_b, c.reply_a
    )


def test_export_is_trl_jsonl_without_names(store, tmp_path):
    ada = store.annotator("Ada Lovelace")
    c = store.add_comparison(
        "User: hi", "Hello!", "Go away.", source="test", metadata={"gold_margin": 2.5}
    )
    store.add_label("label-0001", c, ada, "b")
    store.add_label("label-0002", _comparison(store, 1), ada, "skip")  # skips are not preferences
    out = tmp_path / "export.jsonl"
    assert store.export_preferences(out) == 1
    text = out.read_text()
    assert "Ada" not in text and "Lovelace" not in text
    [pair] = read_preferences(out)
    assert (pair.prompt, pair.chosen, pair.rejected) == ("User: hi", "Go away.", "Hello!")
    assert pair.metadata["annotator"] == ada
    assert (
        pair.metadata["gold_margin"] == -2.5
    )  # stored for A over B, exported for chosen over rejected
    assert set(json.loads(text)) >= {"prompt", "chosen", "rejected"}


def test_import_trl_and_hh_rlhf_then_export_again(store, tmp_path, hh_sample):
    pairs = [
        PreferencePair(f"User: q{n}", f"good {n}", f"bad {n}", {"annotator": f"rater{n % 3}"})
        for n in range(50)
    ]
    src = tmp_path / "pairs.jsonl"
    write_preferences(src, pairs)
    assert store.import_file(src) == {"comparisons": 50, "labels": 50, "duplicates": 0}
    choices = [r["choice"] for r in store.labels()]
    assert 10 < choices.count("a") < 40  # the chosen reply is placed as A or B at random
    out = tmp_path / "out.jsonl"
    store.export_preferences(out)
    assert sorted((p.prompt, p.chosen, p.rejected) for p in read_preferences(out)) == sorted(
        (p.prompt, p.chosen, p.rejected) for p in pairs
    )
    assert len(store.annotator_summary()) == 3
    with pytest.raises(ValueError, match=r"line 87: the final reply in 'chosen' is empty"):
        store.import_file(hh_sample)  # the sample has transcripts that end without a reply
    assert store.counts()["comparisons"] == 50  # nothing of it was stored
    with pytest.warns(UserWarning, match="skipped 2 invalid lines"):
        counts = store.import_file(hh_sample, skip_invalid=True)
    assert counts == {"comparisons": 108, "labels": 108, "duplicates": 0, "skipped": 2}
    assert store.counts()["comparisons"] == 158
    assert store.integrity_check() == "ok"


def test_malformed_import_stores_nothing(store, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n'
    )
    with pytest.raises(ValueError, match="line 2"):
        store.import_file(bad)
    # Records the file format accepts but the store does not (too long, a bad annotator
    # name) stop the import before anything is written, annotators included.
    big = tmp_path / "big.jsonl"
    write_preferences(
        big,
        [
            PreferencePair("User: hi", "yes", "no", {"annotator": "Cy"}),
            PreferencePair("x" * 20_001, "yes", "no", {"annotator": "Di"}),
        ],
    )
    with pytest.raises(StoreError, match="record 2: prompt has 20,001 characters"):
        store.import_file(big)
    assert store.counts() == dict.fromkeys(store.counts(), 0)
    assert store.import_file(big, skip_invalid=True) == {
        "comparisons": 1,
        "labels": 1,
        "duplicates": 0,
        "skipped": 1,
    }
    broken = tmp_path / "surrogate.jsonl"
    broken.write_text(
        '{"prompt": "p", "chosen": "fine", "rejected": "no"}\n'
        '{"prompt": "p", "chosen": "bad \\ud800", "rejected": "no"}\n'
    )
    # The reader refuses it now (before the store would), naming the line.
    with pytest.raises(FeedbackFormatError, match="line 2: a text holds a lone surrogate"):
        store.import_file(broken)
    assert store.counts()["comparisons"] == 1
    assert [a["name"] for a in store.annotator_summary()] == ["Cy"]


def test_gold_margin_sign_survives_import_and_export(store, tmp_path):
    pairs = [
        PreferencePair(f"User: q{n}", f"good {n}", f"bad {n}", {"gold_margin": float(n + 1)})
        for n in range(20)
    ]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_preferences(src, pairs)
    store.import_file(src)
    stored = [store.comparison(i).metadata["gold_margin"] for i in range(1, 21)]
    assert any(m < 0 for m in stored) and any(m > 0 for m in stored)  # stored as A over B
    store.export_preferences(out)
    assert sorted(p.metadata["gold_margin"] for p in read_preferences(out)) == [
        float(n + 1) for n in range(20)
    ]


WRITER = textwrap.dedent("""
    import sys
    from rlhf_envs.feedback.store import FeedbackStore
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FeedbackStore(path)
    me = store.annotator(who)
    for i in range(n):
        label_id = f"{who}-{i:05d}"
        store.add_label(label_id, i + 1, me, "ab"[i % 2])
        assert store.add_label(label_id, i + 1, me, "ab"[i % 2]) is False  # a resend: no second row
    print("done", flush=True)
""")

READER = textwrap.dedent("""
    import sys, time
    from rlhf_envs.feedback.store import FeedbackStore
    store = FeedbackStore(sys.argv[1])
    seen = 0
    deadline = time.time() + 120
    while seen < int(sys.argv[2]) and time.time() < deadline:
        now = len(store.preference_pairs())
        assert now >= seen, (now, seen)  # a reader never sees labels disappear
        seen = now
    print(seen, flush=True)
""")


@pytest.mark.integration
def test_four_writer_processes_lose_and_double_nothing(tmp_path):
    path = tmp_path / "busy.sqlite"
    with FeedbackStore(path) as store:
        for n in range(500):
            _comparison(store, n)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"writer{k}", "500"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), "2000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    outputs = []
    for p in [*writers, reader]:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(out.strip())
    assert outputs == ["done"] * 4 + ["2000"]
    with FeedbackStore(path) as store:
        labels = store.labels()
        assert len(labels) == 2000
        assert len({r["label_id"] for r in labels}) == 2000
        per = {a["id"]: a["labels"] for a in store.annotator_summary()}
        assert sorted(per.values()) == [500] * 4
        assert store.integrity_check() == "ok"
