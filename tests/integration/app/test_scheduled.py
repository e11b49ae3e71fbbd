"""A scheduled pipeline (pipelines.yaml `schedule:`) on the real stack: one occurrence over a prefix of N blobs is
one request of N runs with outputs, a blob over maxInputBytes is rejected with the reason, names outside the glob are
left alone, and firing the same occurrence again (a late or repeated timer) creates no new run or Batch task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.scheduled import fire
from shared import ids
from shared.schedules import occurrence_key

pytestmark = pytest.mark.integration
N = 6


def test_occurrence_runs_every_blob_under_the_prefix_once(app):
    for i in range(N):
        app.upload(f"nightly/batch/part-{i}.txt", f"line {i}\n".encode())
    app.upload("nightly/batch/too-big.txt", b"x" * 100)  # over maxInputBytes (64)
    app.upload("nightly/batch/notes.md", b"not *.txt\n")  # outside the schedule's glob
    app.upload("nightly/other/part-9.txt", b"outside the prefix\n")
    due = datetime(2026, 12, 4, 2, 0, 0, tzinfo=UTC)

    first = fire("nightly", "0 0 2 * * *", now=due.replace(second=2))
    assert first.status == "submitted"
    request_id = ids.request_id(occurrence_key("nightly", due), None, "")
    records = app.ctx.runs.by_request("nightly", request_id)
    runs = {rid: r for rid, r in records.items() if r.get("state") != "rejected"}
    assert sorted(r["inputName"] for r in runs.values()) == [f"nightly/batch/part-{i}.txt" for i in range(N)]
    rejected = [r for r in records.values() if r.get("state") == "rejected"]
    assert [r["inputName"] for r in rejected] == ["nightly/batch/too-big.txt"]
    assert "100 bytes" in rejected[0]["reason"] and "at most 64 bytes" in rejected[0]["reason"]

    # The same occurrence fired again an hour later (host restart, past due): nothing new.
    again = fire("nightly", "0 0 2 * * *", now=due.replace(hour=3))
    assert again.status == "duplicate"
    assert set(app.ctx.runs.by_request("nightly", request_id)) == set(records)

    done = app.wait_terminal("nightly", list(runs), timeout=180)
    assert {r["state"] for r in done.values()} == {"succeeded"}
    for r in done.values():
        i = r["inputName"].rsplit("-", 1)[-1].removesuffix(".txt")
        assert app.read_text(app.output_container, f"{r['inputName']}/result.txt") == f"LINE {i}\n"
