import re

import pytest

from shared import ids
from shared.errors import Rejection
from shared.names import check_blob_name, local_file_name

BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEPT = ["report (draft).txt", "it's \"quoted\".txt", "$(touch pwned).txt", "a;rm -rf x.txt", "`id`.txt",
        "café-menü 日本.txt", "dir/sub/file.txt", "a" * 900, "-leading-dash.txt", "*.txt", "100%.txt"]
REJECTED = [("line\nbreak.txt", "control character.*U\\+000A"), ("tab\there", "control character"),
            ("../escape.txt", "'..' path segment"), ("a/./b", "'.'"), ("a//b", "empty"), ("/abs", "empty"),
            ("back\\slash", "backslash"), ("x" * 1025, "at most 1024"), ("", "empty"),
            ("bidi\u202etxt.exe", "control character")]


@pytest.mark.parametrize("name", KEPT)
def test_hostile_but_harmless_names_are_accepted(name):
    check_blob_name(name)  # raises Rejection when a name is refused


@pytest.mark.parametrize("name,reason", REJECTED)
def test_names_that_cannot_be_carried_safely_are_rejected_with_a_reason(name, reason):
    with pytest.raises(Rejection, match=reason) as info:
        check_blob_name(name)
    assert info.value.code == "unsafe-name"


@pytest.mark.parametrize("name,expected", [
    ("transform/hello.txt", "hello.txt"), ("transform/quarterly report (draft).txt", "input.txt"),
    ("$(touch x)", "input"), ("a/.hidden", "input.hidden"), ("x/" + "b" * 200 + ".csv", "input.csv"),
])
def test_local_file_names_are_plain(name, expected):
    assert local_file_name(name) == expected


def test_task_ids_are_deterministic_valid_and_etag_sensitive():
    a = ids.blob_task_id("transform", "input", "transform/a.txt", '"0x1"')
    assert a == ids.blob_task_id("transform", "input", "transform/a.txt", '"0x1"')
    assert a != ids.blob_task_id("transform", "input", "transform/a.txt", '"0x2"')
    assert a != ids.blob_task_id("wordcount", "input", "transform/a.txt", '"0x1"')
    longest = ids.blob_task_id("p" * 24, "c", "x" * 1024, "e")
    for tid in (a, longest, ids.request_task_id("p" * 24, "k" * 30, "c", "n", "e"), ids.merge_task_id("p" * 24, "r")):
        assert BATCH_ID.match(tid) and len(tid) <= 64 and tid == tid.lower()


def test_hash_parts_cannot_be_shifted_into_a_collision():
    assert ids.blob_task_id("p", "ab", "c", "e") != ids.blob_task_id("p", "a", "bc", "e")


def test_request_ids_prefer_the_idempotency_key():
    assert ids.request_id("k1", "m1", "{}") == ids.request_id("k1", "m2", "{other}")
    assert ids.request_id(None, "m1", "{}") != ids.request_id(None, "m2", "{}")
    assert ids.request_task_id("wc", "r1", "c", "n", "e") != ids.request_task_id("wc", "r2", "c", "n", "e")


def test_job_ids_name_their_period():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 28, 13, 5, tzinfo=UTC)
    assert ids.job_id("eb", "transform", "day", now) == "eb-transform-20261128"
    hour = ids.job_id("eb", "word-count", "hour", now)
    assert hour == "eb-word-count-20261128t13"
    assert ids.job_period_start(hour, "eb") == datetime(2026, 11, 28, 13, tzinfo=UTC)
    assert ids.job_period_start("other-job", "eb") is None
