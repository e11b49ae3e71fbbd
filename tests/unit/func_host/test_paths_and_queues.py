"""Blob path patterns, queue body decoding and polling back-off."""

import base64
import random

import pytest

from devstack.func_host.backoff import Backoff
from devstack.func_host.blob_path import parse_blob_path
from devstack.func_host.clients import decode_body, encode_body
from devstack.func_host.errors import ConfigError


def test_name_is_greedy_and_spans_slashes():
    path = parse_blob_path("input/{name}", "f")
    assert path.container == "input" and path.prefix == ""
    assert path.match("a/b/c.txt") == {"name": "a/b/c.txt"}


def test_literal_prefix_narrows_listing_and_suffix_filters():
    path = parse_blob_path("%C%/uploads/{name}.csv", "f", {"C": "data"})
    assert (path.container, path.prefix) == ("data", "uploads/")
    assert path.match("uploads/2024/x.y.csv") == {"name": "2024/x.y"}
    assert path.match("uploads/x.txt") is None
    assert path.match("other/x.csv") is None


def test_two_parameters_and_literal_braces():
    path = parse_blob_path("cc1/{{raw}}/{a}-{b}", "f")
    assert path.prefix == "{raw}/"
    assert path.match("{raw}/x-y-z") == {"a": "x-y", "b": "z"}


def test_container_only_path_watches_every_blob():
    assert parse_blob_path("samples", "f").match("any/thing") == {"name": "any/thing"}


@pytest.mark.parametrize("path, fragment", [
    ("{c}/x", "literal, valid container name"),
    ("Bad_Container/{name}", "literal, valid container name"),
    ("cc1/{na me}", "malformed parameter"),
    ("cc1/x}", "unmatched '}'"),
])
def test_invalid_paths_are_config_errors(path, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("{", "\\{").replace("}", "\\}")):
        parse_blob_path(path, "function 'f'")


def test_base64_decoding_tolerates_line_breaks_and_rejects_garbage():
    payload = b"\x00\xffbinary and text"
    assert decode_body(base64.encodebytes(payload).decode(), "base64") == payload
    assert decode_body("not base64!", "base64") is None
    assert decode_body("abc", "base64") is None  # bad padding
    assert decode_body("not base64!", "none") == b"not base64!"
    assert decode_body(encode_body(payload, "base64"), "base64") == payload


def test_backoff_doubles_with_jitter_up_to_the_maximum_and_resets():
    backoff = Backoff(2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    assert delays[0] == pytest.approx(0.1)
    for previous, current in zip(delays, delays[1:], strict=False):
        if current < 2.0:
            assert 1.6 * previous <= current <= 2.4 * previous
    assert max(delays) == 2.0 and delays[-1] == 2.0
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_backoff_is_randomized():
    first, second = Backoff(60, rng=random.Random(1)), Backoff(60, rng=random.Random(2))
    first.next_delay(), second.next_delay()
    assert first.next_delay() != second.next_delay()


def test_trigger_parameter_types_are_checked_at_start():
    import azure.functions as func
    from azurefunctions.extensions.bindings import blob as blobtypes

    from devstack.func_host.bindings import check_trigger_annotation
    from devstack.func_host.errors import UnsupportedFeatureError

    for trigger, ok in [("queueTrigger", [None, str, bytes, func.QueueMessage]),
                        ("blobTrigger", [None, str, bytes, func.InputStream, blobtypes.BlobClient,
                                         blobtypes.ContainerClient, blobtypes.StorageStreamDownloader]),
                        ("timerTrigger", [None, func.TimerRequest])]:
        for annotation in ok:
            check_trigger_annotation("f", trigger, annotation)
    with pytest.raises(UnsupportedFeatureError, match="function 'f': queue trigger parameter type"):
        check_trigger_annotation("f", "queueTrigger", dict)
    with pytest.raises(UnsupportedFeatureError, match="blob trigger parameter type"):
        check_trigger_annotation("f", "blobTrigger", int)
