"""Override values never leave the app in clear: not in rejection payloads, messages, reasons, logs or records.

A request's `overrides.environment` values may hold tokens. The app needs them in exactly one place, the Batch
task's environment; everywhere else a value is shown as `<redacted, N chars>`, which still tells a person what was
sent (the name, and roughly what size of value) without what it was.
"""

from __future__ import annotations

import json
from typing import Any


def redacted(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<redacted, {len(text)} chars>"


def redact_overrides(overrides: Any) -> Any:
    """`overrides` (as a request holds them) with every environment value replaced by its placeholder; anything
    whose shape is not the expected one is replaced whole, since nobody can say which part of it is a value."""
    if not isinstance(overrides, dict):
        return redacted(overrides)
    env = overrides.get("environment")
    if env is None:
        return overrides
    if isinstance(env, dict):
        env = {name: redacted(value) for name, value in env.items()}
    else:
        env = redacted(env)
    return {**overrides, "environment": env}


def redact_request_text(text: str) -> str:
    """A request's text as it may be stored or sent on: unchanged unless it holds overrides. A JSON object comes
    back re-serialised with their values redacted; text that cannot be read as one is cut after the word
    `overrides` (what follows may be a value), so a broken request never carries a token onwards either."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        if "overrides" not in data:
            return text
        return json.dumps({**data, "overrides": redact_overrides(data["overrides"])}, ensure_ascii=False)
    at = text.find("overrides")
    if at < 0:
        return text
    cut = at + len("overrides")
    return f"{text[:cut]} {redacted(text[cut:])}"
