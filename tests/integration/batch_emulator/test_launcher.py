"""The private-emulator launcher itself: a failed start says why and where the log is; stop leaves nothing behind."""

from __future__ import annotations

import os

import pytest

from devstack.batch_emulator.launcher import EmulatorProcess, EmulatorStartError

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_emulator_that_exits_at_once_raises_with_the_log_path_and_its_tail(tmp_path):
    emu = EmulatorProcess(tmp_path / "data", extra_args=("--account", "no-key-here"))
    with pytest.raises(EmulatorStartError) as err:
        emu.start()
    message = str(err.value)
    assert "exited with code 2" in message
    assert str(emu.log) in message
    assert "--account 'no-key-here': expected NAME:KEY" in message
    assert emu.key not in message, "the account key must not be shown in the error"
    assert not emu.running


def test_an_emulator_that_never_answers_is_stopped_and_reported_after_the_timeout(tmp_path):
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'starting, slowly'\nexec sleep 60\n")
    fake.chmod(0o755)
    emu = EmulatorProcess(tmp_path / "data", python=str(fake), start_timeout=1, stop_timeout=5)
    with pytest.raises(EmulatorStartError) as err:
        emu.start()
    message = str(err.value)
    assert "did not answer" in message and "within 1s" in message
    assert str(emu.log) in message and "starting, slowly" in message
    assert not emu.running and _gone(emu.proc.pid)


def test_stop_leaves_no_process_and_restart_keeps_port_and_data(tmp_path):
    with EmulatorProcess(tmp_path / "data", extra_args=("--log-level", "WARNING")) as emu:
        first = emu.proc.pid
        assert emu.health()["status"] == "ok"
        port = emu.port
        emu.restart()
        assert emu.port == port and emu.proc.pid != first and _gone(first)
        assert emu.health()["status"] == "ok"
        emu.kill()
        assert not emu.running and _gone(emu.proc.pid)
        emu.start()
        second = emu.proc.pid
    assert _gone(second) and emu.proc.returncode == 0
    with pytest.raises(OSError):
        emu.health(timeout=1)
    assert (tmp_path / "data").is_dir() and emu.log.parent == tmp_path
