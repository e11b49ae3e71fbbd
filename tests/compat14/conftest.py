"""Track-1 client tests: azure-batch 14.2 ``BatchServiceClient`` + ``SharedKeyCredentials`` against the emulator.

Run with the isolated env: ``.venv-batch14/bin/python -m pytest tests/compat14`` (the main suite runs this as a
subprocess in tests/integration/batch_emulator/test_compat14.py). The emulator itself runs from ``.venv``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

try:  # only the track-1 env has BatchServiceClient; the main suite runs these through test_compat14.py
    from azure.batch import BatchServiceClient  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]
KEY = "ZXZlbnRiYXRjaC1sb2NhbC1lbXVsYXRvci13ZWxsLWtub3duLWtleS1ub3QtYS1zZWNyZXQ="
ACCOUNT = "eventbatchlocal"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory):
    python = os.environ.get("BATCH_EMULATOR_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    port = _free_port()
    data = tmp_path_factory.mktemp("batch14")
    log = open(data / "emulator.log", "wb")
    proc = subprocess.Popen([python, "-m", "devstack.batch_emulator", "--port", str(port), "--data-dir",
                             str(data / "state"), "--account", f"{ACCOUNT}:{KEY}", "--runtime", "process"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/_emulator/health", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data / "emulator.log").read_text()) from None
            time.sleep(0.1)
    yield url
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def client(emulator_url):
    from azure.batch import BatchServiceClient
    from azure.batch.batch_auth import SharedKeyCredentials

    return BatchServiceClient(SharedKeyCredentials(ACCOUNT, KEY), batch_url=emulator_url)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
