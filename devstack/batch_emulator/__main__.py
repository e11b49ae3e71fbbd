"""``python -m devstack.batch_emulator``: see :func:`devstack.batch_emulator.server.main`."""

import sys

from devstack.batch_emulator.server import main

if __name__ == "__main__":
    sys.exit(main())
