"""Unit tests of the Batch emulator's autoscale formulas, simulator and loop."""
