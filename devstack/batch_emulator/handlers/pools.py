"""Pool operations (``/pools``...): add, list, get, update, resize, autoscale and node removal.

The autoscale formula is checked and evaluated by the account's Autoscaler (autoscaler.py); the pool's state is
the model's.
"""

from __future__ import annotations

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol.messages import (
    Request,
    Response,
    accepted,
    check_conditions,
    created,
    entity_headers,
    get_response,
    json_response,
    list_response,
    without_secrets,
)


def _path(pool: dict) -> str:
    return f"/pools/{pool['id']}"


def create_pool(req: Request) -> Response:
    body = req.json()
    autoscaler = req.service.autoscaler
    if body.get("enableAutoScale"):
        autoscaler.check_formula(body.get("autoScaleFormula"))
    pool = req.model.create_pool(body)
    if pool.get("enableAutoScale"):
        autoscaler.evaluate_now(pool["id"])
    return created(req, pool, _path(pool))


def list_pools(req: Request) -> Response:
    return list_response(req, [without_secrets(p) for p in req.model.list_pools()], _path, "pools")


def get_pool(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    return get_response(req, without_secrets(pool), _path(pool), "pools/@Element")


def pool_exists(req: Request) -> Response:
    try:
        pool = req.model.get_pool(req.params["pool"])
    except errors.BatchError:
        return Response(404)
    cond = check_conditions(req, pool)
    return cond or Response(200, b"", entity_headers(pool))


def delete_pool(req: Request) -> Response:
    pool = req.model.get_pool(req.params["pool"])
    check_conditions(req, pool)
    req.model.delete_pool(req.params["pool"])
    return accepted()


def update_pool(req: Request) -> Response:
    pool = req.model.update_pool(req.params["pool"], req.json(), replace=req.method == "PUT" or
                                 req.segments[-1] == "updateproperties")
    status = 204 if req.segments[-1] == "updateproperties" else 200
    return accepted(status, pool, _path(pool), req)


def resize_pool(req: Request) -> Response:
    check_conditions(req, req.model.get_pool(req.params["pool"]))
    req.model.resize_pool(req.params["pool"], req.json())
    pool = req.model.get_pool(req.params["pool"])
    return accepted(202, pool, _path(pool), req)


def stop_resize(req: Request) -> Response:
    req.model.stop_resize(req.params["pool"])
    return accepted(202)


def enable_autoscale(req: Request) -> Response:
    body = req.json()
    formula = body.get("autoScaleFormula")
    autoscaler = req.service.autoscaler
    autoscaler.check_formula(formula)
    pool = req.model.enable_autoscale(req.params["pool"], formula, body.get("autoScaleEvaluationInterval"))
    autoscaler.evaluate_now(pool["id"])
    pool = req.model.get_pool(pool["id"])
    return accepted(200, pool, _path(pool), req)


def disable_autoscale(req: Request) -> Response:
    req.model.disable_autoscale(req.params["pool"])
    pool = req.model.get_pool(req.params["pool"])
    return accepted(200, pool, _path(pool), req)


def evaluate_autoscale(req: Request) -> Response:
    body = req.json()
    formula = body.get("autoScaleFormula")
    if not formula:
        raise errors.missing_property("autoScaleFormula")
    pool = req.model.get_pool(req.params["pool"])
    if not pool.get("enableAutoScale"):
        raise errors.conflict("AutoScalingNotEnabled", "The specified pool does not have automatic scaling "
                              "enabled.")
    run = req.service.autoscaler.evaluate(pool["id"], formula)
    body = {"odata.metadata": f"{req.base_url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"}
    body.update(run)
    return json_response(200, body)


def remove_nodes(req: Request) -> Response:
    body = req.json()
    ids = body.get("nodeList")
    if not ids:
        raise errors.missing_property("nodeList")
    if len(ids) > 100:
        raise errors.invalid_property("nodeList", len(ids), "At most 100 nodes can be removed per request")
    req.model.remove_nodes(req.params["pool"], ids, body.get("nodeDeallocationOption"))
    return accepted(202)
