"""``eventbatch autoscale ...``: try an autoscale formula locally, once (eval) or against a workload (simulate).

    eventbatch autoscale eval --formula F --samples S.json [--now 2026-11-25T10:00:00Z]
    eventbatch autoscale simulate --formula F [--formula G ...] --trace samples/traces/bursty.csv
        [--interval PT5M] [--startup PT3M] [--slots 4] [--sample-delay PT0S] [--fill spread|pack]
        [--chart out.png] [--json]

``--formula`` takes a file path, or the formula text itself when no such file exists. The samples file format is
documented in docs/autoscale.md and in ``load_samples`` below.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from devstack.batch_emulator.timeutil import parse_timedelta

from .chart import write_chart
from .errors import FormulaError
from .evaluator import PoolState, evaluate
from .functions import parse_datetime
from .parser import parse
from .samples import SampleHistory
from .simulate import SimConfig, load_trace, simulate


class UsageError(Exception):
    """A bad flag or input file; main() prints it with what to do and exits 2."""


def read_formula(value: str) -> str:
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text()
    except OSError:
        pass
    if "=" not in value:
        raise UsageError(f"--formula {value!r}: no such file, and it is not a formula (no '=' in it)")
    return value


def load_samples(path: str, now_flag: str | None = None) -> PoolState:
    """A samples file is JSON::

        {
          "now": "2026-11-25T10:00:00Z",            optional; default: the current time
          "period": "PT30S",                         optional; the spacing of the samples below
          "delay": "PT0S",                           optional; samples newer than now - delay are not visible
          "samples": {"PendingTasks": [0, 3, null, 8]},   oldest first, the last one taken at "now"; null = missing
          "current": {"CurrentDedicatedNodes": 2},   optional; default: the last sample of each metric
          "targetDedicatedNodes": 2, "targetLowPriorityNodes": 0   optional; what $TargetDedicatedNodes reads
        }
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--samples {path}: cannot read JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("samples", {}), dict):
        raise UsageError(f"--samples {path}: expected an object with a 'samples' object (see docs/autoscale.md)")
    try:
        now = parse_datetime(now_flag or doc["now"]) if (now_flag or doc.get("now")) else datetime.now(UTC)
        period = parse_timedelta(doc.get("period", "PT30S"), "period")
        delay = parse_timedelta(doc.get("delay", "PT0S"), "delay")
    except ValueError as exc:
        raise UsageError(f"--samples {path}: {exc}") from None
    history = SampleHistory(period=period, delay=delay)
    current: dict[str, float] = {}
    for name, values in doc.get("samples", {}).items():
        name = name.lstrip("$")
        if not isinstance(values, list) or not all(v is None or isinstance(v, int | float) for v in values):
            raise UsageError(f"--samples {path}: samples.{name} must be a list of numbers or null")
        for i, value in enumerate(values):
            if value is not None:
                history.record(now - period * (len(values) - 1 - i), {name: value})
        present = [v for v in values if v is not None]
        if present:
            current[name] = float(present[-1])
    current.update({k.lstrip("$"): float(v) for k, v in doc.get("current", {}).items()})
    return PoolState(history=history, now=now, current=current,
                     target_dedicated=float(doc.get("targetDedicatedNodes", current.get("CurrentDedicatedNodes", 0))),
                     target_low_priority=float(doc.get("targetLowPriorityNodes",
                                                       current.get("CurrentLowPriorityNodes", 0))))


def cmd_eval(args: argparse.Namespace) -> int:
    formula = read_formula(args.formula)
    state = load_samples(args.samples, args.now) if args.samples else PoolState(history=SampleHistory())
    run = evaluate(formula, state).to_wire()
    print(json.dumps(run, indent=2))
    return 1 if "error" in run else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    try:
        config = SimConfig(
            interval=parse_timedelta(args.interval, "--interval").total_seconds(),
            startup=parse_timedelta(args.startup, "--startup").total_seconds(),
            slots_per_node=args.slots,
            sample_period=parse_timedelta(args.sample_period, "--sample-period").total_seconds(),
            sample_delay=parse_timedelta(args.sample_delay, "--sample-delay").total_seconds(),
            drain=parse_timedelta(args.drain, "--drain").total_seconds(),
            fill=args.fill,
        )
        tasks = load_trace(args.trace)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    names = args.name or []
    results = []
    for i, spec in enumerate(args.formula):
        text = read_formula(spec)
        try:
            parse(text)
        except FormulaError as exc:
            raise UsageError(f"--formula {spec}: {exc.code}: {exc.value}") from None
        name = names[i] if i < len(names) else (Path(spec).stem if Path(spec).is_file() else f"formula {i + 1}")
        results.append(simulate(text, tasks, config, name))
    if args.json:
        print(json.dumps([r.summary() for r in results], indent=2))
    else:
        print(render_table(results, args, config))
    if args.chart:
        path = write_chart(results, args.chart, title=f"{Path(args.trace).name}: interval {args.interval}, "
                                                      f"start-up {args.startup}, {args.slots} slot(s)/node")
        print(f"chart: {path}")
    return 1 if any(r.evaluation_errors for r in results) else 0


