"""Run the benchmarks: `python -m bench [AREA ...]` (areas are the bench_<area>.py modules in this folder).

The local stack is brought up first (reused when running). Each benchmark prints its own figures; this runner
adds a header per area and a non-zero exit code when a benchmark crashed.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def areas() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = argv or areas()
    unknown = [a for a in wanted if a not in areas()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(areas())}", file=sys.stderr)
        return 2
    from devstack.stack import lifecycle

    lifecycle.up(with_host=False, log=lambda line: None)
    failed = []
    for area in wanted:
        print(f"\n=== bench: {area} ===", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"bench.bench_{area}").main([])
        except Exception:  # noqa: BLE001 - report and go on with the next benchmark
            traceback.print_exc()
            failed.append(area)
        print(f"--- {area}: {time.monotonic() - started:.1f}s", flush=True)
    if failed:
        print(f"\nbenchmarks that crashed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
