"""`eventbatch cancel | retry`: stop runs, or run failed and cancelled ones again, locally or on Azure.

    eventbatch cancel RUN... | --request ID | --pipeline P --state S   [--reason TEXT] [--by WHO] [--json]
    eventbatch retry RUN... | --request ID --failed | --pipeline P --state failed|cancelled  [--force] [--by WHO]
        [--json]

Both call shared.control (cancel_runs, retry_runs), the code the app's control-queue function runs, with a
context built from the app's settings (`--settings FILE`, `--env`: see devstack.tools.access). Who asks is
recorded (`cancelledBy`, `retriedBy`): `--by`, else the signed-in principal on Azure (the token's user name or
object id), else the local OS user. Exit code 0 when every selected run is in the state asked for (or ended
before and was left alone), 1 when a run was not found, refused, or is still waiting for Batch.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json

from devstack.tools import runs_view, ui
from devstack.tools.access import SERVICE_ERRORS, AppAccess, failure_message, normalize_argv
from devstack.tools.commands import _common
from shared.context import create_context
from shared.control import cancel_runs, retry_runs
from shared.run_actions import ControlError, ControlReport, Selection

FAILING = ("not-found", "error", "refused", "pending")


def _parser(command: str) -> argparse.ArgumentParser:
    if command == "cancel":
        p = argparse.ArgumentParser(prog="eventbatch cancel", description="Cancel runs: terminate their Batch tasks, "
                                    "record them cancelled (who, when, why) and send their failure messages.")
        p.add_argument("--state", choices=("received", "submitted", "running"),
                       help="with --pipeline: every run of the pipeline in this state")
        p.add_argument("--reason", help="why, recorded on the runs and sent in their messages")
    else:
        p = argparse.ArgumentParser(prog="eventbatch retry", description="Run failed or cancelled runs again as new "
                                    "attempts (a new run id, its own output folder); the old runs are kept.")
        p.add_argument("--failed", action="store_true", help="with --request: its failed and cancelled runs")
        p.add_argument("--state", choices=("failed", "cancelled"),
                       help="with --pipeline: every current run of the pipeline in this state")
        p.add_argument("--force", action="store_true", help="also run succeeded runs again")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes), as `eventbatch status` shows")
    p.add_argument("--request", metavar="ID", help="the runs of this request id")
    p.add_argument("--pipeline", metavar="P", help="only runs of this pipeline")
    p.add_argument("--by", metavar="WHO", help="who asks (default: the signed-in principal, or the OS user)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _common(p)
    return p


def parser(name: str) -> argparse.ArgumentParser:
    """The parser of `eventbatch cancel` or `eventbatch retry` (for completion)."""
    return _parser(name)


def cancel(argv: list[str]) -> int:
    return run("cancel", argv)


def retry(argv: list[str]) -> int:
    return run("retry", argv)


def run(command: str, argv: list[str]) -> int:
    args = _parser(command).parse_intermixed_args(normalize_argv(argv))
    ui.configure(no_color=args.no_color)
    if command == "retry" and args.request and not (args.failed or args.force):
        ui.error("retry", "--request needs --failed (its failed and cancelled runs) or --force (every run, "
                          "succeeded ones too)")
        return 2
    selection = Selection(runs=tuple(args.runs), request=args.request, pipeline=args.pipeline,
                          state=args.state)
    try:
        access = AppAccess.from_args(args)
        ctx = create_context(access.settings, ensure_resources=False)
        by = args.by or who(access)
        if command == "cancel":
            report = cancel_runs(ctx, selection, by, args.reason)
        else:
            report = retry_runs(ctx, selection, by, force=args.force)
    except ControlError as exc:
        ui.error(command, str(exc))
        return 2
    except SERVICE_ERRORS as exc:
        ui.error(command, failure_message(exc))
        return 1
    print_report(report, args.json)
    return 1 if any(r.outcome in FAILING for r in report.results) else 0


REPORT_COLUMNS = (ui.Column("OUTCOME", shrink=False, style_by_value={"cancelled": "yellow", "retried": "green",
                                                                      "refused": "red", "error": "red",
                                                                      "not-found": "red", "pending": "cyan"}),
                  ui.Column("RUN", shrink=False), ui.Column("DETAIL"))


def print_report(report: ControlReport, as_json: bool) -> None:
    if as_json:
        ui.print_json(report.as_json())
        return
    if not report.results:
        print(f"nothing to {report.action}: no run matched")
        return
    rows = [[r.outcome, runs_view.printable(r.run_id) + (f" -> {r.new_run_id}" if r.new_run_id
                                                          and r.new_run_id != r.run_id else ""),
             runs_view.printable(r.detail)] for r in report.results]
    ui.table(REPORT_COLUMNS, rows)
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts().items())
    print(f"\n{counts} (by {runs_view.printable(report.by)}); follow with: eventbatch status")


def who(access: AppAccess) -> str:
    """The principal to record: on Azure (identity settings) the signed-in user or identity, else the OS user."""
    if not access.settings.storage.uses_identity:
        return getpass.getuser()
    from azure.identity import DefaultAzureCredential  # Azure only: the local stack never loads it

    token = DefaultAzureCredential().get_token("https://storage.azure.com/.default").token
    return principal_of(token) or getpass.getuser()


def principal_of(token: str) -> str | None:
    """The user name (or object id) in a Microsoft Entra access token's claims; the signature is not checked,
    the name is only recorded."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username") or claims.get("oid")
