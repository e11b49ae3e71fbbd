"""Unit tests of shared/ (the function app's core: pipelines, task specs, submitter, names)."""
