"""Run records in Table storage: one entity per run, moved forward through its states, never backwards.

Table `runs` (RUNS_TABLE): PartitionKey = pipeline name ("unrouted" for rejections that name no known pipeline),
RowKey = run id (the Batch task ID for runs, `rej-...` for rejections).
States: received -> submitted -> running -> succeeded | failed; rejected (terminal, from intake or a Batch client
error). Each state sets `<state>At` (ISO 8601 UTC). Transitions use the entity's ETag, so two workers never move the
same run twice, and `notified` records that the completion/failure/rejection message was sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

STATES = ("received", "submitted", "running", "succeeded", "failed", "rejected")
TERMINAL = ("succeeded", "failed", "rejected")
ORDER = {s: i for i, s in enumerate(STATES[:4])} | {"succeeded": 4, "failed": 4, "rejected": 4}
MAX_TEXT = 8000


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(entity: dict) -> dict:
    out = {}
    for k, v in entity.items():
        if v is None:
            continue
        if isinstance(v, str) and len(v) > MAX_TEXT:
            v = v[:MAX_TEXT]
        out[k] = v
    return out


class RunStore:
    def __init__(self, table: TableClient):
        self.table = table

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

    def create(self, pipeline: str, run_id: str, state: str, fields: dict) -> tuple[bool, dict]:
        """Create the record; (False, existing record) when it already exists (a duplicate event). The returned
        record carries its ETag as `_etag`."""
        entity = _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state, f"{state}At": now_iso(),
                         **fields})
        try:
            meta = self.table.create_entity(entity)
            return True, {**entity, "_etag": (meta or {}).get("etag")}
        except ResourceExistsError:
            return False, self.get(pipeline, run_id) or entity

    def create_many(self, pipeline: str, records: Iterable[tuple[str, dict]], state: str = "received"
                    ) -> dict[str, str | None]:
        """Create records that do not exist yet, in transactions of up to 100; returns {run id: ETag} of the new
        ones."""
        stamp = now_iso()
        pending = [_clean({"PartitionKey": pipeline, "RowKey": rid, "state": state, f"{state}At": stamp, **fields})
                   for rid, fields in records]
        created: dict[str, str | None] = {}
        for i in range(0, len(pending), 100):
            chunk = pending[i:i + 100]
            try:
                results = self.table.submit_transaction([("create", e) for e in chunk])
                for entity, meta in zip(chunk, results, strict=False):
                    created[entity["RowKey"]] = (meta or {}).get("etag")
            except (HttpResponseError, ValueError):
                for entity in chunk:  # some exist already (a redelivered request): create the others one by one
                    try:
                        meta = self.table.create_entity(entity)
                        created[entity["RowKey"]] = (meta or {}).get("etag")
                    except ResourceExistsError:
                        pass
        return created

    def advance_many(self, pipeline: str, etags: dict[str, str | None], state: str, fields: dict) -> None:
        """Move many runs (known ETags: nobody touched them since) forward in transactions; any conflict falls
        back to advance() one by one, which re-reads and never moves a run backwards."""
        stamp = now_iso()
        items = list(etags.items())
        for i in range(0, len(items), 100):
            chunk = items[i:i + 100]
            ops = []
            for run_id, etag in chunk:
                entity = _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state, f"{state}At": stamp,
                                 **fields})
                if not etag:
                    ops = None
                    break
                ops.append(("update", entity, {"mode": UpdateMode.MERGE, "etag": etag,
                                               "match_condition": MatchConditions.IfNotModified}))
            try:
                if ops is None:
                    raise ValueError("missing etag")
                self.table.submit_transaction(ops)
            except (HttpResponseError, ValueError):
                for run_id, _ in chunk:
                    self.advance(pipeline, run_id, state, fields)

    def advance(self, pipeline: str, run_id: str, state: str, fields: dict | None = None,
                record: dict | None = None) -> dict | None:
        """Move a run forward to `state` (never backwards), guarded by ETag; returns the new record or None when
        the run is already at or past that state, or someone else moved it first."""
        record = record if record is not None else self.get(pipeline, run_id)
        if record is None:
            return None
        current = record.get("state", "received")
        if current in TERMINAL or ORDER.get(current, 0) >= ORDER[state]:
            return None
        update = _clean({"PartitionKey": pipeline, "RowKey": run_id, "state": state, f"{state}At": now_iso(),
                         **(fields or {})})
        etag = record.get("_etag")
        try:
            if etag:
                self.table.update_entity(update, mode=UpdateMode.MERGE, etag=etag,
                                         match_condition=MatchConditions.IfNotModified)
            else:
                self.table.update_entity(update, mode=UpdateMode.MERGE)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            if getattr(exc, "status_code", None) == 412:
                return None
            raise
        return {k: v for k, v in {**record, **update}.items() if k != "_etag"}

    def merge(self, pipeline: str, run_id: str, fields: dict) -> None:
        self.table.update_entity(_clean({"PartitionKey": pipeline, "RowKey": run_id, **fields}), mode=UpdateMode.MERGE)

    def query(self, filter_text: str, parameters: dict | None = None, select: list[str] | None = None) -> list[dict]:
        return [with_etag(e) for e in self.table.query_entities(filter_text, parameters=parameters, select=select)]

    def by_request(self, pipeline: str, request_id: str) -> dict[str, dict]:
        rows = self.query("PartitionKey eq @p and requestId eq @r", {"p": pipeline, "r": request_id})
        return {r["RowKey"]: r for r in rows}


def with_etag(entity) -> dict:
    """A plain dict of an entity that remembers its ETag for advance()."""
    out = dict(entity)
    meta = getattr(entity, "metadata", None) or {}
    if meta.get("etag"):
        out["_etag"] = meta["etag"]
    return out
