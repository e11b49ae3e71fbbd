"""The local stack's services (Azurite, registry, Batch emulator, Functions host) and their start/stop lifecycle."""
