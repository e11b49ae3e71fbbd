"""Autoscale figures for docs/autoscale.md: the app's default formula vs the Azure docs' pending-tasks formula.

`python -m bench autoscale` or `.venv/bin/python bench/bench_autoscale.py [--chart docs/img/autoscale-bursty.png]`.
One simulator run per trace (bursty, diurnal, idle) with the pool of pipelines.yaml (4 slots/node), the 5-minute
evaluation interval (Azure's minimum) and a 3-minute node start-up; also the sensitivity to a 60 s sample delay.
Equivalent CLI: `eventbatch autoscale simulate --formula <file> --formula <file> --trace samples/traces/bursty.csv
--slots 4 --interval PT5M --startup PT3M --chart docs/img/autoscale-bursty.png`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack.batch_emulator.autoscale.cli import main as autoscale_cli  # noqa: E402
from shared.autoscale_formula import default_formula  # noqa: E402

AZURE_PENDING_TASKS = """startingNumberOfVMs = 1;
maxNumberofVMs = 25;
pendingTaskSamplePercent = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
pendingTaskSamples = pendingTaskSamplePercent < 70 ? startingNumberOfVMs : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
$TargetDedicatedNodes=min(maxNumberofVMs, pendingTaskSamples);
$NodeDeallocationOption = taskcompletion;
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", default=None, help="PNG for the bursty comparison (default: a temp file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        default_path = Path(tmp) / "default.txt"
        azure_path = Path(tmp) / "azure-pending-tasks.txt"
        # Same 25-node ceiling for both: the docs' formula caps at 25 dedicated; ours at 5 dedicated + 20 spot.
        default_path.write_text(default_formula(5, 20, 4))
        azure_path.write_text(AZURE_PENDING_TASKS)
        common = ["--formula", str(default_path), "--name", "default", "--formula", str(azure_path),
                  "--name", "azure-docs-pending", "--slots", "4", "--interval", "PT5M", "--startup", "PT3M"]
        chart = args.chart or str(Path(tmp) / "autoscale-bursty.png")
        for trace in ("bursty", "diurnal", "idle"):
            extra = ["--chart", chart] if trace == "bursty" else []
            print()
            autoscale_cli(["simulate", *common, "--trace", str(REPO / "samples" / "traces" / f"{trace}.csv"), *extra])
        print("\n# sensitivity: samples visible 60 s after they are taken")
        autoscale_cli(["simulate", *common, "--trace", str(REPO / "samples" / "traces" / "bursty.csv"), "--sample-delay", "PT60S"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
