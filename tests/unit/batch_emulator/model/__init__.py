"""In-process tests of the Batch emulator's service model (the task state machine), with a fake agent."""
