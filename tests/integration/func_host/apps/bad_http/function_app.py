"""Test app: an HTTP trigger, which the local host does not run; start-up must fail naming it."""

import azure.functions as func

app = func.FunctionApp()


@app.route(route="hello")
def hello_http(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("hi")
