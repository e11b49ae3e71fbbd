"""The errors that are part of eventbatch's interface.

ConfigError: a setting or pipelines.yaml is wrong; the message names the setting and the fix, and the app refuses
to start. Rejection: one input cannot be processed, ever; the reason is written for a person and is stored with the
run record and put on the rejected queue, never retried. RequestDeferred: a request could not be handled yet
(Batch or Storage unavailable); the invocation fails so that the host delivers the message again.
"""

from __future__ import annotations

MAX_REASON = 1000  # a reason may quote the input: bounded, so no input can make a record or a message too large


class ConfigError(ValueError):
    """Configuration that the app cannot run with. Raised once, at start-up."""


class Rejection(Exception):
    """An input that will never succeed: malformed, unknown pipeline, missing blob, outside policy, unsafe name.

    `code` is a short machine-readable class (used in tests and dashboards); `reason` is the sentence a person
    reads, at most MAX_REASON characters (a longer one is cut, saying how much was left out).
    """

    def __init__(self, code: str, reason: str):
        reason = cap_reason(reason)
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class RequestDeferred(RuntimeError):
    """A request whose runs could not all be submitted yet (or whose records could not be written): the host
    delivers it again. `unsubmitted` maps the run ids that exist to the last error; `reason` says what failed."""

    def __init__(self, reason: str, pipeline: str | None = None, request_id: str | None = None,
                 unsubmitted: dict[str, str] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.pipeline = pipeline
        self.request_id = request_id
        self.unsubmitted = dict(unsubmitted or {})


def cap_reason(reason: str, limit: int = MAX_REASON) -> str:
    if len(reason) <= limit:
        return reason
    tail = f"... ({len(reason) - limit} more characters)"
    return reason[:limit - len(tail)] + tail
