"""Account-level operations: the supported images and the node counts per pool."""

from __future__ import annotations

from devstack.batch_emulator.protocol.messages import Request, Response, json_response, list_response
from devstack.batch_emulator.supported_images import SUPPORTED_IMAGES

# Batch's node states in the camelCase of the nodecounts body (the node wire dicts use lower case).
_COUNT_KEYS = ("creating", "idle", "offline", "preempted", "rebooting", "reimaging", "running", "starting",
               "startTaskFailed", "leavingPool", "unknown", "unusable", "waitingForStartTask", "deallocated",
               "deallocating", "upgradingOS")
_COUNT_KEY_OF_STATE = {"waitingforstarttask": "waitingForStartTask", "starttaskfailed": "startTaskFailed",
                       "leavingpool": "leavingPool"}


def supported_images(req: Request) -> Response:
    return list_response(req, [dict(i) for i in SUPPORTED_IMAGES], lambda i: "/supportedimages",
                         "Microsoft.Azure.Batch.Protocol.Entities.Container.ImageInformationCollection")


def node_counts(req: Request) -> Response:
    items = []
    for pool in req.model.list_pools():
        dedicated = {"total": 0}
        low = {"total": 0}
        for n in req.model.list_nodes(pool["id"]):
            bucket = dedicated if n.get("isDedicated") else low
            key = _COUNT_KEY_OF_STATE.get(n["state"], n["state"])
            bucket[key] = bucket.get(key, 0) + 1
            bucket["total"] += 1
        items.append({"poolId": pool["id"], "dedicated": _fill_counts(dedicated), "lowPriority": _fill_counts(low)})
    body = {"odata.metadata": f"{req.base_url}/$metadata#poolnodecounts", "value": items}
    return json_response(200, body)


def _fill_counts(c: dict) -> dict:
    for key in _COUNT_KEYS:
        c.setdefault(key, 0)
    return c
