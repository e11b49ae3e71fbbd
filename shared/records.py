"""Run records in Table storage: one entity per run, moved forward through its states, never backwards.

Table `runs` (RUNS_TABLE): PartitionKey = pipeline name ("unrouted" for rejections that name no known pipeline),
RowKey = run id (the Batch task ID for runs, `rej-...` for rejections).
States: received -> submitted -> running -> succeeded | failed; rejected (terminal, from intake or a Batch client
error); cancelled (terminal, from any unfinished state: shared.control). Each state sets `<state>At` (ISO 8601
UTC). Transitions use the entity's ETag, so two workers never move the same run twice. A retry makes a new record
(`attempt`, `retryOf`) and marks the old one `supersededBy` (is_current).

The inbox. Beside every run that is not finished yet lives a small entity in the same partition, RowKey
`~inbox-<run id>`: written in the same transaction as the run record, updated with it, and deleted in the same
transaction that marks the run `notified` (its completion, failure or rejection message went out). It is the
app's list of unfinished work: the safety net (shared.reconcile) reads it with a key-range query per pipeline, so
finding a run that no event will finish never scans the table, however many finished runs it holds.

The request row. A queue request that carries an idempotency key owns a hidden entity `~request-<key>` in its
pipeline's partition, created in the same transaction as the request's first records: it holds a SHA-256 digest of
the canonical request (shared.work_items.request_digest), so the same key sent with other content is told apart
from a redelivery (shared.intake rejects it as `idempotency-conflict`) and never mixes into the first request.

The request record. Every request id (a queue request's runs share one) gets a hidden entity `~req-<request id>`
in its pipeline's partition once one of its runs ends: counts per state, recomputed from the run records, and the
claim of the request's one completion message (shared.requests). While that message is claimed and not yet sent,
an inbox entry `~inbox-~req-<request id>` (kind `request`) lets the safety net find it.

Inbox entries, request rows and request records are bookkeeping, not runs: is_hidden() names them, and every reader that shows
records to a person or counts runs leaves them out (query() does).

Notifications go out once: the writer that wins the ETag-guarded move to a terminal state also claims the
notification (`notifyClaimedAt`) in that write, sends the message, then marks `notified`. Only a claim older than
the repair delay may be taken over (shared.reconcile), so two concurrent finishers never both send.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

STATES = ("received", "submitted", "running", "succeeded", "failed", "rejected", "cancelled")
TERMINAL = ("succeeded", "failed", "rejected", "cancelled")
ORDER = {s: i for i, s in enumerate(STATES[:4])} | {"succeeded": 4, "failed": 4, "rejected": 4, "cancelled": 4}
MAX_TEXT = 8000
INBOX_PREFIX = "~inbox-"
REQUEST_PREFIX = "~request-"
REQUEST_RECORD_PREFIX = "~req-"  # one per request id: its counts and its one completion message (shared.requests)
HIDDEN_PREFIXES = (INBOX_PREFIX, REQUEST_PREFIX, REQUEST_RECORD_PREFIX)
_INBOX_END = "~inbox."  # the first key after every `~inbox-...` (ord('.') == ord('-') + 1)
RUNS_PER_TRANSACTION = 50  # two operations per run (record + inbox); a transaction holds at most 100


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inbox_key(run_id: str) -> str:
    return INBOX_PREFIX + run_id


def is_inbox(row_key: str) -> bool:
    return row_key.startswith(INBOX_PREFIX)


def request_key(idempotency_key: str) -> str:
    return REQUEST_PREFIX + idempotency_key


def request_record_key(request_id: str) -> str:
    return REQUEST_RECORD_PREFIX + request_id


def is_current(record: dict) -> bool:
    """False for a run a retry replaced (`supersededBy` names the new attempt): it no longer counts for its
    request, though it keeps its state and outputs."""
    return not record.get("supersededBy")


def is_hidden(row_key: str) -> bool:
    """A bookkeeping row (an inbox entry, a request row or a request record), never a run: left out wherever runs
    are listed."""
    return row_key.startswith(HIDDEN_PREFIXES)


class RequestConflict(Exception):
    """The idempotency key's request row exists with another request's digest (`existing` is that row)."""

    def __init__(self, existing: dict):
        super().__init__(f"idempotency key {existing.get('idempotencyKey')!r} belongs to another request")
        self.existing = existing


def _clean(entity: dict) -> dict:
    out = {}
    for k, v in entity.items():
        if v is None:
            continue
        if isinstance(v, str) and len(v) > MAX_TEXT:
            v = v[:MAX_TEXT]
        out[k] = v
    return out


def _inbox_entity(pipeline: str, run_id: str, state: str, stamp: str, **fields) -> dict:
    return _clean({"PartitionKey": pipeline, "RowKey": inbox_key(run_id), "runId": run_id, "state": state,
                   "since": stamp, **fields})


def _new_run(pipeline: str, run_id: str, state: str, stamp: str, fields: dict) -> tuple[dict, dict]:
    """A new run's record and its inbox entry, to be created together."""
    record = _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state, f"{state}At": stamp, **fields})
    return record, _inbox_entity(pipeline, run_id, state, stamp, kind=fields.get("kind"))


