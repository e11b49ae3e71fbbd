"""The errors that are part of eventbatch's interface.

ConfigError: a setting or pipelines.yaml is wrong; the message names the setting and the fix, and the app refuses
to start. Rejection: one input cannot be processed, ever; the reason is written for a person and is stored with the
run record and put on the rejected queue, never retried.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Configuration that the app cannot run with. Raised once, at start-up."""


class Rejection(Exception):
    """An input that will never succeed: malformed, unknown pipeline, missing blob, outside policy, unsafe name.

    `code` is a short machine-readable class (used in tests and dashboards); `reason` is the sentence a person
    reads.
    """

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
