"""Unit tests of the Batch emulator's resource and output file staging."""
