"""`bicep build` of every template when a Bicep compiler is installed; skipped with the reason otherwise.

The compiler is a standalone binary that is not in the package registries these machines reach, so CI without it
relies on checkov and the structural tests; on a workstation with `bicep` (or `az bicep`) this also type-checks.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ["infra/main.bicep", "infra/modules/blob-events-subscription.bicep"]


def compiler() -> list[str] | None:
    if shutil.which("bicep"):
        return ["bicep", "build", "--stdout"]
    if shutil.which("az"):
        probe = subprocess.run(["az", "bicep", "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0:
            return ["az", "bicep", "build", "--stdout", "--file"]
    return None


@pytest.mark.parametrize("template", TEMPLATES)
def test_bicep_build(template):
    command = compiler()
    if command is None:
        pytest.skip("no bicep compiler (bicep or az bicep) on PATH; install it to compile infra/ "
                    "(https://aka.ms/bicep-install). checkov and the structural tests still ran.")
    result = subprocess.run([*command, str(ROOT / template)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"$schema"' in result.stdout
