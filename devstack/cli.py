"""The `eventbatch` command: run the local stack and look at what the app did.

Subcommands that belong to one part of the stack are dispatched to that part's own function, which takes the
arguments after the subcommand's name, so each part keeps its options next to its code. Each part is imported only
when its command runs (`eventbatch func-host` does not load the stack manager, nor `eventbatch status` the emulator).
Shell completion (argcomplete; `eventbatch completion bash|zsh` prints the script) needs every command's options:
only while completing, the parsers named in PARSERS are imported and attached as subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys

import argcomplete

from devstack.stack.processes import StackError

# name -> (module, function, help); each function takes the arguments after the name and returns int | None
DELEGATED = {
    "batch-emulator": ("devstack.batch_emulator.server", "main", "run the Azure Batch emulator in the foreground"),
    "func-host": ("devstack.func_host.cli", "main", "run the local Functions host in the foreground"),
    "autoscale": ("devstack.batch_emulator.autoscale.cli", "main", "evaluate or simulate Batch autoscale formulas"),
    "status": ("devstack.tools.commands", "status",
               "table of runs: input, pipeline, state, duration, exit code, outputs"),
    "submit": ("devstack.tools.commands", "submit", "upload files or send a request to a pipeline"),
    "logs": ("devstack.tools.commands", "logs", "stdout/stderr of a run"),
    "replay": ("devstack.tools.commands", "replay",
               "count or move back poisoned messages and dead-lettered events (--apply)"),
    "cancel": ("devstack.tools.control", "cancel", "cancel runs: terminate their tasks, record them cancelled"),
    "retry": ("devstack.tools.control", "retry", "run failed or cancelled runs again as new attempts"),
    "demo": ("devstack.tools.demo", "main", "run the sample work end to end and show the results"),
    "wait": ("devstack.tools.wait", "main", "block until runs or a request have ended (exit 0 only if all succeeded)"),
    "metrics": ("devstack.tools.metrics", "main", "runs by state, waits, latencies, throughput, failure reasons"),
    "request": ("devstack.tools.request_view", "main", "one request as a unit: state, counts, merge, failed inputs"),
}
# name -> (module, function returning the command's argparse parser, called with the name): for completion
PARSERS = {
    "status": ("devstack.tools.commands", "parser"),
    "submit": ("devstack.tools.commands", "parser"),
    "logs": ("devstack.tools.commands", "parser"),
    "replay": ("devstack.tools.commands", "parser"),
    "wait": ("devstack.tools.wait", "parser"),
    "demo": ("devstack.tools.demo", "parser"),
    "metrics": ("devstack.tools.metrics", "parser"),
    "request": ("devstack.tools.request_view", "parser"),
    "cancel": ("devstack.tools.control", "parser"),
    "retry": ("devstack.tools.control", "parser"),
}
COMPLETION_SHELLS = ("bash", "zsh", "fish", "tcsh")


def version() -> str:
    return importlib.metadata.version("eventbatch")


def build_parser(completing: bool = False) -> argparse.ArgumentParser:
    """The top-level parser; `completing`: with the delegated commands' own options (imports their modules)."""
    parser = argparse.ArgumentParser(prog="eventbatch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"eventbatch {version()}")
    parser.add_argument("--no-color", action="store_true",
                        help="no colour in any output (also: the NO_COLOR environment variable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_up = sub.add_parser("up", help="start (or reuse) Azurite, the registry, the Batch emulator and the host")
    p_up.add_argument("--no-host", action="store_true", help="do not start the local Functions host")
    sub.add_parser("down", help="stop what `up` started")
    p_images = sub.add_parser("images", help="build the sample images and push them to the local registry; `images "
                                             "check`: read each pipeline image's config from its registry and check it")
    p_images.add_argument("check", nargs="?", choices=["check"], help=argparse.SUPPRESS)
    sub.add_parser("env", help="print the stack's environment (the contents of .devstack/env)")
    p_completion = sub.add_parser("completion", help="print the shell completion script (see README: Shell completion)")
    p_completion.add_argument("shell", choices=COMPLETION_SHELLS)
    for name, (_, _, help_text) in DELEGATED.items():
        if completing and name in PARSERS:
            module_name, function = PARSERS[name]
            own = getattr(importlib.import_module(module_name), function)(name)
            sub.add_parser(name, help=help_text, parents=[own], add_help=False, description=own.description)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer and exit
        argcomplete.autocomplete(build_parser(completing=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--no-color":
        os.environ["NO_COLOR"] = "1"  # for every part, also the delegated ones (https://no-color.org)
        argv = argv[1:]
    parser = build_parser()
    if argv[:2] == ["images", "check"]:
        from devstack.tools import image_check

        return _run(lambda: image_check.main(argv[2:]))
    if argv and argv[0] in DELEGATED:
        module_name, function, _ = DELEGATED[argv[0]]
        delegate = getattr(importlib.import_module(module_name), function)
        return _run(lambda: delegate(argv[1:]))
    args = parser.parse_args(argv)
    if args.command == "up":
        return _run(lambda: _up(with_host=not args.no_host))
    if args.command == "down":
        return _run(_down)
    if args.command == "images":
        return _run(_images)
    if args.command == "completion":
        print(argcomplete.shellcode(["eventbatch"], shell=args.shell), end="")
        return 0
    if args.command == "env":
        from devstack.common import paths

        if not paths.env_file().exists():
            print("no .devstack/env yet: run `make up`", file=sys.stderr)
            return 1
        print(paths.env_file().read_text(), end="")
        return 0
    parser.print_help()
    return 2


def _up(with_host: bool) -> int:
    from devstack.stack import lifecycle

    lifecycle.up(with_host=with_host)
    return 0


def _down() -> int:
    from devstack.stack import lifecycle

    lifecycle.down()
    return 0


def _images() -> int:
    """Build the sample images and push them to the stack's registry."""
    from devstack.stack import lifecycle
    from devstack.stack.engine import detect_engine
    from devstack.stack.ports import Ports
    from devstack.stack.sample_images import build_and_push

    engine = detect_engine()
    build_and_push(engine, lifecycle.stack_env(Ports.from_env(), engine)["REGISTRY_SERVER"])
    return 0


def _run(action) -> int:
    try:
        result = action()
    except StackError as err:
        print(f"eventbatch: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
