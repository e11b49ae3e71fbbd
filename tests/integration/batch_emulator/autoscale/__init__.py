"""Autoscaled pools of a private emulator through azure-batch."""
