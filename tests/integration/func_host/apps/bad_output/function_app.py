"""Test app: a queue trigger with a queue output binding, which the local host rejects at start."""

import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="in-items", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="out", queue_name="out-items", connection="AzureWebJobsStorage")
def forward(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(msg.get_body().decode())
