"""A local Azure Functions host for Python v2 apps: drives function_app.py's triggers against Azurite."""
