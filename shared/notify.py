"""The app's outgoing messages about a run, sent once per run.

Whoever wins the ETag-guarded move of a run to a terminal state holds its notification claim (shared.records),
sends the one message here and marks the run `notified`, which also takes it out of the inbox. A worker that dies
between the move and the message leaves a claim that the safety net takes over once it is stale, so a message can
repeat only when a worker died after sending and before marking (or Storage stayed away longer than
the marking's retries): consumers that must never see a repeat dedupe on
`messageId` (`<run id>:<state>`, the same for every copy of a message). Delivery is at least once, with that key.
"""

from __future__ import annotations

from shared import quotas, telemetry
from shared.app_context import AppContext
from shared.batch_client import call


def message_id(run_id: str, state: str) -> str:
    return f"{run_id}:{state}"


def _send(ctx: AppContext, record: dict, message: dict, send) -> dict:
    run_id = record["RowKey"]
    message = {**message, "messageId": message_id(run_id, record.get("state") or message.get("state"))}
    send(message)
    # Marking is what keeps the safety net from sending the message again: it is retried through a Storage outage
    # (an Azurite restart) for up to half of NOTIFY_REPAIR_AFTER, not given up at the first error.
    call(lambda: ctx.runs.mark_notified(record["PartitionKey"], run_id), f"mark {run_id} notified",
         budget=ctx.settings.notify_repair_after.total_seconds() / 2)
    telemetry.run_ended(record)
    quotas.slot_freed(ctx, record)  # a run of a pipeline with maxConcurrentTasks ended: release its held runs
    return message


def notify_rejection(ctx: AppContext, record: dict, message: dict) -> dict:
    return _send(ctx, record, message, ctx.messenger.reject)


def notify_failure(ctx: AppContext, record: dict, message: dict) -> dict:
    return _send(ctx, record, message, ctx.messenger.completed)


def notify_completion(ctx: AppContext, record: dict, message: dict) -> dict:
    return _send(ctx, record, message, ctx.messenger.completed)
