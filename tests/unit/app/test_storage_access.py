"""How tasks reach Storage: key SAS (local), user-delegation SAS (app identity), identityReference (pool identity)."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from azure.storage.blob import UserDelegationKey

from shared.settings import AZURITE_KEY
from shared.storage import KeySasAccess, UserDelegationSasAccess, blob_url

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
    assert _query(access.write_container_url("output"))["sp"] in ("acw", "cwa", "wac", "awc")
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
