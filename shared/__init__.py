"""eventbatch's domain library: settings, pipelines, work items, task specs, submission, records, manifests.

Deployed with the function app. Nothing here imports azure.functions (except in type hints), so every module is
testable without a Functions host; Storage and Batch calls live in a few named modules (storage, records,
batch_client, submitter, submission, batcher, completion, reconcile).
"""
