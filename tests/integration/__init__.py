"""Integration tests against real local services (Azurite, registry, Batch emulator, containers)."""
