"""The real host's webhook for eventGridTrigger functions, on the host's loopback webhook server.

    POST /runtime/webhooks/eventgrid?functionName=<name>&code=<key>      (no ``Host.Functions.`` prefix here)

Semantics of the WebJobs Event Grid extension (HttpRequestProcessor, EventGridExtensionConfigProvider):
an unknown function is 404 (checked first); the ``aeg-event-type`` header then decides:
``SubscriptionValidation`` answers 200 ``{"validationResponse": <data.validationCode of the first event>}``;
``Notification`` takes an event array (or one event object), invokes the function once per event, all in
parallel, and answers when all have finished: 202 if every invocation succeeded, else 500 with the first failed
invocation's error message (Event Grid then resends the whole payload); ``Unsubscribe`` is 202; no header or any
other value is 400. The key check (401) comes before all of that, as the host's webhook layer does it.
"""

from __future__ import annotations

import json
import logging

from devstack.func_host.webhook import header, read_json_body

log = logging.getLogger("func_host")
PATH = "/runtime/webhooks/eventgrid"
EVENT_TYPE_HEADER = "aeg-event-type"


def _validation_code(body: object) -> str | None:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return (body[0].get("data") or {}).get("validationCode")
    if isinstance(body, dict):  # CloudEvents schema: one object whose data may be double-encoded
        data = body.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                return None
        return (data or {}).get("validationCode") if isinstance(data, dict) else None
    return None


class EventGridWebhook:
    """``functions``: function name -> EventGridListener (anything with ``invoke_all(events) -> [Outcome]``)."""

    def __init__(self, functions: dict):
        self.functions = functions

    def handle(self, query: dict, headers, body_stream) -> tuple[int, dict | list | str | None]:
        name = (query.get("functionName") or [""])[0]
        listener = self.functions.get(name)
        if listener is None:
            log.info("cannot find function: '%s', available function names: [%s]", name, ", ".join(self.functions))
            return 404, f"cannot find function: '{name}'"
        kind = (header(headers, EVENT_TYPE_HEADER) or "").strip().lower()
        if kind == "subscriptionvalidation":
            status, body = read_json_body(headers, body_stream)
            if status is not None:
                return status, body
            code = _validation_code(body)
            if code is None:
                return 400, {"error": "the validation event carries no data.validationCode"}
            log.info("perform handshake with eventGrid for function: %s", name)
            return 200, {"validationResponse": code}
        if kind == "notification":
            status, body = read_json_body(headers, body_stream)
            if status is not None:
                return status, body
            events = [body] if isinstance(body, dict) else body
            if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                return 400, {"error": "the body must be a JSON array of event objects, or one event object"}
            outcomes = listener.invoke_all(events, reason="EventGrid trigger fired (webhook)")
            failed = next((o for o in outcomes if not o.succeeded), None)
            if failed is not None:
                return 500, str(failed.error) if failed.error is not None else "function invocation failed"
            return 202, None
        if kind == "unsubscribe":
            return 202, None
        return 400, None
