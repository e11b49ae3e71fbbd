"""`eventbatch metrics`: the app's metrics from its run records, locally or on Azure, with no collector.

    eventbatch metrics [--pipeline P] [--since 1h | 30m | 2d | ISO-TIME] [--top N] [--json] [--settings F | --env]

Per pipeline: runs by state, queue wait (received -> started), submit wait (received -> submitted), submit latency
(the bulk add that submitted a run), task duration (Batch's start -> end) as p50 / p95 / max, throughput (runs that
ended per minute over the window) and the most frequent failure reasons. The figures are shared.run_metrics'; the
app sends the same ones to Application Insights (shared.telemetry).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TextIO

from azure.core.exceptions import (
    ResourceNotFoundError,
)

from devstack.tools import runs_view, ui
from devstack.tools.access import SERVICE_ERRORS, AppAccess, failure_message, normalize_argv
from devstack.tools.commands import _common
from shared.records import TERMINAL, RunStore, is_hidden
from shared.run_metrics import TOP_REASONS, summarize

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
LATENCIES = (("queueWait", "queue wait"), ("submitWait", "submit wait"), ("submitLatency", "submit latency"),
             ("taskDuration", "task duration"))


def parse_since(text: str, now: datetime) -> datetime:
    """`1h`, `30m`, `2d`, `90s` before `now`, or an ISO 8601 time (UTC when it names no zone)."""
    value = text.strip()
    match = _AGO.match(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a span like 1h, 30m, 2d nor an ISO 8601 time such "
                                         "as 2026-12-04T09:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch metrics",
                                description="Runs by state, waits, submit latency, task duration, throughput and "
                                            "failure reasons, computed from the run records.")
    p.add_argument("--pipeline", help="only this pipeline")
    p.add_argument("--since", default="1h", metavar="SPAN|TIME",
                   help="the window: runs with activity since then, and every run still under way (1h, 30m, 2d, "
                        "an ISO 8601 time, or `all`; default 1h)")
    p.add_argument("--top", type=int, default=TOP_REASONS, metavar="N",
                   help=f"failure reasons to show per pipeline (default {TOP_REASONS})")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    _common(p)
    return p


def read_records(runs: RunStore, since: datetime | None, pipeline: str | None) -> list[dict]:
    """The run records that may fall in the window (changed since `since`, or not finished), filtered by the
    table service; shared.run_metrics decides exactly."""
    clauses, params = [], {}
    if since is not None:
        params["t"] = since
        open_states = " and ".join(f"state ne @s{i}" for i in range(len(TERMINAL)))
        params.update({f"s{i}": s for i, s in enumerate(TERMINAL)})
        clauses.append(f"( Timestamp ge @t or ( {open_states} ) )")  # spaces: the SDK splits the filter on them
    if pipeline:
        clauses.append("PartitionKey eq @p")
        params["p"] = pipeline
    if not clauses:
        return [dict(e) for e in runs.table.list_entities() if not is_hidden(e.get("RowKey", ""))]
    return runs.query(" and ".join(clauses), params)


def parser(name: str = "metrics") -> argparse.ArgumentParser:
    """The command's parser (for `devstack.cli`'s completion)."""
    return build_parser()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    now = datetime.now(UTC)
    try:
        since = None if args.since.strip().lower() == "all" else parse_since(args.since, now)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--since: {exc}")
    try:
        access = AppAccess.from_args(args, needs_batch=False)
        if args.pipeline and args.pipeline not in access.config.pipelines:
            ui.error("metrics", f"unknown pipeline {args.pipeline!r}; known: "
                                f"{', '.join(sorted(access.config.pipelines))}")
            return 2
        try:
            records = read_records(access.runs, since, args.pipeline)
        except ResourceNotFoundError:
            records = []  # no runs table yet: the app has not run
    except SERVICE_ERRORS as exc:
        ui.error("metrics", failure_message(exc))
        return 1
    figures = summarize(records, now, since, args.pipeline, max(0, args.top))
    if args.json:
        ui.print_json(figures)
    else:
        show(figures)
    return 0



# ---- plain text --------------------------------------------------------------------------------------------
def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)}m{int(rest):02d}s" if minutes < 60 else f"{int(minutes // 60)}h{int(minutes % 60):02d}m"


def render(figures: dict) -> str:
    """The report as plain text (what a pipe or a file gets)."""
    out = io.StringIO()
    show(figures, out)
    return out.getvalue().rstrip("\n")


def show(figures: dict, stream: TextIO | None = None) -> None:
    """The figures as a person reads them: a table with a row per pipeline (fitted to the terminal, plain off
    one), then each pipeline's latencies and failure reasons."""
    stream = stream or sys.stdout
    window = (f"since {figures['since']} ({figures['windowMinutes']:g} min)" if figures.get("since")
              else "no runs recorded")
    pipelines = figures["pipelines"]
    print(f"runs {window}, until {figures['until']}", file=stream)
    if not pipelines:
        print("\nno runs in this window: widen it with --since 1d (or --since all), or submit work with "
              "`eventbatch submit PIPELINE FILE...`", file=stream)
        return
    total = figures["total"]
    states = [s for s, n in total["states"].items() if n or s in ("succeeded", "failed")]
    columns = [ui.Column("PIPELINE", shrink=False), ui.Column("RUNS", shrink=False),
               *(ui.Column(s.upper(), shrink=False) for s in states), ui.Column("ENDED/MIN", shrink=False)]
    body = [[name, str(f["runs"]), *(str(f["states"].get(s, 0)) for s in states),
             _rate(f["throughput"]["perMinute"])] for name, f in pipelines.items()]
    if len(pipelines) > 1:
        body.append(["(all)", str(total["runs"]), *(str(total["states"].get(s, 0)) for s in states),
                     _rate(total["throughput"]["perMinute"])])
    print(file=stream)
    ui.table(columns, body, wide=True, stream=stream)
    lines = []
    for name, f in pipelines.items():
        lines += ["", f"{name}:"]
        for key, label in LATENCIES:
            s = f[key]
            if s["count"]:
                lines.append(f"  {label:<15} p50 {seconds(s['p50']):>7}  p95 {seconds(s['p95']):>7}  "
                             f"max {seconds(s['max']):>7}  ({s['count']} run{'s' if s['count'] != 1 else ''})")
        if f["superseded"]:
            lines.append(f"  {f['superseded']} run(s) retried (superseded by a newer attempt)")
        for reason in f["failureReasons"]:
            example = runs_view.printable(reason["example"], 80)
            lines.append(f"  {reason['count']:>5} x {reason['state']} {runs_view.printable(reason['code'])}"
                         + (f": {example}" if reason["example"] else ""))
    print("\n".join(lines), file=stream)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
