"""Unit tests of the local Functions host."""
