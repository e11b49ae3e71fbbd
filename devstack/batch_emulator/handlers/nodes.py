"""Compute node operations (``/pools/{pool}/nodes``...): list, get, and enable/disable task scheduling."""

from __future__ import annotations

from devstack.batch_emulator.protocol import odata
from devstack.batch_emulator.protocol.messages import (
    Request,
    Response,
    decorate,
    json_response,
    list_response,
)


def list_nodes(req: Request) -> Response:
    pool_id = req.params["pool"]
    nodes = req.model.list_nodes(pool_id)
    pool = req.model.get_pool(pool_id)
    return list_response(req, nodes, lambda n: f"/pools/{pool['id']}/nodes/{n['id']}", "nodes")


def get_node(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    node = req.model.get_node(req.params["pool"], req.params["node"])
    select = odata.parse_select(req.query.get("$select"))
    return json_response(200, decorate(req, node, f"/pools/{pool['id']}/nodes/{node['id']}", "nodes/@Element",
                                       select))


def node_scheduling(req: Request) -> Response:
    enable = req.segments[-1] == "enablescheduling"
    req.model.set_node_scheduling(req.params["pool"], req.params["node"], enable)
    return Response(200)
