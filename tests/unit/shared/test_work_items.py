import pytest

from shared.errors import Rejection
from shared.work_items import (
    BlobInfo,
    BlobRef,
    PrefixRef,
    decode_request,
    parse_request,
    resolve_inputs,
    route_blob,
)

ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


def _rejected(fn, *args):
    with pytest.raises(Rejection) as info:
        fn(*args)
    return info.value


def test_blobs_route_by_container_prefix_and_glob(config):
    assert route_blob(config, "input", "transform/a b.txt").name == "transform"
    r = _rejected(route_blob, config, "input", "elsewhere/a.txt")
    assert r.code == "outside-policy" and "input/transform/*" in r.reason
    assert _rejected(route_blob, config, "other", "transform/a.txt").code == "outside-policy"
    assert _rejected(route_blob, config, "input", "transform/../x").code == "unsafe-name"


@pytest.mark.parametrize("body,code,words", [
    (b"{not json", "malformed", "not valid JSON"),
    (b"\xff\xfe", "malformed", "not UTF-8"),
    ("[1, 2]", "malformed", "not an object"),
])
def test_malformed_messages(body, code, words):
    r = _rejected(decode_request, body)
    assert r.code == code and words in r.reason


@pytest.mark.parametrize("data,code,words", [
    ({"inputs": ["data/a"]}, "schema", "'pipeline' is required"),
    ({"pipeline": "nope", "inputs": ["data/a"]}, "unknown-pipeline", "does not exist; known pipelines:"),
    ({"pipeline": "wordcount"}, "schema", "'inputs' is required"),
    ({"pipeline": "wordcount", "inputs": []}, "schema", "non-empty list"),
    ({"pipeline": "wordcount", "inputs": [7]}, "schema", "inputs[0]"),
    ({"pipeline": "wordcount", "inputs": ["Bad_Container/x"]}, "schema", "not a valid container name"),
    ({"pipeline": "wordcount", "inputs": ["data/a", "data/a"]}, "schema", "listed twice"),
    ({"pipeline": "wordcount", "inputs": ["data/a"], "extra": 1}, "schema", "unknown field(s) extra"),
    ({"pipeline": "wordcount", "inputs": ["data/a"], "idempotencyKey": "has space"}, "schema", "idempotencyKey"),
    ({"pipeline": "wordcount", "inputs": ["data/../a"]}, "unsafe-name", "'..'"),
    ({"pipeline": "wordcount", "inputs": ["data/a"], "overrides": {"environment": {"X": "1"}}},
     "outside-policy", "does not allow overriding environment"),
    ({"pipeline": "transform", "inputs": ["input/other/a.txt"]}, "outside-policy", "outside pipeline transform"),
    ({"pipeline": "transform", "inputs": ["input/transform/a"], "overrides": {"environment": {"INPUT_PATH": "/"}}},
     "outside-policy", "may not be set by a request"),
    ({"pipeline": "transform", "inputs": ["input/transform/a"], "overrides": {"maxWallClockTime": "PT1H"}},
     "outside-policy", "does not allow overriding maxWallClockTime"),
    ({"pipeline": "wordcount", "inputs": ["https://evil.example.com/devstoreaccount1/data/a"]},
     "outside-policy", "not in this app's storage account"),
    ({"pipeline": "wordcount", "inputs": [ACCOUNT + "/data/a?sig=x"]}, "schema", "SAS"),
])
def test_request_schema_and_policy(config, data, code, words):
    r = _rejected(parse_request, config, data, ACCOUNT)
    assert r.code == code and words in r.reason, r.reason


def test_request_inputs_in_all_three_forms(config):
    req = parse_request(config, {"pipeline": "wordcount", "idempotencyKey": "job-42", "inputs": [
        "data/a b.txt", {"container": "data", "name": "dir/c"}, ACCOUNT + "/data/caf%C3%A9%20%24%28x%29.txt"]},
        ACCOUNT)
    assert req.inputs == (BlobRef("data", "a b.txt"), BlobRef("data", "dir/c"), BlobRef("data", "café $(x).txt"))
    assert req.idempotency_key == "job-42"


def test_allowed_overrides_are_parsed(config):
    req = parse_request(config, {"pipeline": "transform", "inputs": ["input/transform/a"],
                                 "overrides": {"environment": {"TRANSFORM_MODE": "lower"}}}, ACCOUNT)
    assert dict(req.overrides.environment) == {"TRANSFORM_MODE": "lower"}


def test_missing_blobs_and_oversize_inputs_are_rejected(config):
    req = parse_request(config, {"pipeline": "transform", "inputs": ["input/transform/a", "input/transform/b"]},
                        ACCOUNT)
    r = _rejected(resolve_inputs, req, lambda ref: None if ref.name.endswith("b") else
                  BlobInfo(ref.container, ref.name, "e", 1))
    assert r.code == "missing-blob" and "input/transform/b" in r.reason
    r = _rejected(resolve_inputs, req, lambda ref: BlobInfo(ref.container, ref.name, "e", 10**9))
    assert r.code == "outside-policy" and "at most 104857600 bytes" in r.reason


def test_prefix_inputs_expand_to_the_blobs_under_them(config):
    req = parse_request(config, {"pipeline": "transform", "inputs": [
        {"container": "input", "prefix": "transform/batch-1/"}, "input/transform/batch-1/a"]}, ACCOUNT)
    assert req.inputs[0] == PrefixRef("input", "transform/batch-1/")
    listed = [BlobInfo("input", f"transform/batch-1/{c}", "e", 1) for c in "abc"]
    infos = resolve_inputs(req, lambda ref: BlobInfo(ref.container, ref.name, "e", 1), lambda ref, cap, keep: listed)
    assert sorted(i.name for i in infos) == [f"transform/batch-1/{c}" for c in "abc"]  # no duplicate for 'a'
    r = _rejected(resolve_inputs, req, lambda ref: BlobInfo(ref.container, ref.name, "e", 1), lambda ref, cap, keep: [])
    assert r.code == "missing-blob" and "transform/batch-1/*" in r.reason
    hostile = [BlobInfo("input", "transform/batch-1/x\ny", "e", 1)]
    req_one = parse_request(config, {"pipeline": "transform", "inputs": [{"container": "input",
                                                                          "prefix": "transform/batch-1/"}]}, ACCOUNT)
    assert _rejected(resolve_inputs, req_one, lambda ref: None, lambda ref, cap, keep: hostile).code == "unsafe-name"


def test_prefix_outside_the_policy_or_empty_is_rejected(config):
    r = _rejected(parse_request, config, {"pipeline": "transform", "inputs": [{"container": "input",
                                                                              "prefix": "other/"}]}, ACCOUNT)
    assert r.code == "outside-policy"
    r = _rejected(parse_request, config, {"pipeline": "wordcount", "inputs": [{"container": "data",
                                                                              "prefix": ""}]}, ACCOUNT)
    assert r.code == "unsafe-name" and "empty" in r.reason


def test_too_many_blobs_under_a_prefix(config):
    req = parse_request(config, {"pipeline": "wordcount", "inputs": [{"container": "data", "prefix": "p/"}]}, ACCOUNT)
    many = [BlobInfo("data", f"p/{i}", "e", 1) for i in range(5001)]
    assert "at most 5000" in _rejected(resolve_inputs, req, lambda r: None, lambda r, cap, keep: many[:cap]).reason


def _lister(blobs):
    """A listing as the app's StorageClients.list_blobs does it: the filter first, then the cap counts what it kept."""
    def lister(ref, cap, keep):
        kept = [b for b in blobs if keep(b)]
        return kept[:cap]
    return lister


def test_a_prefix_is_filtered_before_it_is_counted_and_nothing_is_dropped(tmp_path):
    """Issue 17.3: twice the pipeline's limit of blobs under the prefix, half outside its glob: every matching one
    is taken (none cut by a cap applied before the filter); more matching ones than the limit are rejected with
    the count, and nothing is dropped silently."""
    import yaml

    from shared.pipelines import load_config
    from tests.unit.shared.conftest import LOCAL, REPO

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    transform = next(p for p in doc["pipelines"] if p["name"] == "transform")
    transform["inputs"]["blob"]["glob"] = "*.txt"
    transform["maxInputs"] = 100
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump(doc))
    config = load_config(tmp_path / "pipelines.yaml", LOCAL)
    req = parse_request(config, {"pipeline": "transform", "inputs": [{"container": "input",
                                                                      "prefix": "transform/big/"}]}, ACCOUNT)
    blobs = [BlobInfo("input", f"transform/big/{i:05d}.{'txt' if i % 2 else 'csv'}", "e", 1) for i in range(200)]
    infos = resolve_inputs(req, lambda ref: None, _lister(blobs))
    assert len(infos) == 100 and all(i.name.endswith(".txt") for i in infos)
    over = blobs + [BlobInfo("input", f"transform/big/extra-{i}.txt", "e", 1) for i in range(7)]
    r = _rejected(resolve_inputs, req, lambda ref: None, _lister(over))
    assert r.code == "outside-policy" and "at most 100" in r.reason and "no input was dropped" in r.reason


