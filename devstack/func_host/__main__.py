"""``python -m devstack.func_host``: see :mod:`devstack.func_host.cli`."""

import sys

from devstack.func_host import call_counter
from devstack.func_host.cli import main

if __name__ == "__main__":
    call_counter.activate_from_env()  # benchmarks only: off unless EVENTBATCH_CALL_COUNTER_FILE is set
    sys.exit(main())
