"""How many times the host delivers a queue message before it moves it to `<queue>-poison`.

A request the app cannot handle yet (Batch or Storage unavailable) fails its invocation and comes back; on the last
delivery the app ends its runs itself (failed, with the last error and a failure message) instead of letting the
host poison the message and leave the runs `received`. The number is the host's: `extensions.queues.maxDequeueCount`
in host.json (default 5), overridden by the app setting `AzureFunctionsJobHost__extensions__queues__maxDequeueCount`
as the real host does (names are case-insensitive).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from shared.errors import ConfigError

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
DEFAULT_MAX_DEQUEUE_COUNT = 5


def max_dequeue_count(environ: Mapping[str, str] | None = None, host_json: Path = HOST_JSON) -> int:
    env = os.environ if environ is None else environ
    override = next((v for k, v in env.items() if k.lower() == OVERRIDE.lower() and str(v).strip()), None)
    if override is not None:
        return _positive(override, f"setting {OVERRIDE}")
    return _from_host_json(host_json)


@cache
def _from_host_json(path: Path) -> int:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return DEFAULT_MAX_DEQUEUE_COUNT
    except ValueError as exc:
        raise ConfigError(f"host.json: invalid JSON ({exc})") from None
    queues = ((doc.get("extensions") or {}).get("queues") or {}) if isinstance(doc, dict) else {}
    value = next((v for k, v in queues.items() if k.lower() == "maxdequeuecount"), None)
    if value is None:
        return DEFAULT_MAX_DEQUEUE_COUNT
    return _positive(value, "host.json extensions.queues.maxDequeueCount")


def _positive(value, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a whole number; use 1 or more (the host's default is 5)") \
            from None
    if number < 1:
        raise ConfigError(f"{where}: {number} must be 1 or more (the host's default is 5)")
    return number


def is_last_delivery(dequeue_count: int | None, environ: Mapping[str, str] | None = None) -> bool:
    """True when the host will not deliver this message again if the invocation fails."""
    return int(dequeue_count or 1) >= max_dequeue_count(environ)
