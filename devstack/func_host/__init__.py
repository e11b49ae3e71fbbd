"""A local Azure Functions host for Python v2 apps.

The real host (Azure Functions Core Tools) cannot be installed offline, so this package stands in for it:
it loads ``function_app.py`` the way the Python worker does and drives the app's queue, blob and timer
triggers against Azurite with the real host's semantics (batching, poison queues, blob receipts, NCRONTAB).
Run it with ``python -m devstack.func_host --app-dir DIR --settings FILE``.
"""
