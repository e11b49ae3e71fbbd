"""The emulator's HTTP protocol: server, routing, request/response envelope, SharedKey auth and OData; no handlers."""
