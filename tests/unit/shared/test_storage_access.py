"""How tasks reach Storage: key SAS (local), user-delegation SAS (app identity), identityReference (pool identity).

Each SAS names the narrowest resource the service accepts, carries only the permissions its step needs, and lasts
as long as the task may run (docs/architecture.md, "Storage access per run")."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.blob import UserDelegationKey

from shared.errors import ConfigError
from shared.settings import AZURITE_KEY, load_settings
from shared.storage import blob_url
from shared.task_access import KeySasAccess, UserDelegationSasAccess
from shared.task_spec import (
    build_barrier_task,
    build_merge_task,
    build_task,
    sas_lifetime,
    with_completion_marker,
)
from shared.work_items import BlobInfo, Overrides, WorkItem

ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"
NOW = datetime(2026, 11, 28, 13, 7, tzinfo=UTC)


def _query(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_blob_urls_percent_encode_hostile_names():
    assert blob_url(ENDPOINT, "input", "a b/$(x);`y`'\"é.txt") == \
        ENDPOINT + "/input/a%20b/%24%28x%29%3B%60y%60%27%22%C3%A9.txt"


def test_key_sas_is_read_only_for_inputs_and_write_only_for_outputs():
    access = KeySasAccess(ENDPOINT, "devstoreaccount1", AZURITE_KEY, timedelta(hours=12), clock=lambda: NOW)
    read = _query(access.read_blob_url("input", "a.txt"))
    assert read["sp"] == "r" and read["sr"] == "b" and read["se"] == "2026-11-29T01:15:00Z"
    write = _query(access.write_container_url("output", "transform/a.txt"))
    assert write["sp"] == "cw" and write["sr"] == "c"  # create + overwrite; no read, list, delete or append
    assert set(_query(access.list_container_url("output"))["sp"]) == {"r", "l"}
    # Same quarter hour, same URL: tasks built for duplicate events are identical.
    later = KeySasAccess(ENDPOINT, "devstoreaccount1", AZURITE_KEY, timedelta(hours=12),
                         clock=lambda: NOW + timedelta(minutes=5))
    assert later.read_blob_url("input", "a.txt") == access.read_blob_url("input", "a.txt")


class KeyService:
    """Stands in for the service's user-delegation-key endpoint (the key is what the test is about)."""

    url = ENDPOINT + "/"
    account_name = "devstoreaccount1"

    def __init__(self):
        self.calls = 0

    def get_user_delegation_key(self, start, expiry):
        self.calls += 1
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid, key.signed_service, key.signed_version = "oid", "tid", "b", "2021-08-06"
        key.signed_start, key.signed_expiry = start.strftime("%Y-%m-%dT%H:%M:%SZ"), expiry.strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        key.value = AZURITE_KEY
        return key


def test_user_delegation_sas_fetches_the_key_once_and_signs_with_it():
    service = KeyService()
    access = UserDelegationSasAccess(service, timedelta(hours=2), clock=lambda: NOW)
    first = _query(access.read_blob_url("input", "a.txt"))
    access.write_container_url("output")
    assert service.calls == 1
    assert first["skoid"] == "oid" and first["sktid"] == "tid" and first["sp"] == "r"


def _expiries(spec):
    """`se` of every storage URL in a task body."""
    urls = [r.get("httpUrl") or r.get("storageContainerUrl") for r in spec.body.get("resourceFiles") or []]
    urls += [f["destination"]["container"]["containerUrl"] for f in spec.body["outputFiles"]]
    return {_query(u)["se"] for u in urls}


def _item(**kw):
    return WorkItem(pipeline="transform", blob=BlobInfo("input", "transform/a.txt", '"0x1"', 4), source="blob", **kw)


