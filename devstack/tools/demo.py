"""`eventbatch demo` (`make demo`): the sample work end to end on the local stack, with a verdict.

1. starts the stack with the Functions host (reusing what runs);
2. checks the pipelines' images (`eventbatch images check`: WORKDIR, ENTRYPOINT, /bin/sh... against the rules in
   shared/image_rules.py) and stops before any work when a rule fails;
3. makes sure the sample pool exists: built by the app's own pool code (shared.pool_spec) from pipelines.yaml, its
   nodes prefetch the worker image from the local private registry;
4. uploads samples/inputs/transform/* under the transform pipeline's input prefix (blob trigger, one run each),
   samples/inputs/greet/* to greet (ENTRYPOINT mode: an empty commandLine runs the hello image's ENTRYPOINT) and
   sends one fan-out request with samples/inputs/wordcount/* to wordcount (one run each plus a merge);
5. shows the runs per state while the work runs, then the results table and where the outputs are;
6. checks the results against the inputs (upper-cased text, the greeting, the merged word total) and exits 0 only
   if every run succeeded and every check passed.

Each demo uses a fresh folder `demo-<UTC time>-<random>` under the input prefix and as the request's idempotency
key, so a re-run makes new runs (new run ids) instead of finding the previous ones.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from devstack.common import paths
from devstack.stack import lifecycle
from devstack.tools import runs_view, ui
from devstack.tools.access import AccessError, AppAccess, batch_client, ensure_pool
from devstack.tools.image_check import check_for_demo
from devstack.tools.submit import SentRequest, SubmitError, Uploaded, send_request, upload_inputs
from shared.records import STATES, TERMINAL

SAMPLES = paths.REPO_ROOT / "samples" / "inputs"
TRANSFORM, WORDCOUNT, GREET = "transform", "wordcount", "greet"
TAG = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a blob folder and a request idempotency key


@dataclass
class DemoRuns:
    """The runs this demo caused: run id -> (pipeline, what it processes)."""

    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    uploads: list[Uploaded] = field(default_factory=list)
    greetings: list[Uploaded] = field(default_factory=list)
    request: SentRequest | None = None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch demo", description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=150.0,
                   help="seconds to wait for the runs to finish (default 150)")
    p.add_argument("--no-up", action="store_true", help="do not start the stack; use the one running")
    p.add_argument("--tag", help="demo folder / idempotency key (default: demo-<UTC time>-<random>)")
    p.add_argument("--json", action="store_true",
                   help="print the results (verdict, runs, problems) as JSON on stdout; the steps go to stderr")
    p.add_argument("--no-color", action="store_true", help="no colour (also: the NO_COLOR environment variable)")
    return p


def parser(name: str = "demo") -> argparse.ArgumentParser:
    """The command's parser (for `devstack.cli`'s completion)."""
    return build_parser()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    ui.configure(no_color=args.no_color)
    out = sys.stderr if args.json else sys.stdout
    say = _printer(out)
    if args.tag is not None and not TAG.match(args.tag):
        say(f"eventbatch demo: --tag {args.tag!r}: use 1-64 letters, digits, '.', '_' or '-'")
        return 2
    try:
        return run_demo(args, started, say)
    except (AccessError, SubmitError) as exc:
        say(f"\ndemo failed: {exc}")
        return 1
    except (HttpResponseError, ServiceRequestError) as exc:
        say(f"\ndemo failed: a service call failed: {str(exc).splitlines()[0]}\n(logs: {paths.logs_dir()}; "
            "`eventbatch down && eventbatch up` restarts the stack)")
        return 1


def _printer(stream) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def run_demo(args, started: float, say) -> int:
    if not args.no_up:
        say("== 1. local stack (Azurite, registry, Batch emulator, Functions host)")
        lifecycle.up(with_host=True, log=say)
    access = AppAccess.open()
    tag = args.tag or f"demo-{datetime.now(UTC):%Y%m%dt%H%M%S}-{secrets.token_hex(2)}"

    say("\n== 2. image check (eventbatch images check)")
    if not check_for_demo(access.settings.environ, access.settings.pipelines_file, say):
        say("\ndemo FAILED: an image check failed (above); no work was submitted. Fix pipelines.yaml or the image "
            "and run `eventbatch images check` again.")
        return 1

    say("\n== 3. sample pool")
    prepare_pools(access, [access.config.pipelines[p].pool for p in (TRANSFORM, WORDCOUNT, GREET)
                           if p in access.config.pipelines], say)

    say(f"\n== 4. sample inputs (demo folder {tag})")
    demo = submit_samples(access, tag, say)

    say(f"\n== 5. progress ({len(demo.runs)} runs)")
    out = sys.stderr if args.json else sys.stdout
    rows = watch(access, demo, args.timeout, say, stream=out)

    say("\n== 6. results")
    runs_view.show(rows, stream=out)
    problems = check_results(access, demo, rows, say)
    elapsed = time.monotonic() - started
    ok = not problems
    say("")
    if ok:
        say(f"demo passed in {elapsed:.0f}s: all {len(rows)} runs succeeded and the outputs match the inputs.")
    else:
        say(f"demo FAILED after {elapsed:.0f}s:")
        for p in problems:
            say(f"  - {p}")
    say("next: `eventbatch status` (all runs), `eventbatch logs RUN` (a run's stdout/stderr), "
        "`eventbatch submit transform FILE...`, `make down` (stop the stack)")
    if args.json:
        ui.print_json({"passed": ok, "elapsedSeconds": round(elapsed, 1), "tag": tag,
                       "request": demo.request.request_id if demo.request else None, "problems": problems,
                       "runs": [r.as_json() for r in rows]})
    return 0 if ok else 1


# ---- 3. pool -----------------------------------------------------------------------------------------------
def prepare_pools(access: AppAccess, pool_ids: list[str], say, timeout: float = 90.0) -> None:
    """Create these pools (if missing) and wait until each has a node that can take tasks."""
    client = batch_client(access)
    for pool_id in dict.fromkeys(pool_ids):
        pool = access.config.pools[pool_id]
        what = ensure_pool(access, pool_id, client)
        images = ", ".join(pool.images)
        scale = (f"fixed, {pool.scale.dedicated_nodes} node(s)" if pool.scale.mode == "fixed"
                 else f"autoscale, up to {pool.scale.max_dedicated_nodes} dedicated node(s)")
        say(f"pool {pool_id}: {what} ({scale}; prefetching {images})")
        t0 = time.monotonic()
        states: list[str] = []
        while time.monotonic() - t0 < timeout:
            states = [str(getattr(n.state, "value", n.state)) for n in client.list_nodes(pool_id, select=["id", "state"])]
            if any(s in ("idle", "running") for s in states):
                break
            bad = [s for s in states if s in ("starttaskfailed", "unusable")]
            if bad:
                raise AccessError(f"pool {pool_id}: node(s) {', '.join(bad)}; see .devstack/logs/batch-emulator.log")
            time.sleep(0.3)
        else:
            say(f"pool {pool_id}: no node ready after {timeout:.0f}s (nodes: {', '.join(states) or 'none'}); "
                "continuing, the tasks wait for nodes")
            continue
        ready = sum(s in ("idle", "running") for s in states)
        say(f"pool {pool_id}: {ready} node(s) ready after {time.monotonic() - t0:.1f}s, image prefetched")


# ---- 4. inputs ---------------------------------------------------------------------------------------------
def sample_files(pipeline: str) -> list[Path]:
    files = sorted(p for p in (SAMPLES / pipeline).iterdir() if p.is_file())
    if not files:
        raise SubmitError(f"no sample inputs in {SAMPLES / pipeline}")
    return files


def submit_samples(access: AppAccess, tag: str, say) -> DemoRuns:
    demo = DemoRuns()
    transform = access.config.pipeline(TRANSFORM)
    wordcount = access.config.pipeline(WORDCOUNT)
    if transform is None or wordcount is None:
        raise SubmitError(f"pipelines.yaml must declare the sample pipelines {TRANSFORM} and {WORDCOUNT}")
    demo.uploads = upload_inputs(access, transform, sample_files(TRANSFORM), tag)
    policy = transform.blob_input
    say(f"uploaded {len(demo.uploads)} file(s) to {policy.container}/{policy.prefix}{tag}/ "
        f"-> {len(demo.uploads)} {TRANSFORM} run(s) via the blob trigger")
    for u in demo.uploads:
        demo.runs[u.run_id] = (TRANSFORM, u.name)
    greet = access.config.pipeline(GREET)
    if greet is not None:
        demo.greetings = upload_inputs(access, greet, sample_files(GREET), tag)
        say(f"uploaded {len(demo.greetings)} file(s) to {greet.blob_input.container}/{greet.blob_input.prefix}{tag}/ "
            f"-> {len(demo.greetings)} {GREET} run(s) in ENTRYPOINT mode (empty commandLine, {greet.image})")
        for u in demo.greetings:
            demo.runs[u.run_id] = (GREET, u.name)
    demo.request = send_request(access, wordcount, sample_files(WORDCOUNT), [], tag, tag)
    say(f"uploaded {len(demo.request.uploaded)} file(s) to uploads/{WORDCOUNT}/{tag}/ and sent one request "
        f"(request id {demo.request.request_id}) -> {len(demo.request.runs) - 1} {WORDCOUNT} run(s) + a merge")
    for run_id, name in demo.request.runs:
        demo.runs[run_id] = (WORDCOUNT, name)
    return demo


# ---- 5. progress -------------------------------------------------------------------------------------------
def fetch(access: AppAccess, demo: DemoRuns) -> list[runs_view.RunRow]:
    rows: list[runs_view.RunRow] = []
    for pipeline in (TRANSFORM, WORDCOUNT, GREET):
        wanted = [r for r, (p, _) in demo.runs.items() if p == pipeline]
        try:
            rows += runs_view.query_runs(access.runs, pipeline=pipeline, run_ids=wanted)
        except ResourceNotFoundError:
            pass  # the runs table appears with the first record
    return rows


def progress_detail(rows: list[runs_view.RunRow], expected: int) -> str:
    """The counts per state (and the runs not recorded yet) for the progress bar."""
    c = runs_view.counts(rows)
    pending = expected - len(rows)
    parts = [f"{s} {c[s]}" for s in STATES if c[s] or s in ("running", "succeeded")]
    if pending:
        parts.insert(0, f"not yet seen {pending}")
    return "  ".join(parts)


def watch(access: AppAccess, demo: DemoRuns, timeout: float, say, interval: float = 0.5,
          stream=None) -> list[runs_view.RunRow]:
    """Poll the runs table until every demo run is terminal (or the timeout); a progress bar with the counts."""
    t0 = time.monotonic()
    rows: list[runs_view.RunRow] = []
    with ui.progress("runs ended", total=len(demo.runs), unit="runs", stream=stream) as bar:
        while True:
            rows = fetch(access, demo)
            done = len(rows) == len(demo.runs) and all(r.state in TERMINAL for r in rows)
            bar.update(sum(r.state in TERMINAL for r in rows), detail=progress_detail(rows, len(demo.runs)))
            if done or time.monotonic() - t0 > timeout:
                break
            time.sleep(interval)
    if not done:
        say(f"timed out after {timeout:.0f}s with runs still open; the host log is .devstack/logs/func-host.log")
    return rows


# ---- 6. checks ---------------------------------------------------------------------------------------------
def _read(access: AppAccess, container: str, name: str) -> bytes | None:
    try:
        return access.storage.blob.get_blob_client(container, name).download_blob().readall()
    except ResourceNotFoundError:
        return None


def check_results(access: AppAccess, demo: DemoRuns, rows: list[runs_view.RunRow], say) -> list[str]:
    problems = []
    by_id = {r.run_id: r for r in rows}
    for run_id, (pipeline, name) in demo.runs.items():
        row = by_id.get(run_id)
        if row is None:
            problems.append(f"{pipeline} run {run_id} ({name}) never appeared in the runs table")
        elif row.state != "succeeded":
            problems.append(f"{pipeline} run {run_id} ({runs_view.printable(name)}) is {row.state}"
                            f"{': ' + row.reason if row.reason else ''} (eventbatch logs {run_id})")
    say("\noutputs:")
    problems += _check_transform(access, demo, by_id, say)
    problems += _check_wordcount(access, demo, by_id, say)
    problems += _check_greet(access, demo, by_id, say)
    return problems


def _check_greet(access: AppAccess, demo: DemoRuns, by_id: dict, say) -> list[str]:
    """The ENTRYPOINT ran (no commandLine) and read its input through the relative INPUT_PATH."""
    problems = []
    for u in demo.greetings:
        row = by_id.get(u.run_id)
        if row is None or row.state != "succeeded":
            continue
        lines = (SAMPLES / GREET / Path(u.name).name).read_bytes().count(b"\n")
        expected = f"hello from the entrypoint: {lines} line(s) in {u.name}\n".encode()
        name = f"{row.output_prefix}/greeting.txt"
        got = _read(access, row.output_container, name)
        if got != expected:
            problems.append(f"{GREET}: {row.output_container}/{name} is {got!r}, expected {expected!r}")
        else:
            say(f"  {GREET}: {runs_view.printable(u.name)} -> {row.output_container}/"
                f"{runs_view.printable(row.output_prefix)}/greeting.txt (written by the image's ENTRYPOINT)")
    return problems


def _check_transform(access: AppAccess, demo: DemoRuns, by_id: dict, say) -> list[str]:
    problems = []
    for u in demo.uploads:
        row = by_id.get(u.run_id)
        if row is None or row.state != "succeeded":
            continue
        result = _read(access, row.output_container, f"{row.output_prefix}/result.txt")
        original = (SAMPLES / TRANSFORM / Path(u.name).name).read_bytes()
        if result is None:
            problems.append(f"{TRANSFORM}: {row.output_container}/{row.output_prefix}/result.txt is missing")
        elif result != original.upper():
            problems.append(f"{TRANSFORM}: {row.output_container}/{row.output_prefix}/result.txt is not the "
                            "upper-cased input")
        else:
            say(f"  {TRANSFORM}: {runs_view.printable(u.name)} -> {row.output_container}/"
                f"{runs_view.printable(row.output_prefix)}/ (result.txt upper-cased, summary.json, manifest.json)")
    return problems


def _check_wordcount(access: AppAccess, demo: DemoRuns, by_id: dict, say) -> list[str]:
    request = demo.request
    merge = by_id.get(request.merge_run) if request and request.merge_run else None
    if merge is None or merge.state != "succeeded":
        return []  # already reported as a run that did not succeed
    expected = sum(len(p.read_bytes().split()) for p in sample_files(WORDCOUNT))
    name = f"{merge.output_prefix}/total.json"
    raw = _read(access, merge.output_container, name)
    try:
        total = json.loads(raw) if raw is not None else None
    except ValueError:
        total = None
    if not isinstance(total, dict):
        return [f"{WORDCOUNT}: merged total {merge.output_container}/{name} is missing or not JSON"]
    say(f"  {WORDCOUNT}: per-file counts under {merge.output_container}/{WORDCOUNT}/{request.request_id}/, "
        f"merged total {merge.output_container}/{name}: {total.get('words')} words in {total.get('files')} files "
        f"(expected {expected} in {len(request.inputs)})")
    if total.get("words") != expected or total.get("files") != len(request.inputs):
        return [f"{WORDCOUNT}: merged total is {total}, expected {expected} words in {len(request.inputs)} files"]
    return []


if __name__ == "__main__":
    sys.exit(main())
