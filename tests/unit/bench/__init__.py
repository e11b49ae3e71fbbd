"""Unit tests of the benchmarks' helpers."""
