"""Unit tests of the Batch emulator (protocol, model, validation)."""
