"""Replay: what the host or Event Grid gave up on, brought back for another try (`eventbatch replay`).

Three places hold work that nothing reads on its own:
- `<queue>-poison` of each queue with a trigger (requests, submit, taskcheck, control): the host moved a message there after
  maxDequeueCount failed deliveries. Replay puts the body back, byte for byte, on its queue.
- `webjobs-blobtrigger-poison`: the host's blob trigger gave up on a blob version after poisonBlobThreshold failures
  and left a message `{"Type": "BlobTrigger", "FunctionId", "BlobType", "ContainerName", "BlobName", "ETag"}`.
- the Event Grid dead-letter container (DEADLETTER_CONTAINER): Event Grid could not deliver a BlobCreated event
  (30 attempts in 24 h) and wrote blobs holding JSON arrays of events (Event Grid or CloudEvents schema).
Blob events are handed to the blob intake (shared.intake.handle_blob, through `blob_intake`), which records and
submits them as if their event had just arrived: run ids are the blob version's, so a version that was recorded
before is not run twice. A poison message is deleted once its body is back; a dead-letter blob once every event in
it is back. Without `apply` nothing changes: `survey` only counts.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.core.exceptions import ResourceNotFoundError

from shared.blob_events import blob_of_event
from shared.pipelines import PipelineConfig
from shared.settings import Settings
from shared.storage import StorageClients

log = logging.getLogger("eventbatch.replay")
BLOB_POISON_QUEUE = "webjobs-blobtrigger-poison"  # the Functions host's name, not a setting
LEASE_SECONDS = 300  # a message being replayed stays invisible this long if the replay dies half-way


@dataclass
class SourceReport:
    source: str  # the queue or container looked at
    target: str  # where its items go back to
    found: int = 0  # messages, or events (dead letters)
    blobs: int = 0  # dead-letter blobs
    moved: int = 0
    left: list[str] = field(default_factory=list)  # why an item stayed where it was
    lines: list[str] = field(default_factory=list)  # what moved, for the CLI

    def summary(self, apply: bool) -> str:
        what = f"{self.found} event(s) in {self.blobs} blob(s)" if self.target == "blob intake" and self.blobs \
            else f"{self.found} {'event(s)' if self.target == 'blob intake' else 'message(s)'}"
        text = f"{self.source}: {what} -> {self.target}"
        if apply:
            text += f": {self.moved} moved back"
        if self.left:
            text += f", {len(self.left)} left"
        return text


BlobIntake = Callable[[str, str], str]  # (container, name) -> intake status (queued | duplicate | rejected ...)


class Replayer:
    def __init__(self, storage: StorageClients, settings: Settings, config: PipelineConfig,
                 blob_intake: Callable[[], BlobIntake] | None = None, deadletter_container: str | None = None):
        """`blob_intake()` makes the intake for blob events; it is called only when there are events to apply
        (it needs Batch settings)."""
        self.storage = storage
        self.settings = settings
        self.config = config
        self._make_intake = blob_intake
        self._intake: BlobIntake | None = None
        self.deadletter_container = deadletter_container or settings.deadletter_container
        self.watched = {p.blob_input.container for p in config.pipelines.values() if p.blob_input}

    def run(self, apply: bool = False) -> list[SourceReport]:
        names = self.settings.queues
        reports = [self._queue(f"{q}-poison", q, apply) for q in (names.requests, names.submit, names.check,
                                                                 names.control)]
        reports.append(self._blob_poison(apply))
        reports.append(self._dead_letters(apply))
        return reports

    def intake(self, container: str, name: str) -> str:
        if self._intake is None:
            if self._make_intake is None:
                raise RuntimeError("no blob intake to replay blob events with")
            self._intake = self._make_intake()
        return self._intake(container, name)

    # ---- poison queues ---------------------------------------------------------------------------------
    def _queue(self, source: str, target: str, apply: bool) -> SourceReport:
        report = SourceReport(source, target)
        poison = self.storage.queue.get_queue_client(source)
        try:
            report.found = poison.get_queue_properties().approximate_message_count or 0
        except ResourceNotFoundError:
            return report  # the host creates it on the first poisoned message
        if not apply or not report.found:
            return report
        back = self.storage.queue.get_queue_client(target)
        for message in _drain(poison):
            try:
                back.send_message(message.content)
            except ResourceNotFoundError:
                back.create_queue()  # deleted since (or never made by this deployment): the message needs it
                back.send_message(message.content)
            poison.delete_message(message)
            report.moved += 1
            report.lines.append(f"{source} -> {target}: message {message.id} ({_describe(message.content)})")
        return report

    def _blob_poison(self, apply: bool) -> SourceReport:
        report = SourceReport(BLOB_POISON_QUEUE, "blob intake")
        poison = self.storage.queue.get_queue_client(BLOB_POISON_QUEUE)
        try:
            report.found = poison.get_queue_properties().approximate_message_count or 0
        except ResourceNotFoundError:
            return report
        if not apply or not report.found:
            return report
        for message in _drain(poison):
            ref = blob_of_poison_message(message.content)
            if ref is None or ref[0] not in self.watched:
                report.left.append(f"message {message.id}: not a blob of this app's input container")
                poison.update_message(message, visibility_timeout=0)  # another app's, or not a blob-trigger message
                continue
            try:
                status = self.intake(*ref)
            except Exception as exc:  # noqa: BLE001 - the others go on; this one stays for the next replay
                report.left.append(f"message {message.id} ({ref[0]}/{ref[1]!r}): {_error(exc)}")
                poison.update_message(message, visibility_timeout=0)
                continue
            poison.delete_message(message)
            report.moved += 1
            report.lines.append(f"{BLOB_POISON_QUEUE} -> blob intake: {ref[0]}/{ref[1]!r}: {status}")
        return report

    # ---- Event Grid dead letters -----------------------------------------------------------------------
    def _dead_letters(self, apply: bool) -> SourceReport:
        report = SourceReport(self.deadletter_container, "blob intake")
        container = self.storage.blob.get_container_client(self.deadletter_container)
        try:
            blobs = [b.name for b in container.list_blobs()]
        except ResourceNotFoundError:
            return report
        for blob_name in blobs:
            try:
                events = parse_dead_letters(container.get_blob_client(blob_name).download_blob().readall())
            except ValueError as exc:
                report.left.append(f"{blob_name}: {exc}")
                continue
            report.blobs += 1
            report.found += len(events)
            if not apply:
                continue
            refs = [blob_of_event(e) for e in events]
            if any(r is None or r[0] not in self.watched for r in refs):
                report.left.append(f"{blob_name}: holds events that are not BlobCreated events of this app's input "
                                   "container; left for a person to look at")
                continue
            done = 0
            for ref in refs:
                try:
                    status = self.intake(*ref)
                except Exception as exc:  # noqa: BLE001 - the blob stays; its events that went back are duplicates
                    report.left.append(f"{blob_name} ({ref[0]}/{ref[1]!r}): {_error(exc)}")  # next time, not reruns
                    break
                done += 1
                report.lines.append(f"{self.deadletter_container}/{blob_name} -> blob intake: {ref[0]}/{ref[1]!r}: "
                                    f"{status}")
            report.moved += done
            if done == len(refs):
                container.get_blob_client(blob_name).delete_blob()  # only now that every event in it is back
        return report


def _drain(queue):
    """Every message of a queue once: each received message stays invisible while it is being replayed."""
    while True:
        page = list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=LEASE_SECONDS))
        if not page:
            return
        yield from page


def _error(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


def _describe(content: str) -> str:
    data = _json(content)
    if isinstance(data, dict):
        parts = [f"{k} {data[k]!r}" for k in ("pipeline", "idempotencyKey") if isinstance(data.get(k), str)]
        if isinstance(data.get("inputs"), list):
            parts.append(f"{len(data['inputs'])} input(s)")
        if parts:
            return ", ".join(parts)
    return f"{len(content)} characters"


def _json(text: str | bytes):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def blob_of_poison_message(content: str) -> tuple[str, str] | None:
    """(container, blob) of a blob-trigger poison message, which is JSON, or base64 of it (messageEncoding)."""
    data = _json(content)
    if data is None:
        try:
            data = _json(base64.b64decode("".join(content.split()), validate=True))
        except (binascii.Error, ValueError):
            return None
    if not isinstance(data, dict):
        return None
    container, name = data.get("ContainerName"), data.get("BlobName")
    if not isinstance(container, str) or not isinstance(name, str) or not container or not name:
        return None
    return container, name


def parse_dead_letters(data: bytes) -> list[dict]:
    """The events of one dead-letter blob: a JSON array of events (or one event)."""
    doc = _json(data)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise ValueError("not a JSON array of events")
    return doc
