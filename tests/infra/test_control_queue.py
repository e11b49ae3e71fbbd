"""The control queue on Azure: created with the other queues and named in the app's settings (the deploying user's
right to send to it is among test_bicep_security's EXPECTED_ROLES)."""

from __future__ import annotations

from tests.infra.bicep_model import app_settings, module_params, variable


def test_the_control_queue_is_created_and_the_app_is_told_its_name():
    assert variable("main.bicep", "queueNames")["control"] == "control"
    params = module_params("main.bicep", "storage")
    assert "queueNames.control" in params["queueNames"] and params["controlQueueName"] == "queueNames.control"
    assert app_settings().get("CONTROL_QUEUE") == "queueNames.control"