def test_a_task_sas_lasts_its_wall_clock_limit_times_its_attempts_plus_an_hour(config):
    access = KeySasAccess(ENDPOINT, "devstoreaccount1", AZURITE_KEY, timedelta(hours=12), clock=lambda: NOW)
    transform = config.pipeline("transform")  # PT10M, 1 retry: 13:07 + 2 x 10 min + 1 h = 14:27, rounded up
    spec = build_task(_item(), transform, access, now=NOW)
    assert spec.sas_lifetime == timedelta(minutes=80)
    assert _expiries(spec) == {"2026-11-28T14:30:00Z"}
    marked = with_completion_marker(spec, "job", access.write_container_url("markers", "job", spec.sas_lifetime), None)
    assert _expiries(marked) == {"2026-11-28T14:30:00Z"}
    # A request's overrides change the limits, and with them the SAS: 4 attempts of 30 min + 1 h = 16:07.
    longer = build_task(_item(overrides=Overrides(retries=3, max_wall_clock_time="PT30M")), transform, access, now=NOW)
    assert _expiries(longer) == {"2026-11-28T16:15:00Z"}
    # The merge task reads and writes for its own limits (wordcount: PT10M, no retry).
    merge = build_merge_task(config.pipeline("wordcount"), "req1", ["t1"], access, now=NOW)
    assert _expiries(merge) == {"2026-11-28T14:30:00Z"}
    # A barrier task uploads only its marker: PT5M, one retry -> 13:07 + 1 h 10 min.
    barrier = build_barrier_task(config.pipeline("wordcount"), "req1", 0, ["t1"], "merge", now=NOW)
    assert barrier.sas_lifetime == timedelta(minutes=70)


def test_sas_validity_caps_the_lifetime_and_unbounded_tasks_get_exactly_it(config):
    access = KeySasAccess(ENDPOINT, "devstoreaccount1", AZURITE_KEY, timedelta(hours=2), clock=lambda: NOW)
    longer = build_task(_item(overrides=Overrides(retries=3, max_wall_clock_time="PT30M")),
                        config.pipeline("transform"), access, now=NOW)
    assert _expiries(longer) == {"2026-11-28T15:15:00Z"}  # 13:07 + PT2H, not 16:15
    assert sas_lifetime(timedelta(minutes=10), -1) is None  # unlimited retries: no bound of its own
    assert sas_lifetime(None, 2) is None
    assert _query(access.read_blob_url("input", "a.txt", None))["se"] == "2026-11-28T15:15:00Z"


def test_on_a_hierarchical_namespace_the_output_sas_is_the_run_directory_only():
    access = KeySasAccess(ENDPOINT, "devstoreaccount1", AZURITE_KEY, timedelta(hours=12), clock=lambda: NOW,
                          hierarchical=True)
    url = access.write_container_url("output", "transform/transform/a b.txt", timedelta(hours=1))
    assert url.split("?")[0] == ENDPOINT + "/output"  # Batch appends each file's path to the container URL
    q = _query(url)
    assert q["sr"] == "d" and q["sdd"] == "3" and q["sp"] == "cw" and q["se"] == "2026-11-28T14:15:00Z"
    # Input reads stay one blob; a merge's listing stays the container (List Blobs is a container operation).
    assert _query(access.read_blob_url("input", "a.txt"))["sr"] == "b"
    assert _query(access.list_container_url("output"))["sr"] == "c"
    # No prefix (nothing narrower to name): the container, still write-only.
    assert _query(access.write_container_url("output"))["sr"] == "c"


def test_the_hierarchical_namespace_setting_is_validated():
    base = {"EVENTBATCH_STORAGE": "UseDevelopmentStorage=true",
            "BATCH_ACCOUNT_URL": "http://127.0.0.1:8095", "BATCH_ACCOUNT_NAME": "a", "BATCH_ACCOUNT_KEY": "k"}
    assert load_settings(base).hierarchical_namespace is False
    assert load_settings({**base, "STORAGE_HIERARCHICAL_NAMESPACE": "true"}).hierarchical_namespace is True
    with pytest.raises(ConfigError, match="STORAGE_HIERARCHICAL_NAMESPACE"):
        load_settings({**base, "STORAGE_HIERARCHICAL_NAMESPACE": "maybe"})


def test_a_user_delegation_sas_never_outlives_its_key_and_p7d_does_not_fetch_a_key_per_task():
    service, now = KeyService(), [NOW]
    access = UserDelegationSasAccess(service, timedelta(days=7), clock=lambda: now[0])
    for _ in range(50):
        q = _query(access.read_blob_url("input", "a.txt"))  # no lifetime: the whole SAS_VALIDITY
        assert q["se"] <= q["ske"]
    assert service.calls == 1
    assert datetime.fromisoformat(q["ske"]) - NOW <= timedelta(days=7)
    # Short task SAS are signed with the same key; a key is fetched again only once the held one ends too soon.
    _query(access.read_blob_url("input", "a.txt", timedelta(hours=1)))
    assert service.calls == 1
    now[0] = NOW + timedelta(hours=2)
    q = _query(access.read_blob_url("input", "a.txt"))
    assert service.calls == 2 and q["se"] <= q["ske"]
