"""`eventbatch logs RUN --follow`: stream a running task's stdout/stderr from its node, then what the upload adds.

While the task runs, its `stdout.txt` / `stderr.txt` live on the compute node; Batch serves them as task files.
Each look reads a file's length (HEAD, get_task_file_properties) and, when it grew, only the new bytes
(`ocp-range: bytes=<offset>-<end>`), so a long log is never read twice. stdout goes to stdout, stderr to stderr,
as they arrive. When Batch reports the task completed, the last bytes are read; once the app has recorded the run
as ended (its completion handler uploaded the logs), the uploaded logs are compared with what was streamed and
anything they add is printed (a task retried by Batch, or a node file that was cut, leaves more in the upload).
"""

from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from devstack.tools import runs_view
from devstack.tools.access import AppAccess, batch_client
from devstack.tools.links import log_locations, read_manifest
from shared.records import TERMINAL

NODE_FILES = {"stdout": "stdout.txt", "stderr": "stderr.txt"}
INTERVAL = 1.0
SETTLE_TIMEOUT = 60.0  # after the task completed: how long to wait for the app to record the run as ended


@dataclass
class Follower:
    """Streams the node files of one task; `offsets` are the bytes already written per stream."""

    client: object
    job_id: str
    task_id: str
    streams: list[str]
    out: dict[str, TextIO]
    offsets: dict[str, int] = field(default_factory=dict)
    # a character split between two reads is decoded once both halves are here
    decoders: dict[str, codecs.IncrementalDecoder] = field(default_factory=dict)

    def read_new(self) -> int:
        """Write what the node files gained since the last look; returns the bytes written."""
        written = 0
        for stream in self.streams:
            try:
                size = self.client.get_task_file_properties(self.job_id, self.task_id,
                                                            NODE_FILES[stream]).content_length
            except ResourceNotFoundError:
                continue  # not started yet (or its files are gone)
            start = self.offsets.get(stream, 0)
            if size <= start:
                continue
            data = b"".join(self.client.download_task_file(self.job_id, self.task_id, NODE_FILES[stream],
                                                           ocp_range=f"bytes={start}-{size - 1}"))
            self.offsets[stream] = start + len(data)
            self.write(stream, data)
            written += len(data)
        return written

    def write(self, stream: str, data: bytes, final: bool = False) -> None:
        if stream not in self.decoders:
            self.decoders[stream] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = self.decoders[stream].decode(data, final)
        self.out[stream].write(text)
        self.out[stream].flush()

    def task_completed(self) -> bool:
        task = self.client.get_task(self.job_id, self.task_id, select=["id", "state"])
        return str(getattr(task.state, "value", task.state)) == "completed"


def follow(access: AppAccess, record: dict, streams: list[str], say: Callable[[str], None] = print,
           out: dict[str, TextIO] | None = None, sleep=time.sleep, settle_timeout: float = SETTLE_TIMEOUT) -> int:
    """Follow one run until its task completed and the run is recorded as ended; 0, or 1 when nothing was seen."""
    out = out or {"stdout": sys.stdout, "stderr": sys.stderr}
    pipeline, run_id = record["PartitionKey"], record["RowKey"]
    if not record.get("jobId") and record.get("state") not in TERMINAL:
        say(f"run {run_id} is {record.get('state')}: waiting for it to be submitted to Batch ...")
    while not record.get("jobId") and record.get("state") not in TERMINAL:
        sleep(INTERVAL)
        record = access.runs.get(pipeline, run_id) or record
    if record.get("state") in TERMINAL and not record.get("jobId"):
        say(f"run {run_id} ended {record.get('state')} without a Batch task: {runs_view.to_row(record).reason}")
        return 0
    f = Follower(batch_client(access), record["jobId"], record.get("taskId") or run_id, streams, out)
    try:
        while True:
            completed = f.task_completed()  # before reading: the bytes read after it are the last ones
            f.read_new()
            if completed:
                break
            sleep(INTERVAL)
    except ResourceNotFoundError:
        say(f"the Batch task {f.job_id}/{f.task_id} is gone (deleted after completion, or the job ended); "
            "showing the uploaded logs")
    except HttpResponseError as exc:
        say(f"cannot read the task's files from Batch ({exc.status_code}: {str(exc).splitlines()[0]}); "
            "showing the uploaded logs")
    record = _settled(access, pipeline, run_id, sleep, settle_timeout) or record
    if record.get("state") not in TERMINAL:
        say(f"the task completed but the app has not recorded run {run_id} as ended after {settle_timeout:.0f}s; "
            f"the uploaded logs come with it (eventbatch logs {run_id} later)")
        return 0 if f.offsets else 1
    added = _uploaded_tail(access, record, f)
    state = record.get("state")
    say(f"==> run {run_id} {state}" + (f" (exit code {record.get('exitCode')})" if record.get("exitCode") is not None
                                       else "") + (f"; the uploaded logs added {added} byte(s), shown above"
                                                   if added else "; the uploaded logs hold nothing more") + " <==")
    return 0


def _settled(access: AppAccess, pipeline: str, run_id: str, sleep, timeout: float) -> dict | None:
    record = None
    waited = 0.0
    while waited <= timeout:
        record = access.runs.get(pipeline, run_id)
        if record is None or record.get("state") in TERMINAL:
            return record
        sleep(INTERVAL)
        waited += INTERVAL
    return record


def _uploaded_tail(access: AppAccess, record: dict, f: Follower) -> int:
    """Print the part of each uploaded log beyond what was streamed; returns the bytes printed."""
    locations = log_locations(record, read_manifest(access, record))
    added = 0
    for stream in f.streams:
        container, name = locations[stream]
        try:
            data = access.storage.blob.get_blob_client(container, name).download_blob(
                offset=f.offsets.get(stream, 0) or None).readall()
        except ResourceNotFoundError:
            continue
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the upload is not longer than what was streamed
                continue
            raise
        f.write(stream, data, final=True)
        added += len(data)
    return added
