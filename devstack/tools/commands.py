"""`eventbatch status | submit | logs`: use and watch the app from a terminal, locally or on Azure.

    eventbatch status [--pipeline P] [--state S] [--limit N] [--json] [--wide]
    eventbatch submit PIPELINE FILE... [--prefix SUB]                      (blob intake: upload)
    eventbatch submit PIPELINE --request [FILE...] [--inputs C/NAME ...] [--idempotency-key K]   (queue request)
    eventbatch logs RUN [--stdout | --stderr]
    eventbatch replay [--apply] [--dead-letter-container NAME]   (poison queues, Event Grid dead letters)

Every command reads the app's own settings (see devstack.tools.access): the local stack by default,
`--settings FILE` for another local.settings.json, `--env` for the environment (Azure: the identity settings and
DefaultAzureCredential). `devstack.cli` calls the command's own function (`status(argv)`, ...) with its arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from devstack.tools import runs_view
from devstack.tools.access import AccessError, AppAccess
from devstack.tools.submit import SubmitError, send_request, upload_inputs
from shared.context import create_context
from shared.intake import handle_blob
from shared.records import STATES
from shared.replay import Replayer

COMMANDS = ("status", "submit", "logs", "replay")


def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--settings", type=Path, metavar="FILE",
                       help="a local.settings.json to read the app settings from (default: the local stack's "
                            ".devstack/local.settings.json)")
    where.add_argument("--env", action="store_true",
                       help="read the app settings from the environment (Azure: EVENTBATCH_STORAGE__accountName, "
                            "BATCH_ACCOUNT_URL, ... with DefaultAzureCredential)")


def _status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch status",
                                description="Table of runs: input, pipeline, state, duration, exit code, outputs.")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--state", choices=STATES, help="only runs in this state")
    p.add_argument("--request", help="only runs of this request id")
    p.add_argument("--limit", type=int, default=30, help="newest N runs (default 30; 0 = all)")
    p.add_argument("--json", action="store_true", help="print the runs as JSON (all fields, nothing cut)")
    p.add_argument("--wide", action="store_true", help="do not shorten long names in the table")
    return p


def _submit_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch submit",
                                description="Upload files to a pipeline's input, or send a queue request.")
    p.add_argument("pipeline", help="pipeline name (pipelines.yaml)")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="local files to upload")
    p.add_argument("--prefix", default="", metavar="SUB",
                   help="a folder under the pipeline's input prefix to upload into (blob intake), or under the "
                        "staging location (--request)")
    p.add_argument("--request", action="store_true",
                   help="send a JSON request on the requests queue instead of relying on the blob trigger")
    p.add_argument("--inputs", nargs="+", default=[], metavar="CONTAINER/NAME",
                   help="blobs already in storage to name in the request (with --request)")
    p.add_argument("--idempotency-key", metavar="K", help="request idempotency key (with --request)")
    p.add_argument("--staging-container", default="uploads", metavar="C",
                   help="where FILEs of a --request are uploaded (default uploads; never the watched input "
                        "container)")
    return p


def _logs_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch logs",
                                description="stdout/stderr of a run (uploaded by the task when it completed).")
    p.add_argument("run", help="run id (or a unique prefix of it), as shown by `eventbatch status`")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stdout", action="store_true", help="only stdout")
    which.add_argument("--stderr", action="store_true", help="only stderr")
    return p


def _replay_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch replay",
                                description="Count (or, with --apply, move back for another try) what the host "
                                            "poisoned and what Event Grid dead-lettered: <queue>-poison queues, "
                                            "webjobs-blobtrigger-poison and the dead-letter container.")
    p.add_argument("--apply", action="store_true",
                   help="move the messages and events back (default: a dry run that only counts)")
    p.add_argument("--dead-letter-container", metavar="NAME",
                   help="the Event Grid dead-letter container (default: the DEADLETTER_CONTAINER setting, "
                        "eventgrid-deadletter)")
    return p


def build_parser(command: str) -> argparse.ArgumentParser:
    """One parser per command (not subparsers), so options and FILEs may come in any order."""
    parsers = {"status": _status_parser, "submit": _submit_parser, "logs": _logs_parser, "replay": _replay_parser}
    if command not in parsers:
        raise ValueError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    parser = parsers[command]()
    _common(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`main(["status", ...])`: the subcommand name first."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: eventbatch {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])


def status(argv: list[str]) -> int:
    return run("status", argv)


def submit(argv: list[str]) -> int:
    return run("submit", argv)


def logs(argv: list[str]) -> int:
    return run("logs", argv)


def replay(argv: list[str]) -> int:
    return run("replay", argv)


def run(command: str, argv: list[str]) -> int:
    """One command with its own arguments (`eventbatch <command> ARGS`)."""
    args = build_parser(command).parse_intermixed_args(argv)
    args.command = command
    try:
        access = AppAccess.open(args.settings, args.env)
        commands = {"status": cmd_status, "submit": cmd_submit, "logs": cmd_logs, "replay": cmd_replay}
        return commands[args.command](access, args)
    except (AccessError, SubmitError) as exc:
        print(f"eventbatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except ServiceRequestError as exc:
        print(f"eventbatch {args.command}: cannot reach storage ({str(exc).splitlines()[0]}); is the stack up? "
              "Run `make up` (or check --settings/--env)", file=sys.stderr)
        return 1
    except ClientAuthenticationError as exc:
        print(f"eventbatch {args.command}: not signed in or no access ({str(exc).splitlines()[0]}); on Azure run "
              "`az login` and check your roles on the storage account", file=sys.stderr)
        return 1
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None) or exc.status_code
        print(f"eventbatch {args.command}: storage refused the request ({code}: {str(exc).splitlines()[0]})",
              file=sys.stderr)
        return 1


# ---- status ------------------------------------------------------------------------------------------------
def cmd_status(access: AppAccess, args) -> int:
    if args.pipeline and args.pipeline not in access.config.pipelines:
        print(f"eventbatch status: unknown pipeline {args.pipeline!r}; known: "
              f"{', '.join(sorted(access.config.pipelines))}", file=sys.stderr)
        return 2
    try:
        rows = runs_view.query_runs(access.runs, pipeline=args.pipeline, state=args.state, request_id=args.request)
    except ResourceNotFoundError:
        rows = []  # no runs table yet: the app has not run
    total = len(rows)
    if args.limit > 0:
        rows = rows[: args.limit]
    if args.json:
        print(json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no runs yet" + (" matching the filters" if args.pipeline or args.state or args.request else "") +
              ": submit work with `eventbatch submit PIPELINE FILE...` or `make demo`")
        return 0
    print(runs_view.table(rows, wide=args.wide))
    shown = f"{len(rows)} of {total} runs" if total > len(rows) else f"{total} run{'s' if total != 1 else ''}"
    print(f"\n{shown} ({runs_view.summary(rows)}); logs of a run: eventbatch logs RUN")
    return 0


# ---- submit ------------------------------------------------------------------------------------------------
def cmd_submit(access: AppAccess, args) -> int:
    pipeline = access.config.pipeline(args.pipeline)
    if pipeline is None:
        raise SubmitError(f"unknown pipeline {args.pipeline!r}; known: {', '.join(sorted(access.config.pipelines))}")
    if not args.request:
        if args.inputs or args.idempotency_key:
            raise SubmitError("--inputs and --idempotency-key belong to a queue request: add --request")
        if not args.files:
            raise SubmitError("name the files to upload (or use --request --inputs CONTAINER/NAME ...)")
        uploaded = upload_inputs(access, pipeline, args.files, args.prefix)
        for u in uploaded:
            print(f"uploaded {runs_view.printable(u.container + '/' + u.name)} ({u.size} bytes) -> run {u.run_id}")
        print(f"\nthe blob trigger picks them up; follow with: eventbatch status --pipeline {pipeline.name}"
              f"\n(logs of one run: eventbatch logs {uploaded[0].run_id})")
        return 0
    sent = send_request(access, pipeline, args.files, args.inputs, args.idempotency_key, args.prefix,
                        args.staging_container)
    for u in sent.uploaded:
        print(f"uploaded {runs_view.printable(u.container + '/' + u.name)} ({u.size} bytes)")
    print(f"sent request {sent.message_id} to queue {access.settings.queues.requests}: pipeline {pipeline.name}, "
          f"{len(sent.inputs)} input(s) -> request id {sent.request_id}")
    for run_id, name in sent.runs:
        print(f"  run {run_id}  {runs_view.printable(name)}")
    print(f"\nfollow with: eventbatch status --request {sent.request_id}")
    return 0


# ---- logs --------------------------------------------------------------------------------------------------
def cmd_logs(access: AppAccess, args) -> int:
    try:
        matches = runs_view.find_run(access.runs, args.run)
    except ResourceNotFoundError:
        matches = []
    if not matches:
        print(f"eventbatch logs: no run {args.run!r}; list runs with `eventbatch status`", file=sys.stderr)
        return 1
    if len(matches) > 1:
        ids = ", ".join(m["RowKey"] for m in matches[:5])
        print(f"eventbatch logs: {args.run!r} matches {len(matches)} runs ({ids}...); give more of the id",
              file=sys.stderr)
        return 1
    record = matches[0]
    row = runs_view.to_row(record)
    if row.state == "rejected":
        print(f"run {row.run_id} was rejected, it never ran: {row.reason}")
        return 0
    if row.state not in ("succeeded", "failed"):
        print(f"run {row.run_id} is {row.state}: its logs are uploaded when the task completes "
              f"(eventbatch status --pipeline {row.pipeline})")
        return 0
    streams = ["stdout"] if args.stdout else ["stderr"] if args.stderr else ["stdout", "stderr"]
    locations = log_locations(access, record)
    missing = 0
    for stream in streams:
        container, name = locations[stream]
        try:
            data = access.storage.blob.get_blob_client(container, name).download_blob().readall()
        except ResourceNotFoundError:
            print(f"==> {stream}: not uploaded ({container}/{name} does not exist) <==", file=sys.stderr)
            missing += 1
            continue
        if len(streams) > 1:
            print(f"==> {stream} ({container}/{runs_view.printable(name)}) <==")
        text = data.decode("utf-8", "replace")
        print(text, end="" if text.endswith("\n") or not text else "\n")
    return 1 if missing == len(streams) else 0


def log_locations(access: AppAccess, record: dict) -> dict[str, tuple[str, str]]:
    """Where the task uploaded stdout/stderr: from the result manifest when there is one, else the app's layout
    (`<output prefix>/logs/std{out,err}.txt`)."""
    container = record.get("outputContainer")
    prefix = record.get("outputPrefix")
    locations = {s: (container, f"{prefix}/logs/{s}.txt") for s in ("stdout", "stderr")}
    manifest_name = record.get("manifestBlob")
    if manifest_name:
        try:
            manifest = json.loads(access.storage.blob.get_blob_client(container, manifest_name)
                                  .download_blob().readall())
            for stream, entry in (manifest.get("logs") or {}).items():
                if stream in locations and entry.get("name"):
                    locations[stream] = (entry.get("container") or container, entry["name"])
        except (ResourceNotFoundError, ValueError):
            pass
    return locations

# ---- replay ------------------------------------------------------------------------------------------------
def cmd_replay(access: AppAccess, args) -> int:
    contexts = []

    def blob_intake():
        """The app's own blob intake, run here: it records and submits the events as the function would."""
        ctx = create_context(access.settings)
        contexts.append(ctx)
        return lambda container, name: handle_blob(ctx, container, name).status

    replayer = Replayer(access.storage, access.settings, access.config, blob_intake, args.dead_letter_container)
    try:
        reports = replayer.run(apply=args.apply)
    finally:
        for ctx in contexts:
            if not ctx.batcher.wait_idle(120):
                print("eventbatch replay: some replayed blob events were still being submitted; the app's submit "
                      "queue retries them", file=sys.stderr)
    for report in reports:
        for line in report.lines:
            print(f"  {runs_view.printable(line)}")
        print(report.summary(args.apply))
        for why in report.left:
            print(f"  left: {runs_view.printable(why)}")
    total = sum(r.found for r in reports)
    if not args.apply:
        print(f"\ndry run: {total} item(s) to replay, nothing changed" +
              ("; run `eventbatch replay --apply` to move them back" if total else ""))
        return 0
    moved = sum(r.moved for r in reports)
    print(f"\nmoved back {moved} of {total} item(s); follow with: eventbatch status")
    return 1 if any(r.left for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
