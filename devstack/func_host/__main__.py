"""``python -m devstack.func_host``: see :mod:`devstack.func_host.cli`."""

import sys

from devstack.func_host.cli import main

if __name__ == "__main__":
    sys.exit(main())
