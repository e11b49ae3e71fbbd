"""End-to-end tests: the whole stack, the CLI, faults and restarts."""
