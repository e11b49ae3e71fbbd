"""Host identity and state files: host id rules, the status file guard, the in-flight journal."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.func_host.errors import ConfigError, HostError
from devstack.func_host.host import derive_host_id
from devstack.func_host.journal import InflightJournal
from devstack.func_host.status import StatusFile


def test_host_id_is_derived_stable_and_valid(monkeypatch):
    monkeypatch.delenv("AzureFunctionsWebHost__hostid", raising=False)
    first = derive_host_id(Path("/srv/My_Function.App"), None)
    assert first == derive_host_id(Path("/srv/My_Function.App"), None)
    assert len(first) <= 32 and first == first.lower() and "_" not in first and not first.endswith("-")
    assert first.endswith("-my-function-app")


def test_explicit_host_id_wins_and_is_validated(monkeypatch):
    monkeypatch.setenv("AzureFunctionsWebHost__hostid", "from-setting")
    assert derive_host_id(Path("/x"), None) == "from-setting"
    assert derive_host_id(Path("/x"), "cli-id") == "cli-id"
    with pytest.raises(ConfigError, match="lowercase letters, digits and dashes"):
        derive_host_id(Path("/x"), "Bad_ID")
    with pytest.raises(ConfigError):
        derive_host_id(Path("/x"), "a" * 33)


def test_status_file_refuses_a_second_live_host(tmp_path):
    status = StatusFile(tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        previous = {"pid": sleeper.pid, "state": "running", "host_id": "h1"}
        with pytest.raises(HostError, match=f"pid {sleeper.pid}"):
            status.check_not_running(previous, "h1")
    finally:
        sleeper.kill()
        sleeper.wait()
    status.check_not_running(previous, "h1")  # dead now: a restart may proceed
    status.check_not_running({"pid": 1, "state": "stopped"}, "h1")  # cleanly stopped: never blocks


def test_a_killed_host_left_as_a_zombie_does_not_block_a_restart(tmp_path):
    """A host killed by its parent (a test, a supervisor) that has not reaped it yet is a zombie: not running."""
    status = StatusFile(tmp_path)
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        host.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{host.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        status.check_not_running({"pid": host.pid, "state": "running", "host_id": "h1"}, "h1")
    finally:
        host.wait()


def test_status_is_written_atomically_under_both_names(tmp_path):
    status = StatusFile(tmp_path / "state")
    status.write(pid=123, state="running")
    status.write(state="stopped")
    for name in ("host.json", "status.json"):
        data = json.loads((tmp_path / "state" / name).read_text())
        assert data["pid"] == 123 and data["state"] == "stopped" and data["updated"].endswith("Z")
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["host.json", "status.json"]


def test_journal_tracks_the_current_pop_receipt_and_survives_the_process(tmp_path):
    journal = InflightJournal(tmp_path)
    journal.put("f", "q1", "m1", "pop-1")
    journal.put("f", "q1", "m2", "pop-a")
    journal.put("f", "q1", "m1", "pop-2")  # renewed: newer pop receipt
    journal.remove("q1", "m2")
    assert InflightJournal(tmp_path).read_previous() == [
        {"function": "f", "queue": "q1", "id": "m1", "pop_receipt": "pop-2"}]
    journal.reset()
    assert InflightJournal(tmp_path).read_previous() == []
