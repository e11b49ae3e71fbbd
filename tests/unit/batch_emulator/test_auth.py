"""SharedKey verification agrees with what the SDKs sign, and rejects any change to a signed part."""

from __future__ import annotations

import base64

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from devstack.batch_emulator import errors
from devstack.batch_emulator.protocol import auth

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ACCOUNTS = {"acct": base64.b64decode(KEY)}


def signed(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> dict:
    req = HttpRequest(method, url, headers=headers or {}, content=body)
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential("acct", KEY))
    policy.on_request(PipelineRequest(req, PipelineContext(None)))
    return dict(req.headers)


def split(url: str):
    rest = url.split("://", 1)[1]
    path_query = rest[rest.index("/"):]
    path, _, query = path_query.partition("?")
    return path, query


@pytest.mark.parametrize("method,url,body", [
    ("GET", "http://h/jobs/job-1/tasks?api-version=2025-06-01&maxresults=1000&$filter=state%20eq%20%27completed%27"
            "&$select=id,state", None),
    ("POST", "http://h/jobs?api-version=2025-06-01", b'{"id":"j"}'),
    ("POST", "http://h/pools/p/disableautoscale?api-version=2025-06-01&timeOut=30", None),
    ("HEAD", "http://h/pools/p?api-version=2025-06-01", None),
])
def test_accepts_what_the_15_1_policy_signs(method, url, body):
    headers = {"Content-Type": "application/json; odata=minimalmetadata"} if body else {}
    if body:
        headers["Content-Length"] = str(len(body))
    h = signed(method, url, body, headers)
    if method not in ("GET", "HEAD") and "Content-Length" not in h:
        h["Content-Length"] = "0"  # what the transport sends for an empty POST
    path, query = split(url)
    assert auth.verify(method, path, query, h, ACCOUNTS) == "acct"


def test_reference_example_string_to_sign():
    text = auth.string_to_sign("GET", "/jobs/job-1/tasks", "api-version=2025-06-01&maxresults=1000&%24filter=state"
                               "%20eq%20%27completed%27&%24select=id%2Cstate",
                               {"ocp-date": "Sat, 28 Nov 2026 12:11:03 GMT"}, "fakeacct")
    assert text == ("GET\n\n\n\n\n\n\n\n\n\n\n\nocp-date:Sat, 28 Nov 2026 12:11:03 GMT\n/fakeacct/jobs/job-1/tasks\n"
                    "$filter:state eq 'completed'\n$select:id,state\napi-version:2025-06-01\nmaxresults:1000")


@pytest.mark.parametrize("change", ["path", "query", "date", "body-length", "account", "key"])
def test_any_tampering_is_authentication_failed(change):
    url = "http://h/pools/p/resize?api-version=2025-06-01"
    body = b'{"targetDedicatedNodes":2}'
    h = signed("POST", url, body, {"Content-Length": str(len(body)), "Content-Type": "application/json"})
    path, query = split(url)
    accounts = dict(ACCOUNTS)
    if change == "path":
        path = "/pools/other/resize"
    elif change == "query":
        query += "&maxresults=5"
    elif change == "date":
        h["ocp-date"] = "Mon, 01 Jan 2024 00:00:00 GMT"
    elif change == "body-length":
        h["Content-Length"] = "99"
    elif change == "account":
        h["Authorization"] = h["Authorization"].replace("SharedKey acct:", "SharedKey other:")
    elif change == "key":
        accounts["acct"] = b"another key"
    with pytest.raises(errors.BatchError) as err:
        auth.verify("POST", path, query, h, accounts)
    assert err.value.status == 403 and err.value.code == "AuthenticationFailed"


def test_missing_or_bearer_auth_is_401():
    for headers in ({}, {"Authorization": "Bearer abc"}):
        with pytest.raises(errors.BatchError) as err:
            auth.verify("GET", "/pools", "api-version=2025-06-01", headers, ACCOUNTS)
        assert err.value.status == 401


def test_key_must_be_base64():
    with pytest.raises(ValueError, match="--account acct"):
        auth.decode_key("acct", "not base64!!")


def _sign_with(headers: dict, method: str = "GET", path: str = "/pools", query: str = "api-version=2025-06-01"):
    text = auth.string_to_sign(method, path, query, headers, "acct")
    return {**headers, "Authorization": f"SharedKey acct:{auth.sign(ACCOUNTS['acct'], text)}"}


def test_a_correctly_signed_request_without_a_date_is_refused():
    with pytest.raises(errors.BatchError) as err:
        auth.verify("GET", "/pools", "api-version=2025-06-01", _sign_with({}), ACCOUNTS)
    assert err.value.status == 403 and err.value.code == "AuthenticationFailed"
    assert "ocp-date" in err.value.values["AuthenticationErrorDetail"]


@pytest.mark.parametrize("minutes,accepted", [(0, True), (14, True), (-14, True), (16, False), (-16, False),
                                              (-60 * 24 * 365, False)])
def test_a_signed_date_more_than_15_minutes_off_is_refused(minutes, accepted):
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    now = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    for header in ("ocp-date", "Date"):
        h = _sign_with({header: format_datetime(now + timedelta(minutes=minutes), usegmt=True)})
        if accepted:
            assert auth.verify("GET", "/pools", "api-version=2025-06-01", h, ACCOUNTS, now=now) == "acct"
        else:
            with pytest.raises(errors.BatchError) as err:
                auth.verify("GET", "/pools", "api-version=2025-06-01", h, ACCOUNTS, now=now)
            assert err.value.status == 403 and "15 minutes" in err.value.values["AuthenticationErrorDetail"]


def test_an_unparseable_signed_date_is_refused():
    h = _sign_with({"ocp-date": "yesterday"})
    with pytest.raises(errors.BatchError) as err:
        auth.verify("GET", "/pools", "api-version=2025-06-01", h, ACCOUNTS)
    assert err.value.status == 403 and "RFC 1123" in err.value.values["AuthenticationErrorDetail"]


def test_the_14_2_track1_signer_dates_its_requests():
    """The compat client (tests/compat14) must keep working: its SharedKeyAuth adds ocp-date like 15.1 does."""
    from pathlib import Path

    source = Path(__file__).resolve().parents[3] / ".venv-batch14/lib/python3.11/site-packages/azure/batch/batch_auth.py"
    if not source.exists():
        pytest.skip("the azure-batch 14.2 env (.venv-batch14) is not installed")
    assert "request.headers['ocp-date']" in source.read_text()