class RunStore:
    def __init__(self, table: TableClient):
        self.table = table
        self._creates = _GroupCommit(self._commit_creates, RUNS_PER_TRANSACTION)

    def ensure(self) -> None:
        try:
            self.table.create_table()
        except ResourceExistsError:
            pass

    def get(self, pipeline: str, run_id: str) -> dict | None:
        try:
            return with_etag(self.table.get_entity(pipeline, run_id))
        except ResourceNotFoundError:
            return None

    # ---- creation --------------------------------------------------------------------------------------
    def create(self, pipeline: str, run_id: str, state: str, fields: dict) -> tuple[bool, dict]:
        """Create the record and its inbox entry; (False, existing record) when the run exists already (a
        duplicate event). The returned record carries its ETag as `_etag`. Returns once the record is stored.

        Concurrent calls for one partition share a transaction (a group commit): while one transaction is in
        flight, the records that arrive meanwhile wait and go together in the next, up to RUNS_PER_TRANSACTION. No
        timer: a lone call goes at once, and the parallel invocations of a burst write a few records per request
        instead of one each."""
        return self._creates.run(pipeline, (run_id, state, fields))

    def _commit_creates(self, pipeline: str, items: list[tuple[str, str, dict]]) -> list:
        """One transaction for the records (and inbox entries) of `items`: [(created, record) | exception] in
        their order. When the service refuses the transaction for one operation (a run that exists already, the
        same run twice) that run is answered on its own and the rest committed together; a refusal that names no
        operation falls back to one transaction per run. Either way each caller gets its own answer."""
        if len(items) > 1:
            stamp = now_iso()
            ops, entities = [], []
            for run_id, state, fields in items:
                entity, inbox = _new_run(pipeline, run_id, state, stamp, fields)
                entities.append(entity)
                ops += [("create", entity), ("create", inbox)]
            try:
                results = self.table.submit_transaction(ops)
            except TableTransactionError as exc:
                if 0 < exc.index < len(ops):
                    # The service named the operation it refused (a run that exists already: a duplicate event):
                    # that run gets its own answer, the others go together again.
                    bad = exc.index // 2
                    rest = self._commit_creates(pipeline, items[:bad] + items[bad + 1:])
                    return [*rest[:bad], self._answer_one(pipeline, items[bad]), *rest[bad:]]
            except HttpResponseError:
                pass
            else:
                return [(True, {**e, "_etag": (meta or {}).get("etag")})
                        for e, meta in zip(entities, results[::2], strict=True)]
        return [self._answer_one(pipeline, item) for item in items]

    def _answer_one(self, pipeline: str, item: tuple[str, str, dict]):
        try:
            return self._create_one(pipeline, *item)
        except Exception as exc:  # noqa: BLE001 - handed to that caller alone
            return exc


    def _create_one(self, pipeline: str, run_id: str, state: str, fields: dict) -> tuple[bool, dict]:
        entity, inbox = _new_run(pipeline, run_id, state, now_iso(), fields)
        try:
            results = self.table.submit_transaction([("create", entity), ("create", inbox)])
            return True, {**entity, "_etag": (results[0] or {}).get("etag")}
        except HttpResponseError as exc:
            if _status(exc) != 409 and not isinstance(exc, TableTransactionError):
                raise
            existing = self.get(pipeline, run_id)
            if existing is None:
                raise  # the inbox entry exists without its record: not something a retry fixes silently
            return False, existing

    def create_many(self, pipeline: str, records: Iterable[tuple[str, dict]], state: str = "received",
                    request: dict | None = None) -> dict[str, str | None]:
        """Create records (with their inbox entries) that do not exist yet, RUNS_PER_TRANSACTION per transaction;
        returns {run id: ETag} of the new ones. `request` (the fields of the request row, with `idempotencyKey`
        and `digest`) is created in the first transaction, so no record of a keyed request exists without it;
        RequestConflict (and nothing created) when that row holds another request's digest."""
        items = list(records)
        created: dict[str, str | None] = {}
        head = None
        if request is not None:
            head = _clean({"PartitionKey": pipeline, "RowKey": request_key(request["idempotencyKey"]),
                           "receivedAt": now_iso(), **request})
        i = 0
        while i < len(items) or head is not None:
            size = RUNS_PER_TRANSACTION - (1 if head is not None else 0)  # the request row takes one operation
            chunk = items[i:i + size]
            i += len(chunk)
            stamp = now_iso()
            ops = []
            for rid, fields in chunk:
                ops += [("create", entity) for entity in _new_run(pipeline, rid, state, stamp, fields)]
            if head is not None:
                ops.append(("create", head))
            try:
                results = self.table.submit_transaction(ops)
                for (rid, _), meta in zip(chunk, results[:2 * len(chunk):2], strict=False):
                    created[rid] = (meta or {}).get("etag")
            except (TableTransactionError, HttpResponseError):
                if head is not None:
                    self._ensure_request(head)  # raises RequestConflict before any record is made
                for rid, fields in chunk:  # some exist already (a redelivered request): create the others alone
                    made, record = self._create_one(pipeline, rid, state, fields)
                    if made:
                        created[rid] = record.get("_etag")
            head = None
        return created

    def _ensure_request(self, head: dict) -> None:
        try:
            self.table.create_entity(head)
        except ResourceExistsError:
            existing = self.get(head["PartitionKey"], head["RowKey"])
            if existing is not None and existing.get("digest") != head.get("digest"):
                raise RequestConflict(existing) from None

    def get_request(self, pipeline: str, idempotency_key: str) -> dict | None:
        """The request row of an idempotency key in a pipeline (None before its first request was recorded)."""
        return self.get(pipeline, request_key(idempotency_key))

    # ---- transitions -----------------------------------------------------------------------------------
    def advance_many(self, pipeline: str, etags: dict[str, str | None], state: str, fields: dict) -> None:
        """Move many runs (known ETags: nobody touched them since) forward in transactions of up to 100; any
        conflict falls back to advance() one by one, which re-reads and never moves a run backwards. Their inbox
        entries are left as they are (the safety net reads the record of an entry before it acts on it), so a
        burst's move to `submitted` costs one entity per run."""
        items = list(etags.items())
        for i in range(0, len(items), 100):
            chunk = items[i:i + 100]
            stamp = now_iso()
            ops = []
            for run_id, etag in chunk:
                if not etag:
                    ops = None
                    break
                ops.append(("update", _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state,
                                              f"{state}At": stamp, **fields}),
                            {"mode": UpdateMode.MERGE, "etag": etag, "match_condition": MatchConditions.IfNotModified}))
            try:
                if ops is None:
                    raise ValueError("missing etag")
                self.table.submit_transaction(ops)
            except (TableTransactionError, HttpResponseError, ValueError):
                for run_id, _ in chunk:
                    self.advance(pipeline, run_id, state, fields)

    def advance(self, pipeline: str, run_id: str, state: str, fields: dict | None = None,
                record: dict | None = None) -> dict | None:
        """Move a run forward to `state` (never backwards), guarded by ETag, and its inbox entry with it; returns
        the new record (with its new `_etag`) or None when the run is already at or past that state, or someone
        else moved it first. Moving to a terminal state claims the run's notification for the caller."""
        record = record if record is not None else self.get(pipeline, run_id)
        if record is None:
            return None
        current = record.get("state", "received")
        if current in TERMINAL or ORDER.get(current, 0) >= ORDER[state]:
            return None
        stamp = now_iso()
        extra = {"notified": False, "notifyClaimedAt": stamp} if state in TERMINAL else {}
        update = _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state, f"{state}At": stamp,
                         **(fields or {}), **extra})
        etag = record.get("_etag")
        kwargs = {"mode": UpdateMode.MERGE}
        if etag:
            kwargs.update(etag=etag, match_condition=MatchConditions.IfNotModified)
        inbox = _inbox_entity(pipeline, run_id, state, stamp, jobId=(fields or {}).get("jobId") or record.get("jobId"))
        try:
            results = self.table.submit_transaction([("update", update, kwargs),
                                                     ("upsert", inbox, {"mode": UpdateMode.MERGE})])
            new_etag = (results[0] or {}).get("etag")
        except (TableTransactionError, ResourceNotFoundError, HttpResponseError) as exc:
            if _status(exc) == 412:
                return None
            raise
        return {**{k: v for k, v in {**record, **update}.items() if k != "_etag"}, "_etag": new_etag}

    def claim_notification(self, record: dict) -> dict | None:
        """Take over the notification of a terminal run whose earlier claim went stale (its claimer died between
        the state change and the message); None when another worker took it first."""
        update = {"PartitionKey": record["PartitionKey"], "RowKey": record["RowKey"], "notifyClaimedAt": now_iso(),
                  # the claim taken over: its worker may have sent the message just before it died
                  "notifyTakenOverFrom": record.get("notifyClaimedAt")}
        try:
            meta = self.table.update_entity(update, mode=UpdateMode.MERGE, etag=record.get("_etag"),
                                            match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as exc:
            if _status(exc) == 412:
                return None
            raise
        return {**record, **update, "_etag": (meta or {}).get("etag")}

    def mark_notified(self, pipeline: str, run_id: str) -> None:
        """The run's message went out: record it and take the run out of the inbox, in one transaction."""
        ops = [("update", {"PartitionKey": pipeline, "RowKey": run_id, "notified": True}, {"mode": UpdateMode.MERGE}),
               ("delete", {"PartitionKey": pipeline, "RowKey": inbox_key(run_id)})]
        try:
            self.table.submit_transaction(ops)
        except (TableTransactionError, HttpResponseError):
            # No inbox entry (already removed, or a run recorded before inbox entries existed): the flag alone.
            self.merge(pipeline, run_id, {"notified": True})
            self.forget(pipeline, run_id)

    def forget(self, pipeline: str, run_id: str) -> None:
        """Take a run out of the inbox (it needs nothing more from the app)."""
        try:
            self.table.delete_entity(pipeline, inbox_key(run_id))
        except ResourceNotFoundError:
            pass

    def touch_inbox(self, pipeline: str, run_id: str, fields: dict) -> None:
        """Note something about an unfinished run on its inbox entry (attempts, last error)."""
        self.table.upsert_entity(_clean({"PartitionKey": pipeline, "RowKey": inbox_key(run_id), "runId": run_id,
                                         **fields}), mode=UpdateMode.MERGE)

    def note_many(self, pipeline: str, fields: dict[str, dict], inbox_fields: dict[str, dict] | None = None,
                  records: bool = True) -> None:
        """Merge `fields[run id]` into many runs' records and `inbox_fields[run id]` (default: the same) into their
        inbox entries, RUNS_PER_TRANSACTION runs per transaction (shared.quotas: held marks; submit errors)."""
        ids = list(fields)
        inbox_fields = fields if inbox_fields is None else inbox_fields
        for i in range(0, len(ids), RUNS_PER_TRANSACTION):
            ops = []
            for run_id in ids[i:i + RUNS_PER_TRANSACTION]:
                if records:
                    ops.append(("update", {"PartitionKey": pipeline, "RowKey": run_id, **fields[run_id]},
                                {"mode": UpdateMode.MERGE}))
                ops.append(("upsert", {"PartitionKey": pipeline, "RowKey": inbox_key(run_id), "runId": run_id,
                                       **inbox_fields[run_id]}, {"mode": UpdateMode.MERGE}))
            self.table.submit_transaction(ops)

    def merge(self, pipeline: str, run_id: str, fields: dict) -> None:
        self.table.update_entity(_clean({"PartitionKey": pipeline, "RowKey": run_id, **fields}), mode=UpdateMode.MERGE)

    # ---- reading ---------------------------------------------------------------------------------------
    def query(self, filter_text: str, parameters: dict | None = None, select: list[str] | None = None) -> list[dict]:
        """Run records matching the filter (inbox entries and request rows are never returned)."""
        return [with_etag(e) for e in self.table.query_entities(filter_text, parameters=parameters, select=select)
                if not is_hidden(e.get("RowKey", ""))]

    def inbox_entry(self, pipeline: str, run_id: str) -> dict | None:
        try:
            return with_etag(self.table.get_entity(pipeline, inbox_key(run_id)))
        except ResourceNotFoundError:
            return None

    def inbox(self, pipeline: str) -> list[dict]:
        """The unfinished runs of a pipeline (their inbox entries): one key-range query."""
        rows = self.table.query_entities("PartitionKey eq @p and RowKey ge @a and RowKey lt @b",
                                         parameters={"p": pipeline, "a": INBOX_PREFIX, "b": _INBOX_END})
        return [with_etag(e) for e in rows]

    def by_request(self, pipeline: str, request_id: str, select: list[str] | None = None) -> dict[str, dict]:
        rows = self.query("PartitionKey eq @p and requestId eq @r", {"p": pipeline, "r": request_id}, select)
        return {r["RowKey"]: r for r in rows}


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None and isinstance(exc, TableTransactionError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    return status


def with_etag(entity) -> dict:
    """A plain dict of an entity that remembers its ETag for advance()."""
    out = dict(entity)
    meta = getattr(entity, "metadata", None) or {}
    if meta.get("etag"):
        out["_etag"] = meta["etag"]
    return out


class _GroupCommit:
    """Writes that arrive together go together, with no timer: the first caller for a key commits what is
    waiting (up to `limit` items); callers that arrive while a commit for their key is in flight wait, and the
    first of them then commits for all who are waiting. `commit(key, items)` returns one answer per item: a
    value, or an exception that is raised to that item's caller alone."""

    def __init__(self, commit: Callable[[str, list], list], limit: int):
        self._commit, self._limit = commit, limit
        self._lock = threading.Lock()
        self._waiting: dict[str, list[_Slot]] = {}
        self._busy: set[str] = set()

    def run(self, key: str, item):
        slot = _Slot(item)
        with self._lock:
            waiting = self._waiting.setdefault(key, [])
            waiting.append(slot)
            leads = key not in self._busy
            self._busy.add(key)
        if not leads:
            slot.done.wait()
            if not slot.leads:
                return slot.answer()
        with self._lock:
            group = waiting[: self._limit]
            del waiting[: len(group)]
        try:
            answers = self._commit(key, [s.item for s in group])
        except Exception as exc:  # noqa: BLE001 - every caller of the group gets it
            answers = [exc] * len(group)
        for s, answer in zip(group, answers, strict=True):
            s.result = answer
        with self._lock:
            if waiting:
                waiting[0].leads = True  # the next group is committed by its first caller
                waiting[0].done.set()
            else:
                self._busy.discard(key)
                self._waiting.pop(key, None)
        for s in group:
            if s is not slot:
                s.done.set()
        return slot.answer()


class _Slot:
    __slots__ = ("item", "result", "leads", "done")

    def __init__(self, item):
        self.item, self.result, self.leads, self.done = item, None, False, threading.Event()

    def answer(self):
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result
