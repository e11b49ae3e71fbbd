"""Test app: a timer that runs on startup and once a year otherwise."""

import azure.functions as func
from record import record

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 Jan *", run_on_startup=True)
def yearly(timer: func.TimerRequest, context: func.Context) -> None:
    record("start", fn="yearly", past_due=timer.past_due, invocation_id=context.invocation_id)


@app.timer_trigger(arg_name="timer", schedule="*/2 * * * * *")
def every_two_seconds(timer: func.TimerRequest) -> None:
    record("start", fn="every_two_seconds", past_due=timer.past_due)


@app.timer_trigger(arg_name="timer", schedule="0 0 * * * *", use_monitor=True)
def hourly(timer: func.TimerRequest) -> None:
    record("start", fn="hourly", past_due=timer.past_due, last=timer.schedule_status.get("Last"))
