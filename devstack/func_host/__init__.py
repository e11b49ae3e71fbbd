"""A local Azure Functions host for Python v2 apps.

The real host (Azure Functions Core Tools) cannot be installed offline, so this package stands in for it:
it loads ``function_app.py`` the way the Python worker does and drives the app's queue, blob, timer and Event Grid
triggers against Azurite with the real host's semantics (batching, poison queues, blob receipts, NCRONTAB, the
Event Grid webhook), with a local stand-in for Event Grid's delivery (eventgrid_local).
Run it with ``python -m devstack.func_host --app-dir DIR --settings FILE``.
"""
