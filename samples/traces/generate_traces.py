"""Writes the shipped arrival traces (bursty.csv, diurnal.csv, idle.csv) deterministically.

Run: .venv/bin/python samples/traces/generate_traces.py [--out samples/traces]
A trace is a CSV of tasks: arrival_s (seconds from the trace start), duration_s. Seeds are fixed, so the files
are reproducible byte for byte; the simulator (eventbatch autoscale simulate) reads them.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path


def bursty(rng: random.Random) -> list[tuple[float, float]]:
    """Four hours: five bursts of 15-40 minutes at 5-12 tasks/minute, tasks of 2-10 minutes, quiet in between."""
    tasks = []
    start = 5 * 60.0
    for _ in range(5):
        length = rng.uniform(15, 40) * 60
        rate = rng.uniform(5, 12) / 60  # tasks per second
        t = start
        while t < start + length:
            t += rng.expovariate(rate)
            tasks.append((t, rng.uniform(120, 600)))
        start += length + rng.uniform(15, 30) * 60
    return tasks


def diurnal(rng: random.Random) -> list[tuple[float, float]]:
    """24 hours: a daytime peak of ~6 tasks/minute around 13:00, a trickle at night; tasks of 1-5 minutes."""
    tasks = []
    t = 0.0
    while t < 86400:
        hour = t / 3600
        per_minute = 0.05 + 6 * max(0.0, math.sin(math.pi * (hour - 6) / 14))
        t += rng.expovariate(per_minute / 60)
        if t < 86400:
            tasks.append((t, rng.uniform(60, 300)))
    return tasks


def idle(rng: random.Random) -> list[tuple[float, float]]:
    """Four hours of almost nothing: a lone 1-2 minute task every 30-60 minutes."""
    tasks = []
    t = 0.0
    while True:
        t += rng.uniform(30, 60) * 60
        if t > 4 * 3600:
            return tasks
        tasks.append((t, rng.uniform(60, 120)))


TRACES = {"bursty": (bursty, 6), "diurnal": (diurnal, 24), "idle": (idle, 42)}


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (make, seed) in TRACES.items():
        rows = sorted(make(random.Random(seed)))  # noqa: S311 - synthetic workload, not security
        path = out / f"{name}.csv"
        path.write_text("arrival_s,duration_s\n" + "".join(f"{a:.1f},{d:.1f}\n" for a, d in rows))
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    for p in write(Path(parser.parse_args().out)):
        print(p, sum(1 for _ in p.open()) - 1, "tasks")
