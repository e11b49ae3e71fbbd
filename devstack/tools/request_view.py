"""`eventbatch request ID`: one request as a unit: its state, counts per state, the merge, where the outputs are,
which inputs failed and why, and whether its completion message went out.

    eventbatch request ID [--pipeline P] [--json] [--settings FILE | --env | --azd-env NAME]

The counts are summed up from the run records now (what the app writes on the request record as runs end), so the
view is right while the request is still running too. Exit code 0 when the request was found, 1 when not.
"""

from __future__ import annotations

import argparse
import sys

from azure.core.exceptions import ResourceNotFoundError

from devstack.tools import ui
from devstack.tools.access import SERVICE_ERRORS, AppAccess, failure_message, normalize_argv
from devstack.tools.commands import _common
from devstack.tools.runs_view import printable
from shared import requests
from shared.request_summary import OPEN, failure_entry, outputs_of


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch request",
                                description="A request as a unit: state, counts, merge, outputs, failed inputs.")
    p.add_argument("request_id", metavar="ID", help="the request id (`eventbatch submit --request` prints it)")
    p.add_argument("--pipeline", help="the request's pipeline (default: look in every pipeline)")
    p.add_argument("--json", action="store_true", help="print the request as JSON")
    _common(p)
    return p


def parser(name: str = "request") -> argparse.ArgumentParser:
    """The parser of `eventbatch request` (for completion)."""
    return _parser()


def describe(access, pipeline: str, request_id: str) -> dict | None:
    """The request's view (None when the pipeline has no run of it)."""
    s = requests.summary(access, pipeline, request_id)
    if not s.inputs and s.merge is None:
        return None
    row = requests.get(access, pipeline, request_id) or {}
    outputs = outputs_of(s)
    outputs.pop("prefixes")  # each run's own folder: `eventbatch status --request ID` lists them
    return {"requestId": request_id, "pipeline": pipeline, "state": s.state, "counts": s.counts,
            "outputs": outputs, "failed": [failure_entry(r) for r in s.failed],
            "message": {"sent": bool(row.get("notified")), "generation": row.get("generation"),
                        "claimedAt": row.get("notifyClaimedAt"), "sentAt": row.get("notifiedAt")}
            if row.get("generation") else None}


def _text(view: dict) -> str:
    counts = view["counts"]
    lines = [f"request {view['requestId']} (pipeline {view['pipeline']}): {view['state']}"]
    states = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total" and v)
    lines.append(f"  inputs   {counts['total']}: {states or 'none recorded yet'}")
    out = view["outputs"]
    merge = out.get("merge")
    if merge:
        how = f", partial ({merge['inputsFailed']} of {merge['inputsExpected']} inputs failed)" \
            if merge.get("partial") and merge.get("state") == "succeeded" else ""
        why = f": {merge['failure']['code']}: {merge['failure']['message']}" if merge.get("failure") else ""
        lines.append(f"  merge    {merge['runId']}: {merge['state']}{how}{why}")
        if merge.get("manifest"):
            lines.append(f"           result manifest {merge['container']}/{merge['manifest']}")
    if out.get("container"):
        lines.append(f"  outputs  {out['container']}/{out['prefix']}/")
    if view["failed"]:
        lines.append("  failed inputs:")
        for f in view["failed"]:
            lines.append(f"    {f['runId']}  {f['input']}  {f['state']} {f['code'] or ''}  {f['reason']}".rstrip())
            if f.get("stderr"):
                lines.append(f"      stderr: {f['stderr']}")
    message = view["message"]
    if message is None:
        lines.append("  completion message: not yet (the request is open)" if view["state"] == OPEN else
                     "  completion message: not recorded (the safety net sends it)")
    else:
        sent = f"sent {message['sentAt']}" if message["sent"] else f"claimed {message['claimedAt']}, not sent yet"
        lines.append(f"  completion message: generation {message['generation']}, {sent}")
    return "\n".join(printable(line) for line in lines)  # names are untrusted: no control characters reach a TTY


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(normalize_argv(list(sys.argv[1:] if argv is None else argv)))
    ui.configure(no_color=args.no_color)
    try:
        access = AppAccess.from_args(args, needs_batch=False)
        if args.pipeline and args.pipeline not in access.config.pipelines:
            ui.error("request", f"unknown pipeline {args.pipeline!r}; known: "
                                f"{', '.join(sorted(access.config.pipelines))}")
            return 2
        pipelines = [args.pipeline] if args.pipeline else sorted(access.config.pipelines)
        views = [v for v in (describe(access, p, args.request_id) for p in pipelines) if v]
    except ResourceNotFoundError:
        views = []  # no runs table yet
    except SERVICE_ERRORS as exc:
        ui.error("request", failure_message(exc))
        return 1
    if not views:
        ui.error("request", f"no runs of request {args.request_id!r}"
                            f"{' in pipeline ' + args.pipeline if args.pipeline else ''}; `eventbatch status` lists "
                            "recent runs with their request ids")
        return 1
    if args.json:
        ui.print_json(views[0] if len(views) == 1 else views)
    else:
        print("\n\n".join(_text(v) for v in views))
    return 0
