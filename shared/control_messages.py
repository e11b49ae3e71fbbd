"""Control-queue messages (CONTROL_QUEUE, default `control`): cancel and retry on Azure without the CLI.

    {"action": "cancel", "runs": ["<run id>", ...] | "request": "<request id>" | "pipeline": "P", "state": "S",
     "by": "who asks (recorded as cancelledBy / retriedBy)", "reason": "why (cancel)"}
    {"action": "retry", "runs": [...] | "request": "<request id>", "force": false, "by": "..."}

The message runs shared.control's cancel_runs / retry_runs, the functions the CLI calls. A message that is not
one of these (not JSON, an unknown action or key, no selector, a pipeline that does not exist) is rejected once
with the reason, like a bad request: a `rejected` record (partition `unrouted`) and a message on the rejected queue,
never retried and never poisoned. A retry whose new attempts Batch did not take yet raises ControlDeferred, so the
host delivers the message again (the same retry again submits them; it creates nothing twice); on the message's
last delivery (host.json maxDequeueCount) they are failed `NotSubmitted` with the reason instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared import ids
from shared.app_context import AppContext
from shared.control import cancel_runs, retry_runs
from shared.deliveries import is_last_delivery
from shared.errors import Rejection
from shared.outcomes import UNROUTED, IntakeResult, fail_run, reject
from shared.redaction import redact_request_text
from shared.run_actions import ControlError, ControlReport, Selection
from shared.work_items import decode_request, shown

log = logging.getLogger("eventbatch.control")
KEYS = {"action", "runs", "request", "pipeline", "state", "by", "reason", "force"}
DEFAULT_BY = "control queue"
MAX_RUNS = 1000
MAX_TEXT = 500


class ControlDeferred(RuntimeError):
    """Some new attempts are recorded but Batch did not take them yet: deliver the message again."""


@dataclass(frozen=True)
class ControlCommand:
    action: str  # cancel | retry
    selection: Selection
    by: str = DEFAULT_BY
    reason: str | None = None
    force: bool = False


def _text(data: dict, key: str, limit: int = MAX_TEXT) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Rejection("schema", f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def parse_control(body: bytes | str) -> ControlCommand:
    """The command a control message asks for; Rejection naming what is wrong."""
    data = decode_request(body)
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise Rejection("schema", f"unknown field(s) {', '.join(shown(k, 40) for k in unknown)}; a control message "
                                  f"has {', '.join(sorted(KEYS))}")
    action = data.get("action")
    if action not in ("cancel", "retry"):
        raise Rejection("schema", f"action must be \"cancel\" or \"retry\", not {shown(str(action), 40)}")
    runs = data.get("runs", [])
    if not isinstance(runs, list) or len(runs) > MAX_RUNS or not all(isinstance(r, str) and r for r in runs):
        raise Rejection("schema", f"runs must be a list of at most {MAX_RUNS} run ids (strings)")
    if not isinstance(data.get("force", False), bool):
        raise Rejection("schema", "force must be true or false")
    if action == "cancel" and data.get("force"):
        raise Rejection("schema", "force belongs to retry (a succeeded run is run again); a cancel has no force")
    selection = Selection(runs=tuple(r[:100] for r in runs), request=_text(data, "request", 100),
                          pipeline=_text(data, "pipeline", 100), state=_text(data, "state", 20))
    return ControlCommand(action, selection, by=_text(data, "by", 200) or DEFAULT_BY, reason=_text(data, "reason"),
                          force=bool(data.get("force")))


def handle_control_message(ctx: AppContext, body: bytes | str, message_id: str | None = None,
                           dequeue_count: int | None = 1) -> ControlReport | IntakeResult:
    """Run one control message: its report, or the IntakeResult of its rejection."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        command = parse_control(body)
        try:
            if command.action == "cancel":
                report = cancel_runs(ctx, command.selection, command.by, command.reason)
            else:
                report = retry_runs(ctx, command.selection, command.by, command.force)
        except ControlError as exc:
            raise Rejection("schema", str(exc)) from None
    except Rejection as exc:
        run_id = ids.rejection_id("control", message_id or "", text if not message_id else "")
        return reject(ctx, partition=UNROUTED, run_id=run_id, rejection=exc, source="control",
                      payload=redact_request_text(text), fields={"messageId": message_id})
    if report.pending and not is_last_delivery(dequeue_count, ctx.settings.environ):
        raise ControlDeferred(f"{len(report.pending)} new attempt(s) not taken by Batch yet: "
                              f"{report.pending[0].detail}")
    for pending in report.pending:  # the last delivery: end them with the reason rather than leave them waiting
        reason = (f"not submitted to Batch after {dequeue_count} deliveries of its control message; "
                  f"{pending.detail}")[:1000]
        fail_run(ctx, pending.pipeline, pending.new_run_id, reason, "NotSubmitted")
    return report
