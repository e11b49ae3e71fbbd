"""Track-1 client tests: azure-batch 14.2 ``BatchServiceClient`` + ``SharedKeyCredentials`` against the emulator.

Run with the isolated env: ``.venv-batch14/bin/python -m pytest tests/compat14`` (the main suite runs this as a
subprocess in tests/integration/batch_emulator/test_compat14.py). The emulator itself runs from ``.venv``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.batch_emulator.launcher import EmulatorProcess
from devstack.common.local_accounts import BATCH_ACCOUNT_KEY as KEY
from devstack.common.local_accounts import BATCH_ACCOUNT_NAME as ACCOUNT

try:  # only the track-1 env has BatchServiceClient; the main suite runs these through test_compat14.py
    from azure.batch import BatchServiceClient  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory):
    """The emulator runs from the main env (BATCH_EMULATOR_PYTHON overrides it); only the client here is 14.2."""
    python = os.environ.get("BATCH_EMULATOR_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    data = tmp_path_factory.mktemp("batch14")
    with EmulatorProcess(data / "state", "process", python=python, log=data / "emulator.log") as emu:
        yield emu.url


@pytest.fixture(scope="session")
def client(emulator_url):
    from azure.batch import BatchServiceClient
    from azure.batch.batch_auth import SharedKeyCredentials

    return BatchServiceClient(SharedKeyCredentials(ACCOUNT, KEY), batch_url=emulator_url)

