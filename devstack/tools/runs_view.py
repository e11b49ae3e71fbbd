"""Run records (the app's `runs` table) as a person reads them: one row per run, a plain-text table, or JSON.

Names come from uploaded blobs and are untrusted: before they reach a terminal, control characters (newlines,
escape sequences) are shown escaped, so a hostile name cannot rewrite the screen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from devstack.tools import ui
from shared.records import STATES, TERMINAL, RunStore, is_hidden

_STAMPS = ("receivedAt", "rejectedAt", "submittedAt", "runningAt", "succeededAt", "failedAt", "cancelledAt")


@dataclass(frozen=True)
class RunRow:
    run_id: str
    pipeline: str
    state: str
    kind: str
    input: str | None  # container/name
    request_id: str | None
    created: str | None  # ISO 8601 UTC of the first state
    updated: str | None
    duration_seconds: float | None
    exit_code: int | None
    output_container: str | None
    output_prefix: str | None
    output_count: int | None
    manifest: str | None  # container/name of the result manifest
    reason: str | None  # rejection reason or failure message

    def as_json(self) -> dict:
        return asdict(self)


def _parse(stamp: object) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def to_row(record: dict) -> RunRow:
    stamps = sorted(str(record[k]) for k in _STAMPS if record.get(k))
    container = record.get("inputContainer")
    name = record.get("inputName")
    out_container = record.get("outputContainer")
    manifest = record.get("manifestBlob")
    reason = record.get("reason") or record.get("failureMessage")
    if record.get("state") == "received":  # waiting: held back (maxConcurrentTasks) or the last submit error
        reason = record.get("held") or record.get("lastError") or reason
    if record.get("state") == "failed" and record.get("failureCode"):
        reason = f"{record['failureCode']}: {reason or ''}".rstrip(": ")
    exit_code = record.get("exitCode")
    return RunRow(
        run_id=record["RowKey"], pipeline=record.get("pipeline") or record["PartitionKey"],
        state=record.get("state", "?"), kind=record.get("kind") or ("rejection" if record.get("state") == "rejected"
                                                                     else "task"),
        input=f"{container}/{name}" if name else None, request_id=record.get("requestId"),
        created=stamps[0] if stamps else None, updated=stamps[-1] if stamps else None,
        duration_seconds=record.get("durationSeconds"),
        exit_code=int(exit_code) if isinstance(exit_code, (int, float)) else None,
        output_container=out_container, output_prefix=record.get("outputPrefix"),
        output_count=record.get("outputCount"),
        manifest=f"{out_container}/{manifest}" if manifest and out_container else None, reason=reason)


def query_runs(runs: RunStore, pipeline: str | None = None, state: str | None = None,
               run_ids: Iterable[str] | None = None, request_id: str | None = None) -> list[RunRow]:
    """Rows for the filters given (evaluated by the table service), newest first. With `run_ids`, exactly those
    runs (found ones only). Without a pipeline this reads every partition."""
    if run_ids is not None:
        ordered = sorted(set(run_ids))
        rows = []
        # Point lookups OR-ed together, at most 15 comparisons per filter (the table service's limit).
        per_query = 14 if pipeline else 15
        for i in range(0, len(ordered), per_query):
            chunk = ordered[i:i + per_query]
            params = {f"r{j}": run_id for j, run_id in enumerate(chunk)}
            ids_clause = " or ".join(f"RowKey eq @r{j}" for j in range(len(chunk)))
            if pipeline:
                params["p"] = pipeline
                ids_clause = f"PartitionKey eq @p and ( {ids_clause} )"  # spaces: the SDK splits on them
            rows += [to_row(r) for r in runs.query(ids_clause, params)]
        return sort_rows(rows)
    return [to_row(r) for r in query_records(runs, pipeline, state, request_id)]


def query_records(runs: RunStore, pipeline: str | None = None, state: str | None = None,
                  request_id: str | None = None) -> list[dict]:
    """The run records for the filters (evaluated by the table service), newest first, bookkeeping rows left out."""
    clauses, params = [], {}
    if pipeline:
        clauses.append("PartitionKey eq @p")
        params["p"] = pipeline
    if state:
        clauses.append("state eq @s")
        params["s"] = state
    if request_id:
        clauses.append("requestId eq @r")
        params["r"] = request_id
    records = runs.table.query_entities(" and ".join(clauses), parameters=params) if clauses else \
        runs.table.list_entities()
    found = [dict(r) for r in records if not is_hidden(r.get("RowKey", ""))]
    return sorted(found, key=lambda r: (to_row(r).created or "", r["RowKey"]), reverse=True)


def sort_rows(rows: Iterable[RunRow]) -> list[RunRow]:
    return sorted(rows, key=lambda r: (r.created or "", r.run_id), reverse=True)


def find_run(runs: RunStore, run_id: str) -> list[dict]:
    """Records whose run id is `run_id`, or starts with it (a unique prefix is enough)."""
    exact = runs.query("RowKey eq @r", {"r": run_id})
    if exact:
        return exact
    return runs.query("RowKey ge @a and RowKey lt @b", {"a": run_id, "b": run_id + "\uffff"})


def counts(rows: Sequence[RunRow]) -> dict[str, int]:
    result = {s: 0 for s in STATES}
    for r in rows:
        result[r.state] = result.get(r.state, 0) + 1
    return result


def printable(text: str | None, limit: int | None = None) -> str:
    """`text` with control characters escaped; cut to `limit` characters with an ellipsis."""
    if text is None:
        return "-"
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit and len(out) > limit:
        out = out[: limit - 1] + "\u2026"
    return out


def _duration(row: RunRow, now: datetime) -> str:
    if row.duration_seconds is not None:
        return f"{row.duration_seconds:.1f}s"
    if row.state in ("received", "submitted", "running") and row.created:
        start = _parse(row.created)
        if start:
            return f"({(now - start).total_seconds():.0f}s)"
    return "-"


def _outputs(row: RunRow) -> str:
    if row.state == "succeeded" and row.output_prefix:
        n = row.output_count
        return f"{row.output_container}/{row.output_prefix}/" + (f" ({n} file{'s' if n != 1 else ''})"
                                                                  if n is not None else "")
    if row.state == "received" or (row.state in TERMINAL and row.state != "succeeded"):  # failed, rejected, ...
        return row.reason or "-"
    return "-"


def _input(row: RunRow) -> str:
    if row.input:
        return row.input
    if row.kind == "merge":
        return f"(merge of request {row.request_id})"
    return "-"


COLUMNS = (ui.Column("RUN", shrink=False), ui.Column("PIPELINE", shrink=False), ui.Column("INPUT", limit=44),
           ui.Column("STATE", style_by_value=ui.STATE_STYLES, shrink=False), ui.Column("DURATION", shrink=False),
           ui.Column("EXIT", shrink=False), ui.Column("OUTPUTS / REASON", limit=70))


def cells(rows: Sequence[RunRow], now: datetime | None = None) -> list[tuple[str, ...]]:
    """The table's cells per row (escaped, not cut): RUN, PIPELINE, INPUT, STATE, DURATION, EXIT, OUTPUTS."""
    now = now or datetime.now(UTC)
    return [(r.run_id, r.pipeline, printable(_input(r)), r.state, _duration(r, now),
             "-" if r.exit_code is None else str(r.exit_code), printable(_outputs(r))) for r in rows]


def table(rows: Sequence[RunRow], now: datetime | None = None, wide: bool = False) -> str:
    """The plain-text table (what a pipe gets): long inputs and outputs cut with an ellipsis unless `wide`."""
    return ui.plain_table(COLUMNS, cells(rows, now), wide)


def show(rows: Sequence[RunRow], wide: bool = False, stream=None) -> None:
    """Print the table: fitted to the terminal with colour, or the plain table off a terminal."""
    ui.table(COLUMNS, cells(rows), wide, stream=stream)


def summary(rows: Sequence[RunRow]) -> str:
    c = counts(rows)
    return "  ".join(f"{state} {c[state]}" for state in STATES if c.get(state) or state in
                     ("running", "succeeded", "failed"))
