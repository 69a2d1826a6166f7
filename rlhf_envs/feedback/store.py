"""The feedback store: human labels in one SQLite database, safe under concurrent writers.

One file holds everything a team collects and what was trained on it:

- ``annotators``: a pseudonymous id (``ann-`` and 10 hex digits) per annotator. The name
  typed into the labelling page stays in this database for the admin view; exports and
  training data carry only the pseudonymous id.
- ``comparisons``: a context (``Role: text`` transcript), two replies, where they came
  from (env id, seed, turn, ``source``: ``active``, ``random``, ``import``, ...) and, when
  a reward model chose the pair, its version and margin ``score(a) - score(b)``.
- ``labels``: choice ``a``/``b``/``tie``/``skip`` on a comparison by an annotator, with
  time, seconds taken and an optional reason. ``label_id`` is unique: a form sent twice
  stores one label.
- ``rating_items`` and ``ratings``: single replies, judged thumbs up/down or 1 to 5 stars.
- ``reward_models``: every reward model trained on the labels, its held-out accuracy,
  the accuracy of the model it was compared with, and whether it was promoted.

The database runs in WAL mode (readers never block the writer) with ``synchronous=FULL``;
every label is its own ``BEGIN IMMEDIATE`` transaction, so a label that was acknowledged
survives a crash of the process. The schema version is ``PRAGMA user_version``; opening an
older database applies the missing migrations, each in one transaction.

Each thread gets its own connection (SQLite connections are not shared between threads),
so one :class:`FeedbackStore` may serve a threaded web server.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_envs.files import make_private_file
from rlhf_envs.preference_data.formats import (
    FeedbackData,
    read_feedback,
    write_preferences,
    write_ratings,
)
from rlhf_envs.preference_data.records import RATING_SCALES, PreferencePair, Rating

__all__ = [
    "CHOICES",
    "SCHEMA_VERSION",
    "Comparison",
    "FeedbackStore",
    "LabelConflict",
    "MAX_LEASE_SECONDS",
    "RatingItem",
    "StoreError",
    "UnknownItem",
    "check_lease",
    "is_heldout",
]

CHOICES: tuple[str, ...] = ("a", "b", "tie", "skip")
"""What a label may say: reply A is better, B is better, a tie, or skipped (no opinion)."""

HELDOUT_FRACTION = 0.2
"""Share of comparisons kept out of reward-model training, for promotion decisions."""

LEASE_SECONDS = 600.0
"""How long a pair handed to an annotator is held for them (then it returns to the pool)."""
MAX_LEASE_SECONDS = 7 * 86_400
"""The longest lease accepted: a week."""

MAX_TEXT = 20_000  # characters per context or reply: a page must stay readable
MAX_REASON = 2_000
_LABEL_ID = re.compile(r"[A-Za-z0-9_.:-]{8,100}")
_SQLITE_INT = (-(2**63), 2**63 - 1)
_SPOOFING = frozenset(
    "\u200b\u2060\ufeff\u00ad\u061c\u200e\u200f"
    + "".join(map(chr, range(0x202A, 0x202F)))
    + "".join(map(chr, range(0x2066, 0x206A)))
)

# Each entry moves the schema one version up. Never edit a released entry: add a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: the tables.
    """
    CREATE TABLE annotators (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE comparisons (
        id INTEGER PRIMARY KEY,
        context TEXT NOT NULL,
        reply_a TEXT NOT NULL,
        reply_b TEXT NOT NULL,
        env_id TEXT,
        seed INTEGER,
        turn INTEGER,
        source TEXT NOT NULL,
        rm_version INTEGER,
        rm_margin REAL,
        wanted_labels INTEGER NOT NULL DEFAULT 1 CHECK (wanted_labels >= 1),
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        CHECK (reply_a <> reply_b)
    );
    CREATE TABLE labels (
        id INTEGER PRIMARY KEY,
        label_id TEXT NOT NULL UNIQUE,
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        annotator_id TEXT NOT NULL REFERENCES annotators(id),
        choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'skip')),
        reason TEXT,
        seconds REAL,
        created_at REAL NOT NULL,
        UNIQUE (comparison_id, annotator_id)
    );
    CREATE TABLE rating_items (
        id INTEGER PRIMARY KEY,
        context TEXT NOT NULL,
        reply TEXT NOT NULL,
        env_id TEXT,
        seed INTEGER,
        turn INTEGER,
        source TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE ratings (
        id INTEGER PRIMARY KEY,
        label_id TEXT NOT NULL UNIQUE,
        item_id INTEGER NOT NULL REFERENCES rating_items(id),
        annotator_id TEXT NOT NULL REFERENCES annotators(id),
        scale TEXT NOT NULL CHECK (scale IN ('thumbs', 'stars')),
        value INTEGER NOT NULL,
        reason TEXT,
        created_at REAL NOT NULL,
        UNIQUE (item_id, annotator_id, scale),
        CHECK ((scale = 'thumbs' AND value IN (0, 1))
            OR (scale = 'stars' AND value BETWEEN 1 AND 5))
    );
    CREATE TABLE reward_models (
        version INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        created_at REAL NOT NULL,
        train_labels INTEGER NOT NULL,
        heldout_labels INTEGER NOT NULL,
        accuracy REAL,
        baseline_version INTEGER,
        baseline_accuracy REAL,
        promoted INTEGER NOT NULL CHECK (promoted IN (0, 1)),
        config TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: indexes for the queue, the admin view and per-annotator counts.
    """
    CREATE INDEX labels_by_comparison ON labels (comparison_id);
    CREATE INDEX labels_by_annotator ON labels (annotator_id, created_at);
    CREATE INDEX ratings_by_item ON ratings (item_id);
    """,
    # 3: a content hash per imported record, so importing a file twice adds nothing;
    # leases: a pair handed out is held for its annotator until labelled or expired;
    # access tokens (stored hashed) for the labelling app.
    """
    CREATE TABLE leases (
        comparison_id INTEGER NOT NULL REFERENCES comparisons(id),
        annotator_id TEXT NOT NULL REFERENCES annotators(id),
        expires_at REAL NOT NULL,
        PRIMARY KEY (comparison_id, annotator_id)
    );
    CREATE INDEX leases_by_expiry ON leases (expires_at);
    CREATE TABLE access_tokens (
        token_hash TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'annotator')),
        annotator_id TEXT REFERENCES annotators(id),
        created_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
        CHECK ((role = 'annotator') = (annotator_id IS NOT NULL))
    );
    ALTER TABLE labels ADD COLUMN record_hash TEXT;
    ALTER TABLE ratings ADD COLUMN record_hash TEXT;
    CREATE UNIQUE INDEX labels_by_record ON labels (record_hash) WHERE record_hash IS NOT NULL;
    CREATE UNIQUE INDEX ratings_by_record ON ratings (record_hash) WHERE record_hash IS NOT NULL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ValueError):
    """A request the store refuses: bad input, an unknown id, a database it cannot use."""


class UnknownItem(StoreError):
    """An id (comparison, rating item, annotator) that the store does not hold."""


class LabelConflict(StoreError):
    """A label id reused for a different label, or a second label on the same item by
    the same annotator."""


def is_heldout(
    context: str, reply_a: str, reply_b: str, fraction: float = HELDOUT_FRACTION
) -> bool:
    """Whether a pair belongs to the held-out slice: a hash of its content (the context
    and the two replies in either order), so it is fixed for good, every label of a pair
    is on the same side, and the same pair stored twice (a re-import) cannot sit on both.
    No reward model ever trains on the slice it is judged on."""
    first, second = sorted((reply_a, reply_b))
    digest = hashlib.blake2b(
        "\x00".join((context, first, second)).encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass(frozen=True)
class Comparison:
    """A pair of replies to the same context, as stored."""

    id: int
    context: str
    reply_a: str
    reply_b: str
    env_id: str | None = None
    seed: int | None = None
    turn: int | None = None
    source: str = ""
    rm_version: int | None = None
    rm_margin: float | None = None
    wanted_labels: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RatingItem:
    """A single reply to rate, as stored."""

    id: int
    context: str
    reply: str
    env_id: str | None = None
    seed: int | None = None
    turn: int | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _text(name: str, value: Any, *, allow_empty: bool = False, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{name} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{name} is not valid Unicode text (it has a lone surrogate)") from None
    if not allow_empty and not value.strip():
        raise StoreError(f"{name} is empty; give the text to show")
    if len(value) > limit:
        raise StoreError(f"{name} has {len(value):,} characters; at most {limit:,} are accepted")
    return value


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT on ``cur`` just added."""
    row_id = cur.lastrowid
    assert row_id is not None  # (set by every INSERT)
    return int(row_id)


def _optional_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{name} must be an integer or None, got {value!r}")
    if not _SQLITE_INT[0] <= value <= _SQLITE_INT[1]:
        raise StoreError(f"{name} {value} is out of range; integers are stored in 64 bits")
    return int(value)


def check_lease(seconds: Any) -> float:
    """``seconds`` as a lease time, if it is a number in (0, :data:`MAX_LEASE_SECONDS`].

    Raises:
        StoreError: anything else.
    """
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not math.isfinite(seconds)
        or not 0 < seconds <= MAX_LEASE_SECONDS
    ):
        raise StoreError(
            f"a lease lasts more than 0 and at most {MAX_LEASE_SECONDS} seconds, got {seconds!r}"
        )
    return float(seconds)


def _check_name(name: Any) -> str:
    # Control characters, bidi overrides and invisible spaces would let one name pose as
    # another; joiners (U+200C/U+200D) stay allowed, as Persian, Indic scripts and emoji need them.
    if isinstance(name, str):
        name = name.strip()
        if 1 <= len(name) <= 64 and not any(
            unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") or ch in _SPOOFING for ch in name
        ):
            return name
    raise StoreError(
        "annotator name is required: 1 to 64 characters, no control or invisible characters"
    )


def _check_label_id(label_id: Any) -> str:
    if not isinstance(label_id, str) or not _LABEL_ID.fullmatch(label_id):
        raise StoreError("label_id must be 8 to 100 characters of letters, digits and _.:-")
    return label_id


def _metadata(value: Any) -> str:
    try:
        return json.dumps(dict(value or {}), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise StoreError(f"metadata must be a JSON object of finite values: {err}") from None


class FeedbackStore:
    """A feedback database (created, or migrated to the current schema, on open).

    Args:
        path: the SQLite file.
        timeout: seconds a writer waits for another writer's transaction to finish.

    Raises:
        StoreError: the file is not an SQLite database, or was written by a newer
            version of rlhf-envs (a higher schema version than this one knows).
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0):
        self.path = Path(path)
        self.timeout = float(timeout)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(
                f"folder {self.path.parent} does not exist; create it or choose another --db path"
            )
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; give the path of a database file")
        if not self.path.exists():
            # Names and access tokens live here: readable by their owner only, whatever
            # the umask (SQLite gives its -wal and -shm files the same mode).
            make_private_file(self.path)
        self._migrate()

    # --- connections and transactions ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE),
            # so a read never turns into a write lock half-way through.
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a usable SQLite database: {err}") from None
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any error."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may have rolled back already (e.g. on a full disk); never leave the
            # connection inside a transaction, which would hold the write lock.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connect().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- schema -------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        try:
            version = self.schema_version
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a usable SQLite database: {err}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this rlhf-envs knows "
                f"({SCHEMA_VERSION}); upgrade rlhf-envs to open it"
            )
        while version < SCHEMA_VERSION:
            with self._write() as conn:
                # Another process may have migrated between our read and our lock.
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if version >= SCHEMA_VERSION:
                    break
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            version += 1

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        return "; ".join(str(r[0]) for r in self._read("PRAGMA integrity_check"))

    # --- annotators ---------------------------------------------------------------------

    def annotator(self, name: str) -> str:
        """The pseudonymous id of the annotator called ``name`` (registered on first use).

        Raises:
            StoreError: the name is empty, longer than 64 characters or has control
                characters.
        """
        name = _check_name(name)
        row = self._read("SELECT id FROM annotators WHERE name = ?", (name,))
        if row:
            return str(row[0]["id"])
        with self._write() as conn:
            return self._annotator_in(conn, name)

    @staticmethod
    def _annotator_in(conn: sqlite3.Connection, name: str) -> str:
        """The id of ``name`` (checked), registered inside the caller's transaction if new."""
        row = conn.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        if row:
            return str(row["id"])
        annotator_id = f"ann-{secrets.token_hex(5)}"
        conn.execute(
            "INSERT INTO annotators (id, name, created_at) VALUES (?, ?, ?)",
            (annotator_id, name, time.time()),
        )
        return annotator_id

    # --- access tokens ----------------------------------------------------------------------

    def invite(self, name: str) -> tuple[str, str]:
        """Register ``name`` (or find them) and issue them a new access token.

        Returns:
            ``(annotator id, token)``. Only a hash of the token is stored: the token
            itself is shown once, in the invitation link.
        """
        name = _check_name(name)
        token = secrets.token_urlsafe(24)
        with self._write() as conn:
            annotator_id = self._annotator_in(conn, name)
            self._insert_token(conn, token, "annotator", annotator_id)
        return annotator_id, token

    def new_admin_token(self) -> str:
        """A new admin token; earlier admin tokens stop working (one admin link at a time)."""
        token = secrets.token_urlsafe(24)
        with self._write() as conn:
            conn.execute("UPDATE access_tokens SET revoked = 1 WHERE role = 'admin'")
            self._insert_token(conn, token, "admin", None)
        return token

    def revoke(self, annotator_id: str) -> int:
        """Revoke every token of ``annotator_id``; returns how many were live."""
        with self._write() as conn:
            self._require_annotator(conn, annotator_id)
            return conn.execute(
                "UPDATE access_tokens SET revoked = 1 WHERE annotator_id = ? AND revoked = 0",
                (annotator_id,),
            ).rowcount

    def token_owner(self, token: str) -> tuple[str, str | None] | None:
        """``(role, annotator id or None)`` of a live token, else ``None``."""
        if not isinstance(token, str) or not 16 <= len(token) <= 200:
            return None
        rows = self._read(
            "SELECT role, annotator_id FROM access_tokens WHERE token_hash = ? AND revoked = 0",
            (_token_hash(token),),
        )
        return (str(rows[0]["role"]), rows[0]["annotator_id"]) if rows else None

    @staticmethod
    def _insert_token(
        conn: sqlite3.Connection, token: str, role: str, annotator_id: str | None
    ) -> None:
        conn.execute(
            "INSERT INTO access_tokens (token_hash, role, annotator_id, created_at) "
            "VALUES (?, ?, ?, ?)",
            (_token_hash(token), role, annotator_id, time.time()),
        )

    def has_annotator(self, annotator_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM annotators WHERE id = ?", (annotator_id,)))

    def _require_annotator(self, conn: sqlite3.Connection, annotator_id: Any) -> str:
        if (
            not isinstance(annotator_id, str)
            or not conn.execute("SELECT 1 FROM annotators WHERE id = ?", (annotator_id,)).fetchone()
        ):
            raise UnknownItem(f"unknown annotator {annotator_id!r}; register a name first")
        return annotator_id

    # --- comparisons and labels -----------------------------------------------------------

    def add_comparison(
        self,
        context: str,
        reply_a: str,
        reply_b: str,
        *,
        source: str,
        env_id: str | None = None,
        seed: int | None = None,
        turn: int | None = None,
        rm_version: int | None = None,
        rm_margin: float | None = None,
        wanted_labels: int = 1,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Store a pair of replies to label; returns its id.

        Args:
            context: the dialogue so far (``Role: text`` lines); may be empty.
            reply_a, reply_b: two different, non-empty replies.
            source: how the pair was produced (``active``, ``random``, ``import``, ...).
            env_id, seed, turn: where in which episode the context was reached.
            rm_version, rm_margin: the reward model that picked the pair and its margin.
            wanted_labels: how many annotators should label it (2 or more gives overlap
                for inter-annotator agreement).
            metadata: more JSON (e.g. the gold margin of simulated pairs).
        """
        with self._write() as conn:
            return self._insert_comparison(
                conn,
                context,
                reply_a,
                reply_b,
                source=source,
                env_id=env_id,
                seed=seed,
                turn=turn,
                rm_version=rm_version,
                rm_margin=rm_margin,
                wanted_labels=wanted_labels,
                metadata=metadata,
            )

    def _insert_comparison(
        self,
        conn: sqlite3.Connection,
        context: str,
        reply_a: str,
        reply_b: str,
        *,
        source: str,
        env_id: str | None,
        seed: int | None,
        turn: int | None,
        rm_version: int | None,
        rm_margin: float | None,
        wanted_labels: int,
        metadata: dict[str, Any] | None,
    ) -> int:
        _text("context", context, allow_empty=True)
        _text("reply A", reply_a)
        _text("reply B", reply_b)
        if reply_a == reply_b:
            raise StoreError(
                "reply A and reply B are identical; a comparison needs two different replies"
            )
        _text("source", source, limit=100)
        if rm_margin is not None and not math.isfinite(float(rm_margin)):
            raise StoreError(f"rm_margin must be finite, got {rm_margin!r}")
        if _optional_int("wanted_labels", wanted_labels) is None or wanted_labels < 1:
            raise StoreError(f"wanted_labels must be an integer >= 1, got {wanted_labels!r}")
        cur = conn.execute(
            "INSERT INTO comparisons (context, reply_a, reply_b, env_id, seed, turn, source, "
            "rm_version, rm_margin, wanted_labels, metadata, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                context,
                reply_a,
                reply_b,
                env_id,
                _optional_int("seed", seed),
                _optional_int("turn", turn),
                source,
                _optional_int("rm_version", rm_version),
                None if rm_margin is None else float(rm_margin),
                int(wanted_labels),
                _metadata(metadata),
                time.time(),
            ),
        )
        return _inserted_id(cur)

    def comparison(self, comparison_id: int) -> Comparison:
        """The stored comparison ``comparison_id``.

        Raises:
            StoreError: there is none with that id.
        """
        rows = self._read("SELECT * FROM comparisons WHERE id = ?", (int(comparison_id),))
        if not rows:
            raise UnknownItem(f"no comparison with id {comparison_id}")
        return _comparison(rows[0])

    def next_comparison(
        self, annotator_id: str, lease_seconds: float = LEASE_SECONDS
    ) -> Comparison | None:
        """The comparison ``annotator_id`` should label next, held for them for
        ``lease_seconds``; ``None`` when none waits (the caller then adds new pairs and
        :meth:`hold` s one).

        A pair counts its labels plus the unexpired leases of other annotators against
        its ``wanted_labels``, so annotators working at once never get the same pair
        beyond what it wants; a pair this annotator already holds comes back first (a
        reloaded page shows the same pair); an expired lease returns the pair to the pool
        (its row stays until this annotator labels the pair, as the record that it was
        handed to them).
        """
        lease_seconds = check_lease(lease_seconds)
        with self._write() as conn:
            now = time.time()
            row = conn.execute(
                "SELECT c.* FROM comparisons c JOIN leases h ON h.comparison_id = c.id "
                "WHERE h.annotator_id = ? AND h.expires_at > ? AND NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.comparison_id = c.id AND l.annotator_id = ?) "
                "ORDER BY c.id LIMIT 1",
                (annotator_id, now, annotator_id),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT c.* FROM comparisons c WHERE "
                    "(SELECT COUNT(*) FROM labels l WHERE l.comparison_id = c.id) + "
                    "(SELECT COUNT(*) FROM leases h WHERE h.comparison_id = c.id "
                    "AND h.annotator_id <> ? AND h.expires_at > ?) < c.wanted_labels "
                    "AND NOT EXISTS (SELECT 1 FROM labels l "
                    "WHERE l.comparison_id = c.id AND l.annotator_id = ?) "
                    "ORDER BY c.id LIMIT 1",
                    (annotator_id, now, annotator_id),
                ).fetchone()
            if row is None:
                return None
            self._hold_in(conn, int(row["id"]), annotator_id, now + lease_seconds)
            return _comparison(row)

    def hold(
        self, comparison_id: int, annotator_id: str, lease_seconds: float = LEASE_SECONDS
    ) -> None:
        """Hold ``comparison_id`` for ``annotator_id`` (a pair just drawn for them)."""
        lease_seconds = check_lease(lease_seconds)
        with self._write() as conn:
            self._require_annotator(conn, annotator_id)
            self._hold_in(conn, int(comparison_id), annotator_id, time.time() + lease_seconds)

    @staticmethod
    def _hold_in(
        conn: sqlite3.Connection, comparison_id: int, annotator_id: str, expires_at: float
    ) -> None:
        conn.execute(
            "INSERT INTO leases (comparison_id, annotator_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (comparison_id, annotator_id) "
            "DO UPDATE SET expires_at = excluded.expires_at",
            (comparison_id, annotator_id, expires_at),
        )

    def add_label(
        self,
        label_id: str,
        comparison_id: int,
        annotator_id: str,
        choice: str,
        *,
        reason: str | None = None,
        seconds: float | None = None,
        require_lease: bool = False,
        limit_to_wanted: bool = False,
    ) -> bool:
        """Record one label in its own transaction.

        Args:
            label_id: a client-made unique id (8 to 100 of ``A-Za-z0-9_.:-``). Sending
                the same label again is harmless.
            comparison_id: the comparison labelled.
            annotator_id: from :meth:`annotator`.
            choice: ``"a"``, ``"b"``, ``"tie"`` or ``"skip"``.
            reason: optional free text (up to 2,000 characters).
            seconds: time the annotator took, if known.
            require_lease: accept the label only if the pair was handed to this annotator
                (:meth:`next_comparison` or :meth:`hold`), so nobody labels pairs of their
                own choosing (e.g. the held-out slice that decides promotions).
            limit_to_wanted: refuse a label once the pair has the labels it wants (a late
                label after the annotator's lease expired and someone else labelled it),
                as the labelling app does; scripts may store more.

        Returns:
            ``True`` if stored now, ``False`` if this exact label was already stored.

        Raises:
            StoreError: a bad value or an unknown comparison or annotator.
            LabelConflict: ``label_id`` already names a different label, or this
                annotator already labelled this comparison.
        """
        _check_label_id(label_id)
        if choice not in CHOICES:
            raise StoreError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        if reason is not None:
            _text("reason", reason, allow_empty=True, limit=MAX_REASON)
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise StoreError(f"seconds must be a finite number >= 0, got {seconds!r}")
        checked_id = _optional_int("comparison_id", comparison_id)
        with self._write() as conn:
            self._require_annotator(conn, annotator_id)
            old = conn.execute(
                "SELECT comparison_id, annotator_id, choice FROM labels WHERE label_id = ?",
                (label_id,),
            ).fetchone()
            if old is not None:
                if tuple(old) == (checked_id, annotator_id, choice):
                    return False
                raise LabelConflict(f"label id {label_id!r} was already used for a different label")
            if not conn.execute("SELECT 1 FROM comparisons WHERE id = ?", (checked_id,)).fetchone():
                raise UnknownItem(f"no comparison with id {checked_id}")
            if conn.execute(
                "SELECT 1 FROM labels WHERE comparison_id = ? AND annotator_id = ?",
                (checked_id, annotator_id),
            ).fetchone():
                raise LabelConflict(
                    f"annotator {annotator_id} already labelled comparison {checked_id}"
                )
            if (
                require_lease
                and not conn.execute(
                    "SELECT 1 FROM leases WHERE comparison_id = ? AND annotator_id = ?",
                    (checked_id, annotator_id),
                ).fetchone()
            ):
                raise LabelConflict(
                    f"comparison {checked_id} was not handed to annotator {annotator_id}; "
                    "label the pairs /api/next gives you"
                )
            have, wanted = conn.execute(
                "SELECT (SELECT COUNT(*) FROM labels WHERE comparison_id = c.id), "
                "c.wanted_labels FROM comparisons c WHERE c.id = ?",
                (checked_id,),
            ).fetchone()
            if limit_to_wanted and have >= wanted:
                # Only after a lease expired and the pair went to someone else: a label
                # beyond what the pair wants would waste effort and skew agreement.
                raise LabelConflict(
                    f"comparison {checked_id} already has the {wanted} label(s) it wants (the "
                    "hold on it expired and others labelled it); this label was not stored, "
                    "ask for the next pair"
                )
            # The hold has done its work: the label itself now counts against the pair.
            conn.execute(
                "DELETE FROM leases WHERE comparison_id = ? AND annotator_id = ?",
                (checked_id, annotator_id),
            )
            conn.execute(
                "INSERT INTO labels "
                "(label_id, comparison_id, annotator_id, choice, reason, seconds, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    label_id,
                    checked_id,
                    annotator_id,
                    choice,
                    reason or None,
                    None if seconds is None else float(seconds),
                    time.time(),
                ),
            )
        return True

    def labels(self) -> list[dict[str, Any]]:
        """Every label, oldest first, joined with its comparison's source and RM margin."""
        rows = self._read(
            "SELECT l.label_id, l.comparison_id, l.annotator_id, l.choice, l.reason, l.seconds, "
            "l.created_at, c.source, c.rm_version, c.rm_margin "
            "FROM labels l JOIN comparisons c ON c.id = l.comparison_id "
            "ORDER BY l.id"
        )
        return [dict(r) for r in rows]

    def preference_pairs(
        self,
        heldout: bool | None = None,
        fraction: float = HELDOUT_FRACTION,
        *,
        ties: bool = False,
    ) -> list[PreferencePair]:
        """Labels that prefer one reply, as :class:`PreferencePair` records.

        Skips say nothing about the replies and are always left out; ties are left out
        unless ``ties`` (then as pairs with ``tie=True``, reply A first). Each
        pair's metadata has the pseudonymous annotator, the label and comparison ids
        (``episode``: the comparison, so splits keep a comparison's labels together) and
        the comparison's own metadata (e.g. ``gold_margin``, signed for the chosen reply).

        Args:
            heldout: ``True`` for the held-out slice only, ``False`` for the rest,
                ``None`` for all.
        """
        rows = self._read(
            "SELECT l.label_id, l.annotator_id, l.choice, l.created_at, c.id AS cid, c.context, "
            "c.reply_a, c.reply_b, c.metadata "
            "FROM labels l JOIN comparisons c ON c.id = l.comparison_id "
            "WHERE l.choice IN ('a', 'b', 'tie') ORDER BY l.id"
        )
        out = []
        for r in rows:
            if r["choice"] == "tie" and not ties:
                continue
            if (
                heldout is not None
                and is_heldout(r["context"], r["reply_a"], r["reply_b"], fraction) != heldout
            ):
                continue
            first = r["choice"] != "b"
            chosen, rejected = (
                (r["reply_a"], r["reply_b"]) if first else (r["reply_b"], r["reply_a"])
            )
            meta = json.loads(r["metadata"])
            if isinstance(meta.get("gold_margin"), (int, float)):  # stored for reply A over B
                meta["gold_margin"] = meta["gold_margin"] if first else -meta["gold_margin"]
            meta.update(
                {
                    "annotator": r["annotator_id"],
                    "label_id": r["label_id"],
                    "comparison": r["cid"],
                    "episode": r["cid"],
                    "labelled_at": r["created_at"],
                }
            )
            out.append(PreferencePair(r["context"], chosen, rejected, meta, r["choice"] == "tie"))
        return out

    # --- ratings ----------------------------------------------------------------------------

    def add_rating_item(
        self,
        context: str,
        reply: str,
        *,
        source: str,
        env_id: str | None = None,
        seed: int | None = None,
        turn: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Store a single reply to rate; returns its id."""
        _text("context", context, allow_empty=True)
        _text("reply", reply)
        _text("source", source, limit=100)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO rating_items "
                "(context, reply, env_id, seed, turn, source, metadata, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    context,
                    reply,
                    env_id,
                    _optional_int("seed", seed),
                    _optional_int("turn", turn),
                    source,
                    _metadata(metadata),
                    time.time(),
                ),
            )
            return _inserted_id(cur)

    def next_rating_item(self, annotator_id: str, scale: str) -> RatingItem | None:
        """The oldest reply nobody has rated on ``scale`` yet, or ``None``."""
        rows = self._read(
            "SELECT i.* FROM rating_items i WHERE NOT EXISTS "
            "(SELECT 1 FROM ratings r WHERE r.item_id = i.id AND r.scale = ?) "
            "ORDER BY i.id LIMIT 1",
            (scale,),
        )
        return _rating_item(rows[0]) if rows else None

    def rating_item(self, item_id: int) -> RatingItem:
        rows = self._read("SELECT * FROM rating_items WHERE id = ?", (int(item_id),))
        if not rows:
            raise UnknownItem(f"no rating item with id {item_id}")
        return _rating_item(rows[0])

    def add_rating(
        self,
        label_id: str,
        item_id: int,
        annotator_id: str,
        scale: str,
        value: int,
        *,
        reason: str | None = None,
    ) -> bool:
        """Record one rating in its own transaction (idempotent per ``label_id``, as
        :meth:`add_label`).

        Args:
            scale: ``"thumbs"`` (value 0 = down, 1 = up) or ``"stars"`` (1 to 5).

        Returns:
            ``True`` if stored now, ``False`` if this exact rating was already stored.
        """
        _check_label_id(label_id)
        if scale not in RATING_SCALES:
            raise StoreError(f"scale {scale!r} is not one of {', '.join(RATING_SCALES)}")
        low, high = RATING_SCALES[scale]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise StoreError(f"a {scale} rating is an integer from {low} to {high}, got {value!r}")
        if reason is not None:
            _text("reason", reason, allow_empty=True, limit=MAX_REASON)
        checked_id = _optional_int("item_id", item_id)
        with self._write() as conn:
            self._require_annotator(conn, annotator_id)
            old = conn.execute(
                "SELECT item_id, annotator_id, scale, value FROM ratings WHERE label_id = ?",
                (label_id,),
            ).fetchone()
            if old is not None:
                if tuple(old) == (checked_id, annotator_id, scale, value):
                    return False
                raise LabelConflict(
                    f"label id {label_id!r} was already used for a different rating"
                )
            if not conn.execute(
                "SELECT 1 FROM rating_items WHERE id = ?", (checked_id,)
            ).fetchone():
                raise UnknownItem(f"no rating item with id {checked_id}")
            if conn.execute(
                "SELECT 1 FROM ratings WHERE item_id = ? AND annotator_id = ? AND scale = ?",
                (checked_id, annotator_id, scale),
            ).fetchone():
                raise LabelConflict(
                    f"annotator {annotator_id} already rated item {checked_id} on the {scale} scale"
                )
            conn.execute(
                "INSERT INTO ratings "
                "(label_id, item_id, annotator_id, scale, value, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (label_id, checked_id, annotator_id, scale, value, reason or None, time.time()),
            )
        return True

    def ratings(self, scale: str | None = None) -> list[Rating]:
        """Stored ratings as :class:`Rating` records (pseudonymous annotator in metadata)."""
        rows = self._read(
            "SELECT r.label_id, r.annotator_id, r.scale, r.value, i.context, i.reply, i.id AS iid "
            "FROM ratings r JOIN rating_items i ON i.id = r.item_id "
            "WHERE (? IS NULL OR r.scale = ?) ORDER BY r.id",
            (scale, scale),
        )
        return [
            Rating(
                r["context"],
                r["reply"],
                r["value"],
                r["scale"],
                {"annotator": r["annotator_id"], "label_id": r["label_id"], "episode": r["iid"]},
            )
            for r in rows
        ]

    # --- import and export --------------------------------------------------------------------

    def import_file(
        self,
        path: str | os.PathLike,
        *,
        annotator: str = "imported",
        seed: int = 0,
        skip_invalid: bool = False,
    ) -> dict[str, int]:
        """Import a JSON Lines feedback file: TRL preference pairs, Anthropic HH-RLHF pairs
        or TRL unpaired ratings (told apart as :func:`read_feedback` does); see
        :meth:`import_records`.

        Raises:
            FileNotFoundError, FeedbackFormatError: as for :func:`read_feedback`.
            StoreError: as for :meth:`import_records`.
        """
        return self.import_records(
            read_feedback(path, skip_invalid=skip_invalid),
            annotator=annotator,
            seed=seed,
            skip_invalid=skip_invalid,
        )

    def import_records(
        self,
        records: FeedbackData,
        *,
        annotator: str = "imported",
        seed: int = 0,
        skip_invalid: bool = False,
    ) -> dict[str, int]:
        """Import records read from a feedback file.

        A pair becomes a comparison (the chosen reply placed as A or B at random, seeded,
        so position says nothing) with one label (``tie`` for a tie); a rating becomes a
        rating item with one rating. A file may mix pairs and ratings. Each record's
        ``annotator`` key, if any, names its annotator, else ``annotator``. The whole file
        goes in one transaction: a malformed line stores nothing, unless ``skip_invalid``
        (then malformed lines, and records over the store's limits, are left out and
        counted). Annotators are registered in the same transaction.

        Importing is idempotent: each record's content (texts, label, annotator, metadata)
        is hashed, and a record already in the database is counted as ``"duplicates"``
        and not stored again, so importing the same file twice doubles nothing.

        Returns:
            ``{"comparisons": n, "labels": n}`` or ``{"rating_items": n, "ratings": n}``,
            plus ``"duplicates"``, and ``"skipped"`` lines with ``skip_invalid``.

        Raises:
            StoreError: a record over the store's limits (without ``skip_invalid``).
        """
        import numpy as np

        path = records.path
        # Check every record against the store's own limits before writing any of them.
        accepted, skipped = [], len(records.skipped)
        for n, record in enumerate(records, start=1):
            try:
                name = _check_name(str(record.metadata.get("annotator", annotator)))
                _text("prompt", record.prompt, allow_empty=True)
                for key in (
                    ("chosen", "rejected")
                    if isinstance(record, PreferencePair)
                    else ("completion",)
                ):
                    _text(key, getattr(record, key))
                meta = {k: v for k, v in record.metadata.items() if k != "annotator"}
                _metadata(meta)
            except StoreError as err:
                if not skip_invalid:
                    raise StoreError(f"{path}, record {n}: {err}; nothing was imported") from None
                skipped += 1
                continue
            accepted.append((record, name, meta, _record_hash(record, name, meta)))
        if not accepted:
            raise StoreError(f"{path}: no record could be imported")
        rng = np.random.default_rng(seed)
        source = f"import:{Path(path).name}"
        counts: dict[str, int] = {}
        if any(isinstance(r, PreferencePair) for r, *_ in accepted):
            counts.update(comparisons=0, labels=0)
        if any(isinstance(r, Rating) for r, *_ in accepted):
            counts.update(rating_items=0, ratings=0)
        counts["duplicates"] = 0
        with self._write() as conn:
            seen: set[str] = set()
            for record, name, meta, digest in accepted:
                first = bool(rng.random() < 0.5)  # drawn for every record: seeded placement
                pairs = isinstance(record, PreferencePair)
                table = "labels" if pairs else "ratings"
                if (
                    digest in seen
                    or conn.execute(
                        f"SELECT 1 FROM {table} WHERE record_hash = ?", (digest,)
                    ).fetchone()
                ):
                    counts["duplicates"] += 1
                    continue
                seen.add(digest)
                who = self._annotator_in(conn, name)
                label_id = f"import-{secrets.token_hex(8)}"
                if pairs:
                    a, b = (
                        (record.chosen, record.rejected)
                        if first
                        else (record.rejected, record.chosen)
                    )
                    choice = "tie" if record.tie else "a" if first else "b"
                    if isinstance(meta.get("gold_margin"), (int, float)) and not first:
                        meta["gold_margin"] = -meta["gold_margin"]
                    cid = self._insert_comparison(
                        conn,
                        record.prompt,
                        a,
                        b,
                        source=source,
                        env_id=None,
                        seed=None,
                        turn=None,
                        rm_version=None,
                        rm_margin=None,
                        wanted_labels=1,
                        metadata=meta,
                    )
                    conn.execute(
                        "INSERT INTO labels "
                        "(label_id, comparison_id, annotator_id, choice, created_at, record_hash) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (label_id, cid, who, choice, time.time(), digest),
                    )
                    counts["comparisons"] += 1
                    counts["labels"] += 1
                else:
                    cur = conn.execute(
                        "INSERT INTO rating_items (context, reply, source, metadata, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (record.prompt, record.completion, source, _metadata(meta), time.time()),
                    )
                    conn.execute(
                        "INSERT INTO ratings (label_id, item_id, annotator_id, scale, value, "
                        "created_at, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            label_id,
                            cur.lastrowid,
                            who,
                            record.scale,
                            record.label,
                            time.time(),
                            digest,
                        ),
                    )
                    counts["rating_items"] += 1
                    counts["ratings"] += 1
        if skip_invalid:
            counts["skipped"] = skipped
        return counts

    def export_preferences(self, path: str | os.PathLike) -> int:
        """Write every A/B label as a TRL preference pair and every tie as a pair with
        ``"tie": true`` (JSON Lines); returns the count. Annotators appear only by
        pseudonymous id."""
        pairs = [
            PreferencePair(
                p.prompt,
                p.chosen,
                p.rejected,
                {k: v for k, v in p.metadata.items() if k not in ("episode", "labelled_at")},
                p.tie,
            )
            for p in self.preference_pairs(ties=True)
        ]
        if not pairs:
            raise StoreError(f"{self.path} has no A/B labels to export")
        return write_preferences(path, pairs)

    def export_ratings(self, path: str | os.PathLike, scale: str) -> int:
        """Write the ratings of one scale in TRL's unpaired format; returns the count."""
        ratings = self.ratings(scale)
        if not ratings:
            raise StoreError(f"{self.path} has no {scale} ratings to export")
        return write_ratings(path, ratings)

    # --- reward models ----------------------------------------------------------------------------

    def next_reward_model_version(self) -> int:
        row = self._read("SELECT COALESCE(MAX(version), 0) FROM reward_models")
        return int(row[0][0]) + 1

    def record_reward_model(
        self,
        version: int,
        path: str,
        *,
        train_labels: int,
        heldout_labels: int,
        accuracy: float | None,
        baseline_version: int | None,
        baseline_accuracy: float | None,
        promoted: bool,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Record a trained reward model and whether it was promoted."""
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM reward_models WHERE version = ?", (int(version),)
            ).fetchone():
                raise StoreError(
                    f"reward model version {version} is already recorded "
                    "(another retraining job?); run again"
                )
            conn.execute(
                "INSERT INTO reward_models (version, path, created_at, train_labels, "
                "heldout_labels, accuracy, baseline_version, baseline_accuracy, promoted, config) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    int(version),
                    str(path),
                    time.time(),
                    int(train_labels),
                    int(heldout_labels),
                    accuracy,
                    baseline_version,
                    baseline_accuracy,
                    int(bool(promoted)),
                    _metadata(config),
                ),
            )

    def mark_promoted(self, version: int) -> None:
        """Record that model ``version`` is now the one served."""
        with self._write() as conn:
            if (
                conn.execute(
                    "UPDATE reward_models SET promoted = 1 WHERE version = ?", (int(version),)
                ).rowcount
                != 1
            ):
                raise UnknownItem(f"no reward model version {version}")

    def reward_models(self) -> list[dict[str, Any]]:
        """Every recorded reward model, oldest first."""
        return [dict(r) for r in self._read("SELECT * FROM reward_models ORDER BY version")]

    def current_reward_model(self) -> dict[str, Any] | None:
        """The most recently promoted reward model, or ``None``."""
        rows = self._read(
            "SELECT * FROM reward_models WHERE promoted = 1 ORDER BY version DESC LIMIT 1"
        )
        return dict(rows[0]) if rows else None

    # --- summaries ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows per table (comparisons, labels, rating_items, ratings, annotators,
        reward_models)."""
        tables = ("comparisons", "labels", "rating_items", "ratings", "annotators", "reward_models")
        return {t: int(self._read(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in tables}

    def annotator_summary(self) -> list[dict[str, Any]]:
        """Per annotator: name, pseudonymous id, labels by choice, ratings, median seconds."""
        rows = self._read(
            "SELECT a.id, a.name, "
            "(SELECT COUNT(*) FROM labels l WHERE l.annotator_id = a.id) AS labels, "
            "(SELECT COUNT(*) FROM labels l "
            "WHERE l.annotator_id = a.id AND l.choice = 'tie') AS ties, "
            "(SELECT COUNT(*) FROM labels l "
            "WHERE l.annotator_id = a.id AND l.choice = 'skip') AS skips, "
            "(SELECT COUNT(*) FROM ratings r WHERE r.annotator_id = a.id) AS ratings "
            "FROM annotators a ORDER BY labels DESC, a.name"
        )
        return [dict(r) for r in rows]

    def labels_by(self, annotator_id: str) -> int:
        return int(
            self._read("SELECT COUNT(*) FROM labels WHERE annotator_id = ?", (annotator_id,))[0][0]
        )

    def overlapping_labels(self) -> list[tuple[int, str, str]]:
        """``(comparison id, annotator id, choice)`` for comparisons with 2+ labels."""
        rows = self._read(
            "SELECT comparison_id, annotator_id, choice FROM labels WHERE comparison_id IN "
            "(SELECT comparison_id FROM labels GROUP BY comparison_id HAVING COUNT(*) > 1) "
            "ORDER BY id"
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def _token_hash(token: str) -> str:
    # Tokens are 192 random bits, so a plain hash cannot be reversed by guessing: no salt
    # or slow hash is needed (those protect low-entropy passwords).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _record_hash(record: PreferencePair | Rating, annotator: str, meta: dict[str, Any]) -> str:
    """What makes an imported record the same record: its texts, its label, who gave it
    and its metadata (so two people's labels of the same pair both count)."""
    if isinstance(record, PreferencePair):
        content: list[Any] = ["pair", record.prompt, record.chosen, record.rejected]
        if record.tie:  # (only then: hashes of strict pairs stay as they were)
            content.append("tie")
    else:
        content = ["rating", record.prompt, record.completion, record.scale, record.label]
    text = json.dumps([*content, annotator, meta], sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _comparison(row: sqlite3.Row) -> Comparison:
    return Comparison(
        row["id"],
        row["context"],
        row["reply_a"],
        row["reply_b"],
        row["env_id"],
        row["seed"],
        row["turn"],
        row["source"],
        row["rm_version"],
        row["rm_margin"],
        row["wanted_labels"],
        json.loads(row["metadata"]),
    )


def _rating_item(row: sqlite3.Row) -> RatingItem:
    return RatingItem(
        row["id"],
        row["context"],
        row["reply"],
        row["env_id"],
        row["seed"],
        row["turn"],
        row["source"],
        json.loads(row["metadata"]),
    )
