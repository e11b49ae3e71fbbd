"""The app's queues and the messages it puts on them (UTF-8 JSON text, no base64: host.json sets
messageEncoding "none", so `az storage message put --content '{...}'` works for requests).

    requests     in:  {pipeline, inputs, overrides?, idempotencyKey?}            (queue trigger)
    submit       internal: {v: 2, pipeline, runIds, attempt, lastError} (RetryMessage): runs Batch could not take
                 yet, sent invisible for a back-off (shared.submission) and taken by the queue-triggered drain
    taskcheck    internal: {jobId, taskId, attempt} (CheckMessage): a delayed look at a task whose completion
                 marker arrived before Batch showed it completed (shared.completion)
    rejected     out: {runId, reason, code, source, pipeline?, payload, rejectedAt}
    completions  out: {runId, pipeline, state: succeeded, jobId, taskId, input, manifest, outputs, outputCount,
                 outputsTruncated?, ...}: bounded by construction (shared.manifest.completion_message)
    failures     out: the same shape with state failed, exitCode and failure
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueServiceClient

from shared.settings import QueueNames

MAX_MESSAGE_BYTES = 64 * 1024
RETRY_MESSAGE_VERSION = 2
_NOT_OURS = (ValueError, KeyError, TypeError, RecursionError)


def encode(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def fit(message: dict, big_field: str) -> dict:
    """Shorten `big_field` (e.g. the original payload) so the message stays under the 64 KiB queue limit."""
    text = encode(message)
    if len(text.encode("utf-8")) <= MAX_MESSAGE_BYTES - 1024:
        return message
    value = str(message.get(big_field, ""))
    keep = max(0, len(value) - (len(text.encode("utf-8")) - MAX_MESSAGE_BYTES + 2048))
    return {**message, big_field: value[:keep], f"{big_field}Truncated": True}


@dataclass(frozen=True)
class RetryMessage:
    """A submit-queue message: runs of one pipeline that Batch could not take yet, to try again."""

    pipeline: str
    run_ids: tuple[str, ...]
    attempt: int = 1
    last_error: str = ""

    def to_message(self) -> dict:
        return {"v": RETRY_MESSAGE_VERSION, "pipeline": self.pipeline, "runIds": list(self.run_ids),
                "attempt": self.attempt, "lastError": self.last_error[:500]}

    @classmethod
    def from_body(cls, body: str | bytes) -> RetryMessage:
        """ValueError when the body is not a retry message."""
        try:
            data = json.loads(body)
            return cls(data["pipeline"], tuple(str(r) for r in data["runIds"]), int(data.get("attempt") or 1),
                       str(data.get("lastError") or ""))
        except _NOT_OURS as exc:
            raise ValueError("not a retry message") from exc


@dataclass(frozen=True)
class CheckMessage:
    """A check-queue message: look again at a task whose completion marker came before Batch showed it completed;
    `attempt` is the number of that look (the first, from the marker, is 1)."""

    job_id: str
    task_id: str
    attempt: int = 2

    def to_message(self) -> dict:
        return {"jobId": self.job_id, "taskId": self.task_id, "attempt": self.attempt}

    @classmethod
    def from_body(cls, body: str | bytes) -> CheckMessage:
        """ValueError when the body is not a check message."""
        try:
            data = json.loads(body)
            return cls(str(data["jobId"]), str(data["taskId"]), int(data.get("attempt") or 2))
        except _NOT_OURS as exc:
            raise ValueError("not a check message") from exc


class Messenger:
    def __init__(self, service: QueueServiceClient, names: QueueNames):
        self.service = service
        self.names = names
        self._clients = {}

    def client(self, name: str):
        if name not in self._clients:
            self._clients[name] = self.service.get_queue_client(name)
        return self._clients[name]

    def ensure(self) -> None:
        for name in self.names.all():
            try:
                self.client(name).create_queue()
            except ResourceExistsError:
                pass

    def send(self, queue: str, message: dict, delay: int = 0) -> None:
        """Send a message; `delay` seconds keep it invisible (a back-off or a delayed look)."""
        self.client(queue).send_message(encode(message), visibility_timeout=delay or None)

    def reject(self, message: dict) -> None:
        self.send(self.names.rejected, fit(message, "payload"))

    def submit(self, message: dict, delay: int = 0) -> None:
        self.send(self.names.submit, message, delay)

    def check(self, message: dict, delay: int = 0) -> None:
        self.send(self.names.check, message, delay)

    def completed(self, message: dict) -> None:
        queue = self.names.completions if message.get("state") == "succeeded" else self.names.failures
        self.send(queue, message)
