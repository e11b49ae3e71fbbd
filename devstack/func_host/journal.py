"""In-flight queue message journal, ``<state-dir>/inflight-queue.json``: a local convenience beyond Azure.

On Azure a crashed instance's messages stay invisible until their 10-minute invisibility ends. Locally that
makes "kill the host, start it again" look like lost work for ten minutes, so the host journals the messages
it holds (function, queue, id, current pop receipt); a successor that finds the journal of a dead predecessor
makes those messages visible again at once. A pop receipt that is no longer valid (the message was deleted or
received by someone else) makes that release a harmless no-op.
"""

import json
import os
import threading
from pathlib import Path


class InflightJournal:
    def __init__(self, state_dir: Path):
        self.path = state_dir / "inflight-queue.json"
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()

    def read_previous(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [e for e in data.get("messages", []) if isinstance(e, dict)]

    def put(self, function: str, queue: str, message_id: str, pop_receipt: str) -> None:
        with self._lock:
            self._entries[f"{queue}/{message_id}"] = {"function": function, "queue": queue, "id": message_id,
                                                      "pop_receipt": pop_receipt}
            self._flush()

    def remove(self, queue: str, message_id: str) -> None:
        with self._lock:
            if self._entries.pop(f"{queue}/{message_id}", None) is not None:
                self._flush()

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            self._flush()

    def _flush(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"messages": list(self._entries.values())}))
        os.replace(tmp, self.path)
