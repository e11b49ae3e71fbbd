"""The emulator's HTTP protocol: server, routing, envelope, SharedKey auth, OData; imports no handler."""
