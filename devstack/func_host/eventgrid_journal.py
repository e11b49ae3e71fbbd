"""The local Event Grid's durable state, two append-only JSON-lines files in the host's state dir (never Azurite).

``eventgrid-journal.jsonl``: one ``add`` line per accepted (subscription, event), ``attempt`` lines as deliveries
fail, a ``done`` line when the event was delivered, dead-lettered or dropped. A line is written with one
``os.write`` on an O_APPEND descriptor before the publisher gets its answer, so an accepted event survives a
``kill -9`` of the host (the page cache outlives the process); a torn last line is skipped when read. At start the
journal is folded and rewritten with only the undelivered entries (compaction), which are then delivered again,
including those that were in flight at the kill: delivery is at least once.

``eventgrid-delivered.jsonl``: the blob versions (function, container, name, ETag) whose event was settled, so
the fallback scan of a restarted host does not turn every blob of the container into an event again, and an event
pushed and also found by the scan is delivered once. Compacted (deduplicated) at start.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

Version = tuple[str, str, str]  # (container, blob name, ETag without quotes)


def version_of(container: str, name: str, etag: str | None) -> Version | None:
    etag = (etag or "").strip().strip('"')
    return (container, name, etag) if etag else None


@dataclass
class Entry:
    """One event for one subscription, until it is settled."""

    id: str
    function: str
    event: dict
    published: float  # epoch seconds the publish endpoint (or the scan) accepted it
    version: Version | None = None
    attempts: int = 0
    next_attempt: float = 0.0  # epoch seconds
    last_outcome: str | None = None
    last_status: int | None = None
    last_attempt: float | None = None  # epoch seconds
    last_error: str | None = None
    dead_letter_reason: str | None = field(default=None, compare=False)

    def record(self) -> dict:
        return {"op": "add", "id": self.id, "fn": self.function, "event": self.event, "published": self.published,
                "version": list(self.version) if self.version else None, "attempts": self.attempts,
                "next": self.next_attempt, "outcome": self.last_outcome, "status": self.last_status,
                "last": self.last_attempt, "error": self.last_error}


def _read_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        if isinstance(item, dict) or isinstance(item, list):
            out.append(item)
    return out


def _rewrite(path: Path, lines: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


class _AppendFile:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, item) -> None:
        data = (json.dumps(item, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                self.open()
            os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class EventJournal:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "eventgrid-journal.jsonl"
        self._file = _AppendFile(self.path)

    def load_and_compact(self) -> list[Entry]:
        """The undelivered entries of earlier runs; the file is rewritten to hold only them."""
        entries: dict[str, Entry] = {}
        for item in _read_lines(self.path):
            if not isinstance(item, dict):
                continue
            op, key = item.get("op"), item.get("id")
            if op == "add" and isinstance(item.get("event"), dict):
                version = item.get("version")
                entries[key] = Entry(id=key, function=item["fn"], event=item["event"],
                                     published=float(item.get("published") or 0),
                                     version=tuple(version) if version else None,
                                     attempts=int(item.get("attempts") or 0), next_attempt=float(item.get("next") or 0),
                                     last_outcome=item.get("outcome"), last_status=item.get("status"),
                                     last_attempt=item.get("last"), last_error=item.get("error"))
            elif op == "attempt" and key in entries:
                entry = entries[key]
                entry.attempts = int(item.get("attempts") or entry.attempts)
                entry.next_attempt = float(item.get("next") or 0)
                entry.last_outcome, entry.last_status = item.get("outcome"), item.get("status")
                entry.last_attempt, entry.last_error = item.get("last"), item.get("error")
            elif op == "done":
                entries.pop(key, None)
        pending = list(entries.values())
        self._file.close()
        _rewrite(self.path, [e.record() for e in pending])
        self._file.open()
        return pending

    def add(self, entry: Entry) -> None:
        self._file.append(entry.record())

    def attempt(self, entry: Entry) -> None:
        self._file.append({"op": "attempt", "id": entry.id, "attempts": entry.attempts, "next": entry.next_attempt,
                           "outcome": entry.last_outcome, "status": entry.last_status, "last": entry.last_attempt,
                           "error": entry.last_error})

    def done(self, entry: Entry, how: str) -> None:
        self._file.append({"op": "done", "id": entry.id, "how": how})

    def close(self) -> None:
        self._file.close()


class DeliveredVersions:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "eventgrid-delivered.jsonl"
        self._file = _AppendFile(self.path)
        self._seen: set[tuple[str, Version]] = set()
        self._lock = threading.Lock()

    def load_and_compact(self) -> None:
        seen = set()
        for item in _read_lines(self.path):
            if isinstance(item, list) and len(item) == 4:
                seen.add((item[0], (item[1], item[2], item[3])))
        self._file.close()
        _rewrite(self.path, sorted([fn, *version] for fn, version in seen))
        self._file.open()
        with self._lock:
            self._seen = seen

    def __contains__(self, key: tuple[str, Version]) -> bool:
        with self._lock:
            return key in self._seen

    def add(self, function: str, version: Version) -> None:
        with self._lock:
            if (function, version) in self._seen:
                return
            self._seen.add((function, version))
        self._file.append([function, *version])

    def close(self) -> None:
        self._file.close()
