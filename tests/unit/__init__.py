"""Unit tests: pure code, no services; folders mirror the source."""
