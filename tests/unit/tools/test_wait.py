"""`eventbatch wait`: exit codes, the growing poll interval, retried runs followed, one query per look."""

from __future__ import annotations

import io

from devstack.tools import ui, wait


class Runs:
    """A runs table that answers the queries wait makes, counting them (the point: how many reads per look)."""

    def __init__(self, records: list[dict]):
        self.records = {r["RowKey"]: r for r in records}
        self.queries: list[tuple[str, dict]] = []

    def query(self, clause: str, params: dict, select=None) -> list[dict]:
        self.queries.append((clause, params))
        if clause.startswith("RowKey ge"):
            return [r for k, r in self.records.items() if params["a"] <= k < params["b"]]
        if "requestId" in clause:
            return [r for r in self.records.values() if r.get("requestId") == params["r"]]
        wanted = {v for k, v in params.items() if k.startswith("r")}
        return [r for k, r in self.records.items() if k in wanted]


def rec(run_id: str, state: str, **more) -> dict:
    return {"PartitionKey": "p", "RowKey": run_id, "state": state, **more}


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


def bar() -> ui.Bar:
    return ui.Bar("waiting", None, "runs", io.StringIO(), None)


def run_watch(look, timeout=None):
    clock = Clock()
    return wait.watch(look, timeout, bar(), sleep=clock.sleep, clock=clock), clock


def test_all_succeeded_is_0_any_other_end_is_1(monkeypatch):
    ok = Runs([rec("a", "succeeded"), rec("b", "succeeded")])
    assert run_watch(wait.runs_looker(ok, ["a", "b"]))[0].exit_code() == 0
    rejected = Runs([rec("a", "succeeded"), rec("c", "rejected")])
    assert run_watch(wait.runs_looker(rejected, ["a", "c"]))[0].exit_code() == 1
    # the terminal states come from shared.records.TERMINAL (cancel adds "cancelled" there), never a list of its own
    monkeypatch.setattr(wait, "TERMINAL", (*wait.TERMINAL, "cancelled"))
    cancelled = Runs([rec("a", "succeeded"), rec("b", "cancelled")])
    assert run_watch(wait.runs_looker(cancelled, ["a", "b"]), timeout=5)[0].exit_code() == 1
    failed = Runs([rec("a", "succeeded"), rec("b", "failed")])
    assert run_watch(wait.runs_looker(failed, ["a", "b"]))[0].exit_code() == 1


def test_timeout_is_2_and_the_interval_grows_from_half_a_second_to_five():
    runs = Runs([rec("a", "running")])
    seen, clock = run_watch(wait.runs_looker(runs, ["a", "missing"]), timeout=40)
    assert seen.exit_code() == 2 and seen.missing == ["missing"]
    assert clock.sleeps[0] == 0.5 and clock.sleeps[1] == 0.75 and max(clock.sleeps) == 5.0
    assert clock.sleeps == sorted(clock.sleeps[:-1]) + clock.sleeps[-1:]  # growing (the last one: what was left)
    assert abs(clock.now - 40) < 1e-9
    assert len(runs.queries) == len(clock.sleeps) + 2  # one query per look, and one prefix lookup for "missing"


def test_many_run_ids_take_one_query_per_15():
    ids = [f"r{i:02d}" for i in range(31)]
    runs = Runs([rec(i, "succeeded") for i in ids])
    seen, _ = run_watch(wait.runs_looker(runs, ids))
    assert seen.exit_code() == 0 and len(runs.queries) == 3
    with_pipeline = Runs([rec(i, "succeeded") for i in ids])
    run_watch(wait.runs_looker(with_pipeline, ids, pipeline="p"))
    assert len(with_pipeline.queries) == 3 and all("PartitionKey eq @p" in q for q, _ in with_pipeline.queries)


def test_a_unique_prefix_is_enough_and_is_resolved_once():
    runs = Runs([rec("transform-abc1", "succeeded"), rec("transform-abd2", "running"), rec("transform-abd3", "running")])
    look = wait.runs_looker(runs, ["transform-abc", "transform-abd"])
    seen = look()
    assert "transform-abc1" == seen.records["transform-abc"]["RowKey"]
    assert seen.missing == ["transform-abd"]  # two matches: not guessed
    queries = len(runs.queries)
    look()
    assert len(runs.queries) == queries + 1  # later looks: one query, no prefix lookups


def test_a_retried_run_is_followed_to_its_new_attempt():
    runs = Runs([rec("a", "failed", supersededBy="a2"), rec("a2", "running", attempt=2, retryOf="a")])
    look = wait.runs_looker(runs, ["a"])
    first = look()
    assert first.ended == 0 and not first.done  # the old attempt no longer decides
    runs.records["a2"]["state"] = "succeeded"
    final = look()
    assert final.done and final.exit_code() == 0 and final.records["a"]["RowKey"] == "a2"


def test_a_request_counts_its_merge_and_skips_superseded_records():
    runs = Runs([rec("t1", "failed", requestId="q", supersededBy="t1b"), rec("t1b", "succeeded", requestId="q"),
                 rec("t2", "succeeded", requestId="q"), rec("m", "succeeded", requestId="q", kind="merge"),
                 rec("other", "failed", requestId="z")])
    seen, _ = run_watch(wait.request_looker(runs, "q"))
    assert seen.exit_code() == 0 and sorted(seen.records) == ["m", "t1b", "t2"]
    assert len(runs.queries) == 1


def test_a_request_with_no_records_yet_is_not_done():
    seen, _ = run_watch(wait.request_looker(Runs([]), "q"), timeout=3)
    assert seen.total == 0 and seen.exit_code() == 2


def test_usage_errors_exit_3_not_2(capsys):
    assert wait.main([]) == 3
    assert wait.main(["a", "--request", "q"]) == 3
    assert wait.main(["--timeout", "soon", "a"]) == 3
    assert wait.main(["a", "--timeout", "-1"]) == 3
    assert "--timeout" in capsys.readouterr().err
