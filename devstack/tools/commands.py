"""`eventbatch status | submit | logs`: use and watch the app from a terminal, locally or on Azure.

    eventbatch status [RUN] [--pipeline P] [--state S] [--request ID] [--limit N] [--json] [--wide]
    eventbatch submit PIPELINE FILE... [--prefix SUB] [--json]               (blob intake: upload)
    eventbatch submit PIPELINE --request [FILE...] [--inputs C/NAME ...] [--idempotency-key K]   (queue request)
    eventbatch logs RUN [--stdout | --stderr] [--follow] [--json]
    eventbatch replay [--apply] [--dead-letter-container NAME] [--json]   (poison queues, Event Grid dead letters)

Every command reads the app's own settings (see devstack.tools.access): the local stack by default,
`--settings FILE` for another local.settings.json, `--env` / `--env azure` for the environment, `--azd-env NAME`
for an azd environment (Azure: the identity settings and DefaultAzureCredential), and only the settings it uses
(status, submit and logs without --follow need no Batch settings). Output goes through devstack.tools.ui (tables
fitted to the terminal, plain text to a pipe, `--json` for scripts, `--no-color`). `devstack.cli` calls the
command's own function (`status(argv)`, ...) with its arguments; `parser(name)` gives its parser (completion).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from azure.core.exceptions import (
    ResourceNotFoundError,
)

from devstack.tools import links, logs_follow, runs_view, ui
from devstack.tools.access import SERVICE_ERRORS, AppAccess, add_arguments, failure_message, normalize_argv
from devstack.tools.submit import SubmitError, send_request, upload_inputs
from shared.context import create_context
from shared.intake import handle_blob
from shared.records import STATES, TERMINAL
from shared.replay import Replayer

COMMANDS = ("status", "submit", "logs", "replay")


def _common(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument("--no-color", action="store_true",
                        help="no colour (also: the NO_COLOR environment variable; never on a pipe)")


def _status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch status",
                                description="Table of runs: input, pipeline, state, duration, exit code, outputs; "
                                            "with RUN, one run in detail with links to its outputs and logs.")
    p.add_argument("run", nargs="?", metavar="RUN", help="one run (id or unique prefix): all its fields and links")
    p.add_argument("--pipeline", help="only runs of this pipeline")
    p.add_argument("--state", choices=STATES, help="only runs in this state")
    p.add_argument("--request", help="only runs of this request id")
    p.add_argument("--limit", type=int, default=30, help="newest N runs (default 30; 0 = all)")
    p.add_argument("--json", action="store_true", help="print the runs as JSON (all fields and links, nothing cut)")
    p.add_argument("--wide", action="store_true", help="do not shorten or wrap long names in the table")
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
    p.add_argument("--json", action="store_true", help="print what was uploaded/sent and the run ids as JSON")
    return p


def _logs_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch logs",
                                description="stdout/stderr of a run (uploaded by the task when it completed); "
                                            "--follow streams them from the node while the task runs.")
    p.add_argument("run", help="run id (or a unique prefix of it), as shown by `eventbatch status`")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stdout", action="store_true", help="only stdout")
    which.add_argument("--stderr", action="store_true", help="only stderr")
    p.add_argument("-f", "--follow", action="store_true",
                   help="stream stdout/stderr while the task runs (Batch task files), until it completes")
    p.add_argument("--json", action="store_true", help="print the log locations (blob URLs) and their text as JSON")
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
    p.add_argument("--json", action="store_true", help="print the report per source as JSON")
    return p


def build_parser(command: str) -> argparse.ArgumentParser:
    """One parser per command (not subparsers), so options and FILEs may come in any order."""
    parsers = {"status": _status_parser, "submit": _submit_parser, "logs": _logs_parser, "replay": _replay_parser}
    if command not in parsers:
        raise ValueError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    parser = parsers[command]()
    _common(parser)
    return parser


def parser(command: str) -> argparse.ArgumentParser:
    """The command's parser (for `devstack.cli`'s completion)."""
    return build_parser(command)


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
    args = build_parser(command).parse_intermixed_args(normalize_argv(argv))
    args.command = command
    ui.configure(no_color=args.no_color)
    # Only what the command uses: replay runs the blob intake (it submits to Batch), logs --follow reads task files.
    needs_batch = command == "replay" or (command == "logs" and args.follow)
    try:
        access = AppAccess.from_args(args, needs_batch=needs_batch)
        commands = {"status": cmd_status, "submit": cmd_submit, "logs": cmd_logs, "replay": cmd_replay}
        return commands[args.command](access, args)
    except (SubmitError, *SERVICE_ERRORS) as exc:
        ui.error(args.command, failure_message(exc))
        return 1


# ---- status ------------------------------------------------------------------------------------------------
def cmd_status(access: AppAccess, args) -> int:
    if args.pipeline and args.pipeline not in access.config.pipelines:
        ui.error("status", f"unknown pipeline {args.pipeline!r}; known: {', '.join(sorted(access.config.pipelines))}")
        return 2
    if args.run:
        record = _one_run(access, args.run, "status")
        return 1 if record is None else run_detail(access, record, args.json)
    try:
        records = runs_view.query_records(access.runs, pipeline=args.pipeline, state=args.state,
                                          request_id=args.request)
    except ResourceNotFoundError:
        records = []  # no runs table yet: the app has not run
    total = len(records)
    if args.limit > 0:
        records = records[: args.limit]
    rows = [runs_view.to_row(r) for r in records]
    if args.json:
        ui.print_json([{**row.as_json(), "links": links.run_links(access, rec)}
                       for row, rec in zip(rows, records, strict=True)])
        return 0
    if not rows:
        print("no runs yet" + (" matching the filters" if args.pipeline or args.state or args.request else "") +
              ": submit work with `eventbatch submit PIPELINE FILE...` or `make demo`")
        return 0
    runs_view.show(rows, wide=args.wide)
    shown = f"{len(rows)} of {total} runs" if total > len(rows) else f"{total} run{'s' if total != 1 else ''}"
    print(f"\n{shown} ({runs_view.summary(rows)}); one run with its links: eventbatch status RUN; "
          "its logs: eventbatch logs RUN")
    return 0


def _one_run(access: AppAccess, run: str, command: str) -> dict | None:
    """The record of run id `run` (or a unique prefix); None after saying why."""
    try:
        matches = runs_view.find_run(access.runs, run)
    except ResourceNotFoundError:
        matches = []
    if not matches:
        ui.error(command, f"no run {run!r}; list runs with `eventbatch status`")
        return None
    if len(matches) > 1:
        ids = ", ".join(m["RowKey"] for m in matches[:5])
        ui.error(command, f"{run!r} matches {len(matches)} runs ({ids}...); give more of the id")
        return None
    return matches[0]


def run_detail(access: AppAccess, record: dict, as_json: bool) -> int:
    """One run: its fields, then links a person can open (outputs, logs, manifest; the portal on Azure)."""
    row = runs_view.to_row(record)
    manifest = links.read_manifest(access, record)
    found = links.run_links(access, record, manifest)
    extra = {k: record.get(k) for k in ("jobId", "taskId", "attempt", "retryOf", "supersededBy") if record.get(k)}
    if as_json:
        ui.print_json({**row.as_json(), **extra, "links": found})
        return 0
    fields = [("run", row.run_id), ("pipeline", row.pipeline), ("state", row.state), ("kind", row.kind),
              ("input", runs_view.printable(row.input)), ("request", row.request_id or "-"),
              ("created", row.created or "-"), ("updated", row.updated or "-"),
              ("duration", "-" if row.duration_seconds is None else f"{row.duration_seconds:.1f}s"),
              ("exit code", "-" if row.exit_code is None else str(row.exit_code))]
    fields += [(k, str(v)) for k, v in extra.items()]
    if row.reason:
        fields.append(("reason", runs_view.printable(row.reason)))
    fields.append(("outputs", f"{found['outputsFolder']} ({row.output_count} file(s))" if found["outputsFolder"]
                   else "-"))
    fields += [("", u) for u in found["outputs"]]
    if found["manifest"]:
        fields.append(("manifest", found["manifest"]))
    fields += [(stream, u) for stream, u in found["logs"].items()]
    if found["portal"]:
        p = found["portal"]
        fields.append(("portal", f"{p['url']}  (job {p['jobId']}, task {p['taskId']})"))
    ui.table([ui.Column("FIELD", shrink=False), ui.Column("VALUE")], fields, wide=True)
    return 0


# ---- submit ------------------------------------------------------------------------------------------------
def cmd_submit(access: AppAccess, args) -> int:
    pipeline = access.config.pipeline(args.pipeline)
    if pipeline is None:
        raise SubmitError(f"unknown pipeline {args.pipeline!r}; known: {', '.join(sorted(access.config.pipelines))}")
    out = sys.stderr if args.json else sys.stdout  # JSON alone on stdout
    total = sum(_size(f) for f in args.files)
    if not args.request:
        if args.inputs or args.idempotency_key:
            raise SubmitError("--inputs and --idempotency-key belong to a queue request: add --request")
        if not args.files:
            raise SubmitError("name the files to upload (or use --request --inputs CONTAINER/NAME ...)")
        with ui.progress("uploading", total=total, unit="bytes", stream=out) as bar:
            uploaded = upload_inputs(access, pipeline, args.files, args.prefix,
                                     on_upload=lambda u: bar.advance(u.size))
        if args.json:
            ui.print_json({"pipeline": pipeline.name, "uploaded": [asdict(u) for u in uploaded]})
            return 0
        for u in uploaded:
            print(f"uploaded {runs_view.printable(u.container + '/' + u.name)} ({u.size} bytes) -> run {u.run_id}")
        print(f"\nthe blob trigger picks them up; follow with: eventbatch wait {' '.join(u.run_id for u in uploaded)}"
              f"\n(all runs: eventbatch status --pipeline {pipeline.name}; logs of one run: "
              f"eventbatch logs {uploaded[0].run_id})")
        return 0
    with ui.progress("uploading", total=total, unit="bytes", stream=out) as bar:
        sent = send_request(access, pipeline, args.files, args.inputs, args.idempotency_key, args.prefix,
                            args.staging_container, on_upload=lambda u: bar.advance(u.size))
    if args.json:
        ui.print_json({"pipeline": pipeline.name, "messageId": sent.message_id, "requestId": sent.request_id,
                       "queue": access.settings.queues.requests, "uploaded": [asdict(u) for u in sent.uploaded],
                       "inputs": [f"{r.container}/{r.name}" for r in sent.inputs],
                       "runs": [{"runId": run_id, "input": name} for run_id, name in sent.runs],
                       "mergeRun": sent.merge_run})
        return 0
    for u in sent.uploaded:
        print(f"uploaded {runs_view.printable(u.container + '/' + u.name)} ({u.size} bytes)")
    print(f"sent request {sent.message_id} to queue {access.settings.queues.requests}: pipeline {pipeline.name}, "
          f"{len(sent.inputs)} input(s) -> request id {sent.request_id}")
    for run_id, name in sent.runs:
        print(f"  run {run_id}  {runs_view.printable(name)}")
    print(f"\nfollow with: eventbatch wait --request {sent.request_id}   (or: eventbatch status --request "
          f"{sent.request_id})")
    return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # upload() says what is wrong with it


# ---- logs --------------------------------------------------------------------------------------------------
def cmd_logs(access: AppAccess, args) -> int:
    record = _one_run(access, args.run, "logs")
    if record is None:
        return 1
    row = runs_view.to_row(record)
    streams = ["stdout"] if args.stdout else ["stderr"] if args.stderr else ["stdout", "stderr"]
    if args.follow and row.state not in TERMINAL:
        if args.json:
            raise SubmitError("--follow streams text; use --json without --follow once the run has ended")
        return logs_follow.follow(access, record, streams, say=lambda line: print(line, file=sys.stderr,
                                                                                  flush=True))
    if row.state == "rejected":
        if args.json:
            ui.print_json({"run": row.run_id, "state": row.state, "reason": row.reason, "logs": {}})
            return 0
        print(f"run {row.run_id} was rejected, it never ran: {row.reason}")
        return 0
    if row.state not in TERMINAL or not record.get("outputPrefix"):
        if args.json:
            ui.print_json({"run": row.run_id, "state": row.state, "logs": {}})
            return 0
        print(f"run {row.run_id} is {row.state}: its logs are uploaded when the task completes; stream them now "
              f"with: eventbatch logs {row.run_id} --follow")
        return 0
    locations = links.log_locations(record, links.read_manifest(access, record))
    texts: dict[str, dict] = {}
    for stream in streams:
        container, name = locations[stream]
        blob = access.storage.blob.get_blob_client(container, name)
        try:
            data = blob.download_blob().readall()
        except ResourceNotFoundError:
            texts[stream] = {"container": container, "name": name, "url": blob.url, "text": None}
            continue
        texts[stream] = {"container": container, "name": name, "url": blob.url,
                         "text": data.decode("utf-8", "replace")}
    missing = sum(t["text"] is None for t in texts.values())
    if args.json:
        ui.print_json({"run": row.run_id, "state": row.state, "logs": texts})
        return 1 if missing == len(streams) else 0
    for stream, t in texts.items():
        if t["text"] is None:
            print(f"==> {stream}: not uploaded ({t['container']}/{t['name']} does not exist) <==", file=sys.stderr)
            continue
        if len(streams) > 1:
            print(f"==> {stream} ({t['container']}/{runs_view.printable(t['name'])}) <==")
        text = t["text"]
        print(text, end="" if text.endswith("\n") or not text else "\n")
    return 1 if missing == len(streams) else 0


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
                ui.error("replay", "some replayed blob events were still being submitted; the app's submit "
                                   "queue retries them")
    total = sum(r.found for r in reports)
    left = any(r.left for r in reports)
    if args.json:
        ui.print_json({"apply": args.apply, "found": total, "moved": sum(r.moved for r in reports),
                       "sources": [asdict(r) for r in reports]})
        return 1 if args.apply and left else 0
    for report in reports:
        for line in report.lines:
            print(f"  {runs_view.printable(line)}")
        print(report.summary(args.apply))
        for why in report.left:
            print(f"  left: {runs_view.printable(why)}")
    if not args.apply:
        print(f"\ndry run: {total} item(s) to replay, nothing changed" +
              ("; run `eventbatch replay --apply` to move them back" if total else ""))
        return 0
    moved = sum(r.moved for r in reports)
    print(f"\nmoved back {moved} of {total} item(s); follow with: eventbatch status")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
