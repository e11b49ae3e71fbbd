"""The demo and `eventbatch status` find exactly the runs they ask for, however many (Azurite's table service)."""

from __future__ import annotations

import secrets

import pytest

from devstack.tools import runs_view
from shared.records import RunStore

pytestmark = [pytest.mark.integration]


def test_run_id_lookups_return_exactly_the_wanted_runs(stack):
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(stack.storage_connection_string)
    name = f"runsq{secrets.token_hex(4)}"
    table = service.create_table(name)
    try:
        store = RunStore(table)
        ids = [f"transform-{i:02d}{secrets.token_hex(3)}" for i in range(40)]
        store.create_many("transform", [(run_id, {"pipeline": "transform"}) for run_id in ids])
        store.create_many("wordcount", [("wordcount-x", {"pipeline": "wordcount"})])
        wanted = ids[3:37:2] + ["transform-missing"]  # 17 found + 1 that does not exist: two filters of 14
        rows = runs_view.query_runs(store, pipeline="transform", run_ids=wanted)
        assert sorted(r.run_id for r in rows) == sorted(ids[3:37:2])
        across = runs_view.query_runs(store, run_ids=[ids[0], "wordcount-x"])
        assert sorted((r.pipeline, r.run_id) for r in across) == [("transform", ids[0]), ("wordcount", "wordcount-x")]
        assert [r.run_id for r in runs_view.query_runs(store, pipeline="wordcount")] == ["wordcount-x"]
    finally:
        service.delete_table(name)
