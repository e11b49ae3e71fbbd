"""Unit tests of the `eventbatch` user tools (app access, registry client, runs view)."""
