"""`eventbatch wait RUN... | --request ID [--pipeline P] [--timeout S] [--json]`: block until the work has ended.

Polls the runs table (one query per look, 15 run ids per query at most; a request: one `requestId eq` query) with
an interval growing from 0.5 s to 5 s, and shows a progress bar: runs ended / runs, with the counts per state.
A run that was retried (its record has `supersededBy`) is followed to its newest attempt; in a request the
superseded records do not count (the new attempts do), the merge does.

Exit codes (for scripts):
    0  every run ended `succeeded`
    1  every run ended, at least one not succeeded (failed, rejected, cancelled)
    2  --timeout passed first (the runs go on; wait again to keep watching)
    3  cannot watch: bad arguments, settings or storage unreachable (the message says which)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError, ResourceNotFoundError

from devstack.tools import runs_view, ui
from devstack.tools.access import AccessError, AppAccess, add_arguments, normalize_argv
from shared.records import TERMINAL, RunStore

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_TIMEOUT, EXIT_ERROR = 0, 1, 2, 3
FIRST_INTERVAL, MAX_INTERVAL, GROWTH = 0.5, 5.0, 1.5
_IDS_PER_QUERY = 15  # the table service's limit on comparisons in one filter


def parser(name: str = "wait") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"eventbatch {name}",
                                description="Block until runs (or a whole request) have ended; exit 0 only if all "
                                            "succeeded, 1 if any failed/rejected/cancelled, 2 on timeout, 3 when "
                                            "the runs cannot be read.")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run ids (or unique prefixes), as `eventbatch submit` / `status` print them")
    p.add_argument("--request", metavar="ID", help="every run of this request id (its merge included)")
    p.add_argument("--pipeline", help="the runs' pipeline (a faster lookup; with --request: only that pipeline)")
    p.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds (exit 2; default: no limit)")
    p.add_argument("--json", action="store_true", help="print the final states as JSON (progress goes to stderr)")
    p.add_argument("--no-color", action="store_true", help="no colour (also: the NO_COLOR environment variable)")
    add_arguments(p)
    return p


@dataclass
class Look:
    """One look at the runs: the current record of each run that counts, and the ids not seen yet."""

    records: dict[str, dict] = field(default_factory=dict)  # run id -> record (newest attempt)
    missing: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.records) + len(self.missing)

    @property
    def ended(self) -> int:
        return sum(r.get("state") in TERMINAL for r in self.records.values())

    @property
    def done(self) -> bool:
        return self.total > 0 and not self.missing and self.ended == self.total

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for r in self.records.values():
            c[r.get("state", "?")] = c.get(r.get("state", "?"), 0) + 1
        if self.missing:
            c["not yet seen"] = len(self.missing)
        return c

    def exit_code(self) -> int:
        if not self.done:
            return EXIT_TIMEOUT
        return EXIT_SUCCEEDED if all(r.get("state") == "succeeded" for r in self.records.values()) else EXIT_FAILED


def _query_ids(runs: RunStore, ids: list[str], pipeline: str | None) -> list[dict]:
    out: list[dict] = []
    per = _IDS_PER_QUERY - 1 if pipeline else _IDS_PER_QUERY
    for i in range(0, len(ids), per):
        chunk = ids[i:i + per]
        params = {f"r{j}": run_id for j, run_id in enumerate(chunk)}
        clause = " or ".join(f"RowKey eq @r{j}" for j in range(len(chunk)))
        if pipeline:
            params["p"] = pipeline
            clause = f"PartitionKey eq @p and ( {clause} )"  # spaces around the brackets: the SDK splits on them
        out += runs.query(clause, params)
    return out


def runs_looker(runs: RunStore, run_ids: list[str], pipeline: str | None = None) -> Callable[[], Look]:
    """Looks at these runs; a retried run (`supersededBy`) is replaced by its newest attempt from the next look.
    At the first look an id that is not found is tried as a prefix (as `status` and `logs` take them): exactly one
    match replaces it; otherwise it stays an id not recorded yet (a fresh upload's run appears a moment later)."""
    current = {run_id: run_id for run_id in dict.fromkeys(run_ids)}  # asked id -> id of its newest attempt
    first = [True]

    def look() -> Look:
        try:
            found = {r["RowKey"]: r for r in _query_ids(runs, sorted(set(current.values())), pipeline)}
            if first[0]:
                first[0] = False
                for asked in [a for a, run_id in current.items() if run_id not in found]:
                    matches = runs.query("RowKey ge @a and RowKey lt @b", {"a": asked, "b": asked + "\uffff"},
                                         select=["PartitionKey", "RowKey"])
                    if len(matches) == 1:
                        current[asked] = matches[0]["RowKey"]
                        found.update({r["RowKey"]: r for r in _query_ids(runs, [current[asked]], pipeline)})
        except ResourceNotFoundError:
            found = {}  # no runs table yet
        result = Look()
        for asked, run_id in current.items():
            record = found.get(run_id)
            if record is None:
                result.missing.append(run_id)
                continue
            if record.get("supersededBy"):
                current[asked] = str(record["supersededBy"])
                record = {**record, "state": "retrying"}  # not terminal: the new attempt is looked at next
            result.records[asked] = record
        return result

    return look


def request_looker(runs: RunStore, request_id: str, pipeline: str | None = None) -> Callable[[], Look]:
    """Looks at every run of a request: one query; superseded records (retried attempts) do not count."""
    clause, params = "requestId eq @r", {"r": request_id}
    if pipeline:
        clause, params = "PartitionKey eq @p and requestId eq @r", {"p": pipeline, "r": request_id}

    def look() -> Look:
        try:
            records = runs.query(clause, params)
        except ResourceNotFoundError:
            records = []
        return Look(records={r["RowKey"]: r for r in records if not r.get("supersededBy")})

    return look


def watch(look: Callable[[], Look], timeout: float | None, bar, sleep=time.sleep, clock=time.monotonic) -> Look:
    """Look until done or `timeout`; the interval grows from 0.5 s to 5 s. `bar` gets done/total and the counts."""
    t0 = clock()
    interval = FIRST_INTERVAL
    while True:
        seen = look()
        detail = "  ".join(f"{state} {n}" for state, n in sorted(seen.counts().items()))
        bar.update(seen.ended, seen.total or None, detail)
        if seen.done:
            return seen
        left = None if timeout is None else timeout - (clock() - t0)
        if left is not None and left <= 0:
            return seen
        sleep(interval if left is None else min(interval, left))
        interval = min(interval * GROWTH, MAX_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    try:
        args = p.parse_intermixed_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as exc:
        return EXIT_ERROR if exc.code else 0  # usage errors are 3 here: 2 means "timed out"
    ui.configure(no_color=args.no_color)
    if bool(args.runs) == bool(args.request):
        ui.error("wait", "name the runs to wait for (RUN...) or one request (--request ID), not both")
        return EXIT_ERROR
    if args.timeout is not None and args.timeout < 0:
        ui.error("wait", f"--timeout {args.timeout:g}: must be 0 or more seconds")
        return EXIT_ERROR
    try:
        access = AppAccess.from_args(args, needs_batch=False)
        if args.pipeline and args.pipeline not in access.config.pipelines:
            ui.error("wait", f"unknown pipeline {args.pipeline!r}; known: {', '.join(sorted(access.config.pipelines))}")
            return EXIT_ERROR
        look = (request_looker(access.runs, args.request, args.pipeline) if args.request
                else runs_looker(access.runs, args.runs, args.pipeline))
        what = f"request {args.request}" if args.request else f"{len(set(args.runs))} run(s)"
        stream = sys.stderr if args.json else sys.stdout
        with ui.progress(f"waiting for {what}", unit="runs", stream=stream) as bar:
            seen = watch(look, args.timeout, bar)
    except AccessError as exc:
        ui.error("wait", str(exc))
        return EXIT_ERROR
    except AzureError as exc:
        ui.error("wait", f"cannot read the runs table ({type(exc).__name__}: {str(exc).splitlines()[0]})")
        return EXIT_ERROR
    code = seen.exit_code()
    rows = [runs_view.to_row(r) for r in seen.records.values()]
    if args.json:
        ui.print_json({"done": seen.done, "timedOut": code == EXIT_TIMEOUT, "exitCode": code,
                       "counts": seen.counts(), "notSeen": seen.missing,
                       "runs": [{**row.as_json(), "attempt": rec.get("attempt"), "retryOf": rec.get("retryOf")}
                                for row, rec in zip(rows, seen.records.values(), strict=True)]})
        return code
    if rows:
        runs_view.show(runs_view.sort_rows(rows))
    verdict = {EXIT_SUCCEEDED: f"all {seen.total} run(s) succeeded",
               EXIT_FAILED: f"ended, not all succeeded: {seen.total - _count(seen, 'succeeded')} of {seen.total} "
                            "did not (eventbatch logs RUN)",
               EXIT_TIMEOUT: f"timed out after {args.timeout:g}s with {seen.total - seen.ended} of "
                             f"{seen.total or '?'} run(s) still open" +
                             (f" ({len(seen.missing)} not recorded yet)" if seen.missing else "") +
                             ("; no runs of this request recorded yet" if args.request and not seen.total else "")}
    print(f"\n{verdict[code]}")
    return code


def _count(seen: Look, state: str) -> int:
    return sum(r.get("state") == state for r in seen.records.values())


if __name__ == "__main__":
    sys.exit(main())
