"""`make test` covers the track-1 client: run tests/compat14 in the isolated azure-batch 14.2 env."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_track1_client_suite_passes():
    python = ROOT / ".venv-batch14" / "bin" / "python"
    assert python.exists(), "the azure-batch 14.2 env is missing: run `bash devstack/setup.sh` to create .venv-batch14"
    res = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/compat14"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout
