"""SharedKey verification exactly as azure-batch 15.1 and 14.x sign (see reference/batch-shared-key.md).

The string to sign is rebuilt from the request as received: verb, the eleven standard headers, the ``ocp-*``
headers sorted, ``/account`` + raw URL path, then each query parameter (URL-decoded value) on its own line.
15.1 sorts query names case-sensitively without lower-casing them; the documented form lower-cases them; both are
accepted, since they differ only when a client uses upper-case names (e.g. ``timeOut``).

Freshness: like Azure, a request must carry a date (``ocp-date``, which both SDKs add, or ``Date``) within
MAX_CLOCK_SKEW of the emulator's clock, so a captured request cannot be replayed later; without one, or with a
date too far off, it is 403 AuthenticationFailed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from devstack.batch_emulator import errors

_SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)
MAX_CLOCK_SKEW = timedelta(minutes=15)


def decode_key(account: str, key: str) -> bytes:
    """The HMAC key of an account; raises ValueError naming the account when the key is not base64."""
    try:
        return base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"--account {account}:KEY: KEY must be base64 (e.g. the well-known local key)") from exc


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], account: str,
                   lower_query_names: bool = False) -> str:
    lowered = {k.lower(): v for k, v in headers.items() if v}
    if method not in ("GET", "HEAD") and "content-length" not in lowered:
        lowered["content-length"] = "0"
    out = method + "\n" + "\n".join(str(lowered.get(h, "")) for h in _SIGNED_HEADERS) + "\n"
    ocp = sorted((k, v) for k, v in lowered.items() if "ocp-" in k)
    out += "".join(f"{k}:{v}\n" for k, v in ocp)
    out += f"/{account}{raw_path}"
    query = parse_qs(raw_query)
    if lower_query_names:
        items = sorted((k.lower(), v[0]) for k, v in query.items())
    else:
        items = [(k, query[k][0]) for k in sorted(query)]
    for name, value in items:
        if value:
            out += f"\n{name}:{value}"
    return out


def sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def verify(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
           accounts: Mapping[str, bytes], now: datetime | None = None) -> str:
    """Return the authenticated account name, or raise BatchError (401 missing, 403 wrong or stale)."""
    value = headers.get("Authorization") or headers.get("authorization")
    if not value:
        raise errors.BatchError(401, "AuthenticationFailed", "Server failed to authenticate the request. The "
                                "Authorization header is missing.", {"AuthenticationErrorDetail": "Missing "
                                                                     "Authorization header"})
    scheme, _, credential = value.partition(" ")
    if scheme != "SharedKey":
        raise errors.BatchError(401, "AuthenticationFailed", f"The emulator accepts SharedKey only, not {scheme}.",
                                {"AuthenticationErrorDetail": "Unsupported authentication scheme"})
    account, _, signature = credential.partition(":")
    key = accounts.get(account)
    if key is None:
        raise errors.auth_failed(f"Unknown account '{account}'")
    for lower in (False, True):
        expected = sign(key, string_to_sign(method, raw_path, raw_query, headers, account, lower))
        if hmac.compare_digest(expected, signature.strip()):
            check_fresh(headers, now or datetime.now(UTC))
            return account
    raise errors.auth_failed("The MAC signature found in the HTTP request is not the same as any computed "
                             "signature.")


def check_fresh(headers: Mapping[str, str], now: datetime) -> None:
    """403 unless the request's ocp-date (or Date) is an RFC 1123 date within MAX_CLOCK_SKEW of `now`."""
    lowered = {k.lower(): v for k, v in headers.items() if v}
    name = "ocp-date" if "ocp-date" in lowered else "date"
    value = lowered.get(name)
    if not value:
        raise errors.auth_failed("The request has no ocp-date or Date header; a signed request must be dated.")
    try:
        sent = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        sent = None
    if sent is None or sent.tzinfo is None:
        raise errors.auth_failed(f"The {name} header {value!r} is not an RFC 1123 date such as "
                                 "'Sat, 28 Nov 2026 12:11:03 GMT'.")
    if abs(now - sent) > MAX_CLOCK_SKEW:
        raise errors.auth_failed(f"Request date header too old or too far in the future: {name} {value!r} is more "
                                 f"than {int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes from the server's "
                                 f"time {now.strftime('%a, %d %b %Y %H:%M:%S GMT')}.")
