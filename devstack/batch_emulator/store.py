"""Durable state: one sqlite file (WAL) under the data dir holding pools, nodes, jobs and tasks as JSON rows.

Why sqlite rather than a file per entity: a 100-task addTaskCollection is one transaction, and the scheduler's
thousands of state changes are coalesced by a write-behind flusher (``mark`` + ``flush``) instead of one fsync
each. API calls that create or delete flush before they answer, so anything acknowledged survives a crash;
scheduler transitions lost in a crash are repaired at start-up (running tasks are requeued, as Batch does when
it loses a node).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

KINDS = ("pool", "node", "job", "task", "meta")


class Store:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS entity (kind TEXT NOT NULL, key TEXT NOT NULL, "
                         "body TEXT NOT NULL, PRIMARY KEY (kind, key))")
        self._io = threading.Lock()
        self._pending: dict[tuple[str, str], str | None] = {}
        self._pending_lock = threading.Lock()

    def load(self, kind: str) -> list[dict]:
        with self._io:
            rows = self._db.execute("SELECT body FROM entity WHERE kind = ?", (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def stage(self, kind: str, key: str, body: dict | None) -> None:
        """Queue a write (``body``) or delete (None); the caller holds the model lock so ``body`` is consistent."""
        text = None if body is None else json.dumps(body, separators=(",", ":"))
        with self._pending_lock:
            self._pending[(kind, key)] = text

    def flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return
        with self._io:
            self._db.execute("BEGIN")
            try:
                for (kind, key), text in batch.items():
                    if text is None:
                        self._db.execute("DELETE FROM entity WHERE kind = ? AND key = ?", (kind, key))
                    else:
                        self._db.execute("INSERT OR REPLACE INTO entity (kind, key, body) VALUES (?, ?, ?)",
                                         (kind, key, text))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.flush()
        with self._io:
            self._db.close()
