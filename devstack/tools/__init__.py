"""The `eventbatch` commands that use the running app from outside: status, submit, logs, replay, demo, images check."""