def render_table(results, args, config) -> str:
    rows = [
        ("node-minutes dedicated", lambda s: f"{s['dedicated_node_minutes']:.1f}"),
        ("node-minutes spot", lambda s: f"{s['spot_node_minutes']:.1f}"),
        ("node-minutes total", lambda s: f"{s['node_minutes']:.1f}"),
        ("lower bound (task-s/slots/60)", lambda s: f"{s['lower_bound_node_minutes']:.1f}"),
        ("ratio to lower bound", lambda s: f"{s['ratio_to_lower_bound']:.2f}x"),
        ("queue wait p50", lambda s: _fmt_s(s["wait_p50_s"])),
        ("queue wait p95", lambda s: _fmt_s(s["wait_p95_s"])),
        ("queue wait max", lambda s: _fmt_s(s["wait_max_s"])),
        ("tasks ok / failed / unfinished", lambda s: f"{s['succeeded']} / {s['failed']} / {s['unfinished']}"),
        ("evaluations (errors)", lambda s: f"{s['evaluations']} ({s['evaluation_errors']})"),
        ("nodes left at end", lambda s: str(s["nodes_at_end"])),
    ]
    summaries = [r.summary() for r in results]
    width = max(len(r[0]) for r in rows)
    col = max(14, *(len(s["formula"]) for s in summaries))
    lines = [f"trace {args.trace}: {results[0].tasks} tasks; interval {args.interval}, start-up {args.startup}, "
             f"{config.slots_per_node} slot(s)/node, fill {config.fill}, sample delay {args.sample_delay}",
             " " * width + "  " + "  ".join(s["formula"].rjust(col) for s in summaries)]
    for label, fn in rows:
        lines.append(label.ljust(width) + "  " + "  ".join(fn(s).rjust(col) for s in summaries))
    for s in summaries:
        if s["first_error"]:
            lines.append(f"{s['formula']}: first evaluation error: {s['first_error']}")
    return "\n".join(lines)


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventbatch autoscale",
                                     description="Evaluate and simulate Azure Batch autoscale formulas locally.")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="evaluate a formula once on sample histories, printed like the service's "
                                     "AutoScaleRun")
    ev.add_argument("--formula", required=True, help="formula file, or the formula text")
    ev.add_argument("--samples", help="JSON file of sample histories per variable (see docs/autoscale.md)")
    ev.add_argument("--now", help="evaluation time (W3C-DTF), overrides the samples file's 'now'")
    ev.set_defaults(func=cmd_eval)
    sim = sub.add_parser("simulate", help="run formulas against an arrival trace in simulated time")
    sim.add_argument("--formula", required=True, action="append", help="formula file or text; repeat to compare")
    sim.add_argument("--name", action="append", help="label for the matching --formula")
    sim.add_argument("--trace", required=True, help="CSV trace: arrival_s,duration_s (see samples/traces/)")
    sim.add_argument("--interval", default="PT5M", help="autoScaleEvaluationInterval (default PT5M)")
    sim.add_argument("--startup", default="PT3M", help="node start-up time, allocation to ready (default PT3M)")
    sim.add_argument("--slots", type=int, default=1, help="task slots per node (default 1)")
    sim.add_argument("--sample-period", default="PT30S", help="metric sample period (default PT30S)")
    sim.add_argument("--sample-delay", default="PT0S", help="delay before a sample is visible (default PT0S)")
    sim.add_argument("--drain", default="PT4H", help="simulate at most this long after the last arrival")
    sim.add_argument("--fill", choices=("spread", "pack"), default="spread", help="node fill type")
    sim.add_argument("--chart", help="write a PNG chart of pending tasks and nodes over time")
    sim.add_argument("--json", action="store_true", help="print the figures as JSON")
    sim.set_defaults(func=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"eventbatch autoscale {args.command}: {exc}", file=sys.stderr)
        return 2



if __name__ == "__main__":
    sys.exit(main())
