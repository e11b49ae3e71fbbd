"""The domain library deployed with the app: config, intake, tasks, submission, records, completion."""
