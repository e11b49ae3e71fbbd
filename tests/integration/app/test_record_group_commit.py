"""Run records written by concurrent intake invocations share table transactions, and each caller still gets
its own answer (Azurite's table service)."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared.records import RunStore

pytestmark = [pytest.mark.integration]


class _Count(SansIOHTTPPolicy):
    def __init__(self):
        self.requests = 0
        self._lock = threading.Lock()

    def on_request(self, request):
        with self._lock:
            self.requests += 1


@pytest.fixture
def store(stack):
    from azure.data.tables import TableServiceClient

    counter = _Count()
    service = TableServiceClient.from_connection_string(stack.storage_connection_string, per_call_policies=[counter])
    name = f"group{secrets.token_hex(4)}"
    table = service.create_table(name)
    counter.requests = 0
    try:
        yield RunStore(table), counter
    finally:
        service.delete_table(name)


def _create_all(store: RunStore, run_ids: list[str], threads: int = 16) -> list[tuple[bool, dict]]:
    start = threading.Barrier(threads)

    def one(run_id):
        try:
            start.wait(timeout=0.5)  # the first callers start together; later ones go when a thread is free
        except threading.BrokenBarrierError:
            pass
        return store.create("transform", run_id, "received", {"pipeline": "transform", "kind": "task"})

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, run_ids))


def test_concurrent_creates_share_transactions_and_every_record_and_inbox_entry_is_stored(store):
    runs, counter = store
    ids = [f"transform-{i:03d}{secrets.token_hex(3)}" for i in range(64)]
    answers = _create_all(runs, ids)
    assert all(created for created, _ in answers)
    assert [record["RowKey"] for _, record in answers] == ids  # each caller got its own record back
    assert all(record["_etag"] for _, record in answers)
    assert counter.requests < len(ids) / 2, counter.requests  # one transaction each would be 64
    stored = {r["RowKey"] for r in runs.query("PartitionKey eq 'transform'")}
    assert stored == set(ids)
    assert {e["runId"] for e in runs.inbox("transform")} == set(ids)
    # an ETag from a shared transaction moves its run like any other
    moved = runs.advance("transform", ids[5], "submitted", {"jobId": "j"}, record=answers[5][1])
    assert moved is not None and moved["state"] == "submitted"


def test_a_duplicate_in_a_shared_transaction_gets_the_existing_record_and_the_others_are_created(store):
    runs, counter = store
    old = "transform-old" + secrets.token_hex(3)
    made, first = runs.create("transform", old, "received", {"pipeline": "transform", "kind": "task"})
    assert made
    runs.advance("transform", old, "submitted", {"jobId": "j"}, record=first)
    ids = [f"transform-n{i:02d}{secrets.token_hex(3)}" for i in range(30)]
    mixed = ids[:10] + [old] + ids[10:20] + [ids[0]] + ids[20:]  # an old run and a run twice, among new ones
    counter.requests = 0
    answers = _create_all(runs, mixed)
    assert counter.requests < len(mixed) / 2, counter.requests  # the duplicates did not split the group up
    by_id: dict[str, list[tuple[bool, dict]]] = {}
    for run_id, answer in zip(mixed, answers, strict=True):
        by_id.setdefault(run_id, []).append(answer)
    assert by_id[old] == [(False, by_id[old][0][1])] and by_id[old][0][1]["state"] == "submitted"
    assert sorted(created for created, _ in by_id[ids[0]]) == [False, True]  # created once, found once
    assert all(created for run_id in ids[1:] for created, _ in by_id[run_id])
    assert {r["RowKey"] for r in runs.query("PartitionKey eq 'transform'")} == set(ids) | {old}
