"""The eventbatch function app: registers the trigger blueprints in functions/ and starts the metrics."""

import azure.functions as func

from functions.blob_intake import bp as blob_intake
from functions.control import bp as control
from functions.queue_intake import bp as queue_intake
from functions.reconciler import bp as reconciler
from functions.scheduled import bp as scheduled
from functions.submit_drain import bp as submit_drain
from functions.task_check import bp as task_check
from functions.task_marker import bp as task_marker
from shared import telemetry

telemetry.configure()  # metrics to Application Insights when the app has its connection string, else nothing
app = func.FunctionApp()
for blueprint in (blob_intake, queue_intake, task_marker, task_check, submit_drain, reconciler, scheduled, control):
    app.register_functions(blueprint)
