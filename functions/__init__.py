"""Trigger adapters: one module per trigger, each a Blueprint that parses its input and calls shared/."""
