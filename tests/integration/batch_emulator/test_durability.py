"""State survives an emulator restart; tasks running when it crashed are requeued (requeueCount), as Batch
does when it loses a node, and then complete."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from azure.batch import models as m

from tests.helpers import wait_for

from .conftest import Emulator, vm_config, wait_nodes, wait_task

pytestmark = pytest.mark.integration


@pytest.fixture()
def emu():
    with tempfile.TemporaryDirectory(prefix="batch-durable-") as tmp:
        from pathlib import Path
        e = Emulator(Path(tmp) / "data", "process", dict(os.environ))
        e.start()
        yield e
        e.stop()


def test_graceful_restart_keeps_pools_jobs_tasks_and_files(emu):
    c = emu.client()
    c.create_pool(m.BatchPoolCreateOptions(id="keep", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                           vm_config(m), target_dedicated_nodes=1, task_slots_per_node=2))
    c.create_job(m.BatchJobCreateOptions(id="keep-job", pool_info=m.BatchPoolInfo(pool_id="keep"), priority=7))
    c.create_tasks("keep-job", [m.BatchTaskCreateOptions(id=f"k{i}", command_line=f"/bin/sh -c 'echo {i}'")
                                for i in range(5)])
    wait_for(lambda: c.get_job_task_counts("keep-job").task_counts.completed == 5, 30, what="5 done")
    before = {t.id: (t.state, t.execution_info.exit_code, t.etag) for t in c.list_tasks("keep-job")}
    emu.restart()
    c = emu.client()
    assert c.get_pool("keep").target_dedicated_nodes == 1
    assert c.get_job("keep-job").priority == 7
    after = {t.id: (t.state, t.execution_info.exit_code, t.etag) for t in c.list_tasks("keep-job")}
    assert after == before
    wait_nodes(c, "keep", 1)
    assert b"".join(c.download_task_file("keep-job", "k3", "stdout.txt")) == b"3\n"
    c.create_task("keep-job", m.BatchTaskCreateOptions(id="k-after", command_line="/bin/true"))
    assert wait_task(c, "keep-job", "k-after").execution_info.result == "success"


def test_crash_requeues_running_tasks_after_ending_the_orphaned_attempt(emu):
    """After kill -9 the first attempt (a host process group) outlives the emulator; the restarted emulator must
    end it before it runs the requeued attempt, or both would run side by side in the same working dir."""
    c = emu.client()
    c.create_pool(m.BatchPoolCreateOptions(id="crash", vm_size="standard_d2s_v3", virtual_machine_configuration=
                                           vm_config(m), target_dedicated_nodes=1))
    c.create_job(m.BatchJobCreateOptions(id="crash-job", pool_info=m.BatchPoolInfo(pool_id="crash")))
    marker = emu.data_dir.parent / "second-run"
    pid_file = emu.data_dir.parent / "first-pid"
    # first run records its pid and sleeps long (the crash hits it); the requeued run reports whether that
    # first run is still alive, then ends at once
    # (a killed orphan may linger as a zombie when nothing reaps it, so "alive" means a state other than Z)
    cmd = (f"/bin/sh -c 'if [ -e {marker} ]; then st=$(cut -d\")\" -f2 /proc/$(cat {pid_file})/stat 2>/dev/null "
           f"| cut -c2); if [ -n \"$st\" ] && [ \"$st\" != Z ]; then echo orphan-alive; else echo second; fi; "
           f"else echo $$ > {pid_file}; touch {marker}; sleep 60; fi'")
    c.create_task("crash-job", m.BatchTaskCreateOptions(id="victim", command_line=cmd))
    c.create_task("crash-job", m.BatchTaskCreateOptions(id="queued", command_line="/bin/true"))
    wait_task(c, "crash-job", "victim", "running")
    wait_for(lambda: marker.exists() and pid_file.exists() and pid_file.read_text().strip(), 10,
             what="first attempt to start")
    first_pid = int(pid_file.read_text())
    emu.kill()
    assert _alive(first_pid), "the first attempt should outlive the killed emulator"
    emu.start()
    c = emu.client()
    task = wait_task(c, "crash-job", "victim", timeout=30)
    assert task.execution_info.requeue_count == 1 and task.execution_info.last_requeue_time
    assert task.execution_info.retry_count == 0 and task.execution_info.result == "success"
    assert b"".join(c.download_task_file("crash-job", "victim", "stdout.txt")) == b"second\n"
    assert wait_task(c, "crash-job", "queued").execution_info.result == "success"
    assert not _alive(first_pid)
    assert _processes_mentioning(str(marker)) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode() and _alive(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found
