"""Emulator-only operations under ``/_emulator/`` that Batch does not have: levers for tests and demos.

They are authenticated like every Batch call (SharedKey, with ``api-version``), so only the account's key holder
can pull them; the unauthenticated ``/_emulator/health`` is answered by the HTTP server itself.

    POST /_emulator/pools/{pool}/nodes/{node}/preempt?api-version=...   body (optional): {"recoverAfterSeconds": 5}

preempts one Spot node now (see preemption.py): 200 with the node, which shows ``preempted``; 409
``NodeIsDedicated`` for a dedicated node, 409 ``NodeNotPreemptible`` when it is already preempted or leaving.
"""

from __future__ import annotations

import math

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol.messages import Request, Response, decorate, json_response


def preempt_node(req: Request) -> Response:
    body = req.json()
    unknown = sorted(set(body) - {"recoverAfterSeconds"})
    if unknown:
        raise errors.invalid_property(unknown[0], body[unknown[0]], "The only property of a preempt request is "
                                      "recoverAfterSeconds")
    recover_after = body.get("recoverAfterSeconds", req.service.preempter.settings.duration)
    if isinstance(recover_after, bool) or not isinstance(recover_after, (int, float)) or not (
            math.isfinite(recover_after) and recover_after >= 0):
        raise errors.invalid_property("recoverAfterSeconds", recover_after, "Must be a number of seconds, 0 or "
                                      "more")
    pool = req.model.get_pool(req.params["pool"])
    node = req.model.preempt_node(pool["id"], req.params["node"], float(recover_after))
    return json_response(200, decorate(req, node, f"/pools/{pool['id']}/nodes/{node['id']}", "nodes/@Element",
                                       None))
