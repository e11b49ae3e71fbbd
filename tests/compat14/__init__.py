"""The azure-batch 14.2 track-1 client against the emulator (run in .venv-batch14)."""
