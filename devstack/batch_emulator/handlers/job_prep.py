"""GET /jobs/{job}/jobpreparationandreleasetaskstatus: per node, the job's preparation and release task runs."""

from __future__ import annotations

from devstack.batch_emulator.protocol.messages import Request, Response, list_response


def prep_release_status(req: Request) -> Response:
    items = req.model.job_prep_status(req.params["job"])
    resp = list_response(req, items, lambda e: f"/pools/{e['poolId']}/nodes/{e['nodeId']}",
                         "jobpreparationandreleasetaskstatuslist")
    return resp
