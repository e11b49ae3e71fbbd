"""The vocabulary of cancel and retry (shared.control): which runs (Selection, select), and what became of each
(RunAction, ControlReport), as the CLI prints it and a control message's log line tells it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from shared.app_context import AppContext
from shared.records import is_current

log = logging.getLogger("eventbatch.control")


class ControlError(ValueError):
    """The selection cannot be acted on (no selector, two selectors, an unknown pipeline or state)."""


@dataclass(frozen=True)
class Selection:
    """Which runs: run ids (or unique prefixes), a request, or a pipeline's runs in one state."""

    runs: tuple[str, ...] = ()
    request: str | None = None
    pipeline: str | None = None
    state: str | None = None

    def check(self, ctx: AppContext, states: Iterable[str]) -> None:
        chosen = [bool(self.runs), bool(self.request), bool(self.state)]
        if sum(chosen) != 1:
            raise ControlError("name the runs (RUN...), or a request (--request ID), or a pipeline's runs in a state "
                               "(--pipeline P --state S): exactly one of them")
        if self.state and not self.pipeline:
            raise ControlError("--state needs --pipeline: which pipeline's runs?")
        if self.pipeline and ctx.config.pipeline(self.pipeline) is None:
            raise ControlError(f"unknown pipeline {self.pipeline!r}; known: {', '.join(sorted(ctx.config.pipelines))}")
        if self.state and self.state not in states:
            raise ControlError(f"state {self.state!r} cannot be selected here; use one of {', '.join(states)}")


@dataclass(frozen=True)
class RunAction:
    """What became of one run: outcome cancelled | retried | pending | unchanged | left | refused | not-found |
    error, and a sentence for a person."""

    run_id: str
    pipeline: str | None
    outcome: str
    detail: str
    new_run_id: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class ControlReport:
    action: str  # cancel | retry
    by: str
    results: list[RunAction] = field(default_factory=list)

    def add(self, result: RunAction) -> None:
        self.results.append(result)
        log.info("%s %s: %s (%s)", self.action, result.run_id, result.outcome, result.detail)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.outcome] = out.get(r.outcome, 0) + 1
        return out

    @property
    def pending(self) -> list[RunAction]:
        return [r for r in self.results if r.outcome == "pending"]

    def as_json(self) -> dict:
        return {"action": self.action, "by": self.by, "counts": self.counts(),
                "runs": [r.as_json() for r in self.results]}


# ---- selection -------------------------------------------------------------------------------------------------
def select(ctx: AppContext, selection: Selection, report: ControlReport) -> list[dict]:
    """The records selected (run ids: exactly those, or a unique prefix; a request or pipeline+state: its current
    attempts only). Ids that match nothing, or more than one run, are reported, not guessed."""
    where, params = ("PartitionKey eq @p and ", {"p": selection.pipeline}) if selection.pipeline else ("", {})
    if selection.request:
        rows = ctx.runs.query(where + "requestId eq @r", {**params, "r": selection.request})
        if not rows:
            report.add(RunAction(selection.request, selection.pipeline, "not-found",
                                 f"no runs of request {selection.request!r}; list runs with `eventbatch status`"))
        return ordered(r for r in rows if is_current(r))
    if selection.state:
        return ordered(r for r in ctx.runs.query(where + "state eq @s", {**params, "s": selection.state})
                        if is_current(r))
    found: dict[tuple[str, str], dict] = {}
    for run_id in dict.fromkeys(selection.runs):
        rows = ctx.runs.query(where + "RowKey eq @r", {**params, "r": run_id}) or \
            ctx.runs.query(where + "RowKey ge @a and RowKey lt @b", {**params, "a": run_id, "b": run_id + "\uffff"})
        if len(rows) == 1:
            found[(rows[0]["PartitionKey"], rows[0]["RowKey"])] = rows[0]
        elif not rows:
            report.add(RunAction(run_id, selection.pipeline, "not-found",
                                 f"no run {run_id!r}; list runs with `eventbatch status`"))
        else:
            shown = ", ".join(r["RowKey"] for r in rows[:3])
            report.add(RunAction(run_id, selection.pipeline, "not-found",
                                 f"{run_id!r} matches {len(rows)} runs ({shown}, ...): give more of the id"))
    return list(found.values())


def ordered(records: Iterable[dict]) -> list[dict]:
    """Fan-out runs before the merge and barrier tasks that wait for them."""
    return sorted(records, key=lambda r: (r.get("kind") in ("merge", "barrier"), r.get("receivedAt") or "",
                                          r["RowKey"]))
