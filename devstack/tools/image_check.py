"""`eventbatch images check`: read each pipeline image's config from its registry and judge it by the rules.

    eventbatch images check [--pipelines FILE] [--settings FILE | --env] [--json] [--write FILE]
                            [--no-layers] [--max-layer-mb N] [--skip-unreachable] [--rules]

Per pipeline (and merge step) it prints the image, WORKDIR, ENTRYPOINT, CMD, USER and a verdict per rule
(shared/image_rules.py), and exits 1 when a rule fails (2 for usage, 3 with --skip-unreachable when a registry could
not be reached, so hooks can tell "wrong" from "not there yet"). `--write FILE` keeps the facts it read (not the
verdicts) for the app, which judges its pipelines with them at start-up without calling the registry.

pipelines.yaml's ${SETTINGS} come from the local stack's settings by default, `--settings FILE`, or `--env` (the
environment: the azd hooks). Credentials are the pool's `container.registries` for the image's registry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from devstack.common import paths
from devstack.common.env_file import read_env_file
from devstack.common.registry_client import DEFAULT_MAX_LAYER_BYTES, default_credential
from devstack.stack.image_facts import CheckResult, run_check
from devstack.tools.access import AccessError, resolve_environ
from shared.errors import ConfigError
from shared.image_rules import RULES, dump_facts
from shared.pipelines import PipelineConfig, load_config

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eventbatch images check", description=__doc__.splitlines()[0])
    p.add_argument("--pipelines", type=Path, metavar="FILE",
                   help="the pipelines file to check (default: the PIPELINES_FILE setting, pipelines.yaml)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--settings", type=Path, metavar="FILE",
                       help="a local.settings.json for the ${SETTINGS} in the file (default: the local stack's)")
    where.add_argument("--env", action="store_true", help="take the settings from the environment (azd hooks)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--write", type=Path, metavar="FILE",
                   help="also write the image facts read (for the app's start-up check: IMAGE_CHECK_FILE)")
    p.add_argument("--no-layers", action="store_true",
                   help="do not download layers to look for /bin/sh (the shell-missing rule says unknown)")
    p.add_argument("--max-layer-mb", type=float, default=DEFAULT_MAX_LAYER_BYTES / 2**20,
                   help="look for /bin/sh only in images whose layers total at most this (default %(default)s)")
    p.add_argument("--skip-unreachable", action="store_true",
                   help="a registry that cannot be reached is not a failure: report it and exit 3")
    p.add_argument("--rules", action="store_true", help="list the rules and exit")
    return p


def load_pipelines(args) -> tuple[PipelineConfig, Path]:
    try:
        environ = resolve_environ(args.settings, args.env)
    except AccessError:
        if args.settings is not None:
            raise
        # No local.settings.json (the stack was started without the host): the stack's .devstack/env, under the
        # environment.
        environ = {**(read_env_file() or {}), **os.environ}
    path = args.pipelines or Path(environ.get("PIPELINES_FILE") or "pipelines.yaml")
    if not path.is_absolute() and not path.exists():
        path = paths.REPO_ROOT / path
    return load_config(path, environ), path


def report_json(result: CheckResult) -> dict:
    out = []
    for r in result.reports:
        f = r.facts
        out.append({
            "pipeline": r.step.pipeline, "step": r.step.kind, "image": r.step.image,
            "digest": f.digest if f else None, "workdir": f.workdir if f else None,
            "entrypoint": list(f.entrypoint) if f else None, "cmd": list(f.cmd) if f else None,
            "user": f.user if f else None, "imageError": result.errors.get(r.step.image),
            "verdicts": [{"rule": v.rule, "status": v.status, "message": v.message} for v in r.verdicts],
            "ok": not r.failed,
        })
    return {"ok": not result.failed, "steps": out, "unreachable": sorted(result.unreachable),
            "skippedDisabled": list(result.skipped)}


def _show(value) -> str:
    if value is None:
        return "?"
    if isinstance(value, tuple):
        return json.dumps(list(value)) if value else "(none)"
    return value or "(none)"


def report_text(result: CheckResult) -> str:
    lines = []
    for r in result.reports:
        f = r.facts
        lines.append(f"{r.step.where}  {'ok' if not r.failed else 'FAILED'}")
        lines.append(f"  image       {r.step.image}" + (f"  ({f.digest[:19]})" if f and f.digest else ""))
        if f is None:
            lines.append(f"  (image not read: {result.errors.get(r.step.image, 'unknown')})")
        else:
            lines.append(f"  WORKDIR     {f.workdir or '/ (default)'}")
            for label, value in (("ENTRYPOINT", f.entrypoint), ("CMD", f.cmd), ("USER", f.user or "(root)")):
                lines.append(f"  {label:<11} {_show(value)}")
        lines.append(f"  commandLine {r.step.command_line or '(empty: ENTRYPOINT mode)'}")
        for v in r.verdicts:
            lines.append(f"    {v.status:<8} {v.rule:<24} {v.message}".rstrip())
    for name in result.skipped:
        lines.append(f"pipeline {name}  skipped (disabled in pipelines.yaml: it takes no work, its image is not read)")
    bad = [(r.step, v) for r in result.reports for v in r.failed]
    lines.append("")
    if bad:
        lines.append(f"images check FAILED: {len(bad)} rule(s) failed:")
        lines += [f"  - {s.where}: {v.rule}: {v.message}" for s, v in bad]
    for image, why in result.errors.items():
        lines.append(f"  ! {image}: {why}")
    if result.unreachable and not result.failed:
        lines.append("images check incomplete: a registry is not reachable (see above); the rules that need the "
                     "image said unknown")
    elif not result.failed:
        lines.append("images check passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None, *, credential_factory=default_credential, out=None) -> int:
    out = out or sys.stdout
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.rules:
        for rule, text in RULES.items():
            print(f"{rule:<24} {text}", file=out)
        return 0
    try:
        config, path = load_pipelines(args)
    except (ConfigError, AccessError) as exc:
        print(f"eventbatch images check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = run_check(config, layers=not args.no_layers, max_layer_bytes=int(args.max_layer_mb * 2**20),
                       credential_factory=credential_factory)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(dump_facts(result.facts.values()), encoding="utf-8")
    print(json.dumps(report_json(result), indent=2) if args.json else
          f"checking {len(config.pipelines)} pipeline(s) of {path}\n" + report_text(result), file=out)
    if any(r.failed for r in result.reports) or set(result.errors) - result.unreachable:
        return EXIT_FAILED
    if result.unreachable:
        return EXIT_UNREACHABLE if args.skip_unreachable else EXIT_FAILED
    return 0


def check_for_demo(environ: Mapping[str, str], pipelines_file: Path, say, write: Path | None = None) -> bool:
    """What `make demo` runs before the sample work: the report, and True when every rule passed."""
    config = load_config(pipelines_file, environ)
    result = run_check(config, credential_factory=None)
    if write is not None:
        write.write_text(dump_facts(result.facts.values()), encoding="utf-8")
    for line in report_brief(result).splitlines():
        say(line)
    return not result.failed


def report_brief(result: CheckResult) -> str:
    """One line per pipeline step (what `make demo` shows), then what failed and why."""
    lines = []
    for r in result.reports:
        f = r.facts
        seen = (f"WORKDIR {f.workdir or '/'}  ENTRYPOINT {_show(f.entrypoint)}  CMD {_show(f.cmd)}  USER "
                f"{f.user or '(root)'}" if f else f"not read: {result.errors.get(r.step.image, '?')}")
        status = "FAILED" if r.failed else "ok"
        lines.append(f"{status:<6} {r.step.where:<28} {r.step.image}  {seen}")
    bad = [(r.step, v) for r in result.reports for v in r.failed]
    lines += [f"  - {s.where}: rule {v.rule}: {v.message}" for s, v in bad]
    lines.append("images check " + ("FAILED" if result.failed else "passed") +
                 f" ({len(RULES)} rules; `eventbatch images check` prints every verdict)")
    return "\n".join(lines)


