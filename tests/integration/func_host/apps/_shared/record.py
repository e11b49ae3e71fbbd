"""Shared by the test apps (copied beside their function_app.py by hostproc.copy_app): append one JSON line per
event to $FH_OUT/events.jsonl (atomic O_APPEND writes)."""

import json
import os
import threading
import time


def record(event: str, **fields) -> None:
    line = json.dumps({"event": event, "t": time.time(), "thread": threading.get_ident(), **fields}) + "\n"
    fd = os.open(os.path.join(os.environ["FH_OUT"], "events.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
