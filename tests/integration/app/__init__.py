"""The function app against Azurite, the registry and a private Batch emulator."""
