"""Unit tests of the Batch emulator's container runtimes."""