@pytest.mark.parametrize("body,words", [
    ("[" * 100000 + "]" * 100000, "too deeply"),
    ('{"pipeline": "transform", "inputs": [' + "9" * 5000 + "]}", "cannot be read as JSON"),
])
def test_messages_that_break_the_json_reader_are_rejected_with_a_reason(body, words):
    """Issue 17.5: deep nesting (RecursionError) and a 5,000-digit integer (ValueError) are malformed input,
    not a crash that the host retries until the message is poisoned without a record."""
    r = _rejected(decode_request, body)
    assert r.code == "malformed" and words in r.reason


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "PYTHONPATH",
                                  "PYTHONSTARTUP", "NODE_OPTIONS", "PERL5LIB", "DYLD_INSERT_LIBRARIES",
                                  "OTHER_SETTING"])
def test_a_request_sets_only_the_variables_its_pipeline_names(config, name):
    """Issue 17.1: transform lists TRANSFORM_MODE; any other name, and every loader or interpreter variable, is
    rejected with the allowed names and without the value."""
    r = _rejected(parse_request, config, {"pipeline": "transform", "inputs": ["input/transform/a"],
                                          "overrides": {"environment": {name: "secret-value-123"}}}, ACCOUNT)
    assert r.code == "outside-policy" and "allows TRANSFORM_MODE" in r.reason
    assert "secret-value-123" not in r.reason


@pytest.mark.parametrize("overridable,words", [
    (["environment"], "name the variables"),
    ({"environment": ["LD_PRELOAD"]}, "LD_PRELOAD cannot be overridable"),
    ({"environment": ["PYTHONPATH", "MODE"]}, "PYTHONPATH cannot be overridable"),
    ({"image": True}, "image"),
])
def test_a_pipeline_cannot_open_code_loading_variables_to_requests(tmp_path, overridable, words):
    import yaml

    from shared.errors import ConfigError
    from shared.pipelines import load_config
    from tests.unit.shared.conftest import LOCAL, REPO

    doc = yaml.safe_load((REPO / "pipelines.yaml").read_text())
    doc["pipelines"][0]["overridable"] = overridable
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=words):
        load_config(tmp_path / "p.yaml", LOCAL)


def test_a_disabled_pipeline_rejects_its_inputs_naming_why(config):
    """The sample GPU pipeline is off by default (its pool says enabled: ${DEPLOY_GPU_POOLS:-false}): a blob in its
    folder and a queue request for it are rejected with a reason that names the pipeline and the pool."""
    r = _rejected(route_blob, config, "input", "gpuinfo/a.txt")
    assert r.code == "pipeline-disabled"
    assert "pipeline gpuinfo is disabled: its pool eventbatch-gpu has enabled: false" in r.reason
    r = _rejected(parse_request, config, {"pipeline": "gpuinfo", "inputs": ["input/gpuinfo/a"]}, ACCOUNT)
    assert r.code == "pipeline-disabled" and "eventbatch-gpu" in r.reason


def test_switching_the_setting_on_enables_the_pipeline():
    from shared.pipelines import load_config
    from tests.unit.shared.conftest import LOCAL, REPO

    config = load_config(REPO / "pipelines.yaml", {**LOCAL, "DEPLOY_GPU_POOLS": "true"})
    assert route_blob(config, "input", "gpuinfo/a.txt").name == "gpuinfo"


def test_a_pipeline_can_be_disabled_by_itself(config):
    import dataclasses

    off = dataclasses.replace(config.pipelines["transform"], enabled=False)
    config = dataclasses.replace(config, pipelines={**config.pipelines, "transform": off})
    r = _rejected(route_blob, config, "input", "transform/a.txt")
    assert r.code == "pipeline-disabled" and "pipeline transform is disabled (enabled: false" in r.reason
