"""Durable state of the lab service: SQLite (standard library) under state_dir.

Everything a later message or a restarted process needs is here: each session's log and
lifecycle, the outcome recorded for each applied sequence number and message id (S7,
S10), how often each message id was delivered, and the process incarnation. Every write
is one transaction committed before the caller is answered (S9, S10): after a kill -9 the
restarted process finds exactly what it had acknowledged.
"""

import json
import os
import sqlite3
import threading
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  service TEXT NOT NULL,
  id TEXT NOT NULL,
  state TEXT NOT NULL,            -- live | closed | expired
  log TEXT NOT NULL,              -- JSON list of strings
  last_seq INTEGER NOT NULL,      -- highest sb-seq applied (S7)
  last_active_ms INTEGER NOT NULL, -- wall clock of the last message, for expiry (S12)
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (service, id)
);
CREATE TABLE IF NOT EXISTS outcomes (
  service TEXT NOT NULL,
  session_id TEXT NOT NULL,
  kind TEXT NOT NULL,             -- seq | msg
  key TEXT NOT NULL,
  reply BLOB,                     -- the answered message, or NULL when it was a fault
  fault BLOB,                     -- google.rpc.Status of the fault
  PRIMARY KEY (service, session_id, kind, key)
);
CREATE TABLE IF NOT EXISTS deliveries (message_id TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


def now_ms():
    return int(time.time() * 1000)


class Session:
    """One row of `sessions`, as the core reads and changes it inside a transaction."""

    __slots__ = ("service", "id", "state", "log", "last_seq", "last_active_ms", "created_ms")

    def __init__(self, service, id, state, log, last_seq, last_active_ms, created_ms):
        self.service = service
        self.id = id
        self.state = state
        self.log = log
        self.last_seq = last_seq
        self.last_active_ms = last_active_ms
        self.created_ms = created_ms


class LabStore:
    """A single SQLite connection shared by every transport thread, behind one lock.

    Transactions are short (no sleeping inside one), so one lock is simpler than a pool
    and keeps each message's changes atomic.
    """

    def __init__(self, state_dir):
        os.makedirs(state_dir, exist_ok=True)
        self._db = sqlite3.connect(
            os.path.join(state_dir, "lab.sqlite"), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the answer leaves, so even a machine crash keeps
        # what was acknowledged (S9, S10).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.lock = threading.RLock()
        with self.transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key = 'incarnation'").fetchone()
            self.incarnation = (row[0] if row else 0) + 1
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('incarnation', ?)", (self.incarnation,)
            )

    def close(self):
        with self.lock:
            self._db.close()

    def transaction(self, durable=True):
        """A write transaction, committed on exit when durable (always, in the reference)."""
        return _Transaction(self, durable)

    def reading(self):
        """Reads without a transaction of their own: nothing to commit."""
        return _Reading(self)

    # The methods below run inside transaction().

    def session(self, service, session_id):
        row = self._db.execute(
            "SELECT state, log, last_seq, last_active_ms, created_ms FROM sessions WHERE service = ? AND id = ?",
            (service, session_id),
        ).fetchone()
        if row is None:
            return None
        return Session(service, session_id, row[0], json.loads(row[1]), row[2], row[3], row[4])

    def live_sessions(self, service):
        rows = self._db.execute(
            "SELECT id FROM sessions WHERE service = ? AND state = 'live'", (service,)
        ).fetchall()
        return [self.session(service, row[0]) for row in rows]

    def all_live_sessions(self):
        rows = self._db.execute("SELECT service, id FROM sessions WHERE state = 'live'").fetchall()
        return [self.session(service, id) for service, id in rows]

    def save_session(self, session):
        self._db.execute(
            "INSERT OR REPLACE INTO sessions (service, id, state, log, last_seq, last_active_ms, created_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                session.service,
                session.id,
                session.state,
                json.dumps(session.log),
                session.last_seq,
                session.last_active_ms,
                session.created_ms,
            ),
        )

    def outcome(self, service, session_id, kind, key):
        """(reply bytes or None, fault bytes or None), or None when nothing is recorded."""
        return self._db.execute(
            "SELECT reply, fault FROM outcomes WHERE service = ? AND session_id = ? AND kind = ? AND key = ?",
            (service, session_id, kind, str(key)),
        ).fetchone()

    def record_outcome(self, service, session_id, kind, key, reply, fault):
        self._db.execute(
            "INSERT OR REPLACE INTO outcomes (service, session_id, kind, key, reply, fault) VALUES (?, ?, ?, ?, ?, ?)",
            (service, session_id, kind, str(key), reply, fault),
        )

    def count_delivery(self, message_id):
        """Counts one more delivery of message_id and returns the count, this one included."""
        row = self._db.execute("SELECT count FROM deliveries WHERE message_id = ?", (message_id,)).fetchone()
        count = (row[0] if row else 0) + 1
        self._db.execute("INSERT OR REPLACE INTO deliveries (message_id, count) VALUES (?, ?)", (message_id, count))
        return count


class _Reading:
    def __init__(self, store):
        self._store = store

    def __enter__(self):
        self._store.lock.acquire()
        return self._store

    def __exit__(self, *exc):
        self._store.lock.release()
        return False


class _Transaction:
    def __init__(self, store, durable):
        self._store = store
        self._durable = durable

    def __enter__(self):
        self._store.lock.acquire()
        db = self._store._db
        # A transaction left open by a unit that chose not to be durable is carried on
        # (only a deliberately faulty service does that; see conformance/faulty/python).
        if not db.in_transaction:
            db.execute("BEGIN IMMEDIATE")
        return self._store

    def __exit__(self, exc_type, exc, tb):
        db = self._store._db
        try:
            if exc_type is not None:
                db.execute("ROLLBACK")
            elif self._durable:
                db.execute("COMMIT")
        finally:
            self._store.lock.release()
        return False
