"""SharedKey verification exactly as azure-batch 15.1 and 14.x sign (see reference/batch-shared-key.md).

The string to sign is rebuilt from the request as received: verb, the eleven standard headers, the ``ocp-*``
headers sorted, ``/account`` + raw URL path, then each query parameter (URL-decoded value) on its own line.
15.1 sorts query names case-sensitively without lower-casing them; the documented form lower-cases them; both are
accepted, since they differ only when a client uses upper-case names (e.g. ``timeOut``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs

from devstack.batch_emulator import errors

_SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
    "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)


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
           accounts: Mapping[str, bytes]) -> str:
    """Return the authenticated account name, or raise BatchError (401 missing, 403 wrong)."""
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
            return account
    raise errors.auth_failed("The MAC signature found in the HTTP request is not the same as any computed "
                             "signature.")
