"""The `eventbatch` command: run the local stack and look at what the app did.

Subcommands that belong to one part of the stack are dispatched to that part's own `main(argv)`, so each part
keeps its options next to its code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from devstack.services import StackError

# name -> (module, help); each module has main(argv) -> int | None
DELEGATED = {
    "batch-emulator": ("devstack.batch_emulator.server", "run the Azure Batch emulator in the foreground"),
    "func-host": ("devstack.func_host.__main__", "run the local Functions host in the foreground"),
    "autoscale": ("devstack.batch_emulator.autoscale.cli", "evaluate or simulate Batch autoscale formulas"),
    "status": ("devstack.app_cli", "table of runs: input, pipeline, state, duration, exit code, outputs"),
    "submit": ("devstack.app_cli", "upload files or send a request to a pipeline"),
    "logs": ("devstack.app_cli", "stdout/stderr of a run"),
    "replay": ("devstack.app_cli", "count or move back poisoned messages and dead-lettered events (--apply)"),
    "demo": ("devstack.demo", "run the sample work end to end and show the results"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="eventbatch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_up = sub.add_parser("up", help="start (or reuse) Azurite, the registry, the Batch emulator and the host")
    p_up.add_argument("--no-host", action="store_true", help="do not start the local Functions host")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("images", help="build the sample images and push them to the local registry; `images check`: "
                                  "read each pipeline image's config from its registry and check it")
    sub.add_parser("env", help="print the stack's environment (the contents of .devstack/env)")
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    if argv[:2] == ["images", "check"]:
        from devstack import image_check

        return _run(lambda: image_check.main(argv[2:]))
    if argv and argv[0] in DELEGATED:
        module_name, _ = DELEGATED[argv[0]]
        module = importlib.import_module(module_name)
        rest = argv[1:] if module_name != "devstack.app_cli" else argv
        return _run(lambda: module.main(rest))
    args = parser.parse_args(argv)
    if args.command == "up":
        from devstack import stack

        return _run(lambda: stack.up(with_host=not args.no_host) and 0)
    if args.command == "down":
        from devstack import stack

        return _run(lambda: stack.down() and 0)
    if args.command == "images":
        from devstack import stack
        from devstack.containers import detect_engine
        from devstack.images import build_and_push

        return _run(lambda: build_and_push(detect_engine(), stack.stack_env(stack.Ports.from_env(),
                                                                              detect_engine())["REGISTRY_SERVER"])
                    and 0)
    if args.command == "env":
        from devstack import paths

        if not paths.env_file().exists():
            print("no .devstack/env yet: run `make up`", file=sys.stderr)
            return 1
        print(paths.env_file().read_text(), end="")
        return 0
    parser.print_help()
    return 2


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
