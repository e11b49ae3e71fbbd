"""Container runtime rules: image registry names, env files, network and mount arguments, engine-output
classification (no services)."""

from __future__ import annotations

import pytest

from devstack.batch_emulator.runtimes import StartError
from devstack.batch_emulator.runtimes.base import Mount
from devstack.batch_emulator.runtimes.cli import _env_file_text, _names_network, _volume_arg
from devstack.batch_emulator.runtimes.errors import classify_create_error, classify_pull_error
from devstack.batch_emulator.runtimes.images import is_loopback, normalize_server, registry_of


def test_image_registry_rules():
    assert registry_of("127.0.0.1:5055/eventbatch/worker:1") == "127.0.0.1:5055"
    assert registry_of("myreg.azurecr.io/app") == "myreg.azurecr.io"
    assert registry_of("library/ubuntu") is None
    assert registry_of("ubuntu") is None
    assert normalize_server("HTTPS://Reg.Example:5000/") == "reg.example:5000"
    assert is_loopback("127.0.0.1:5055") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("myreg.azurecr.io")


def test_env_file_keeps_values_literal_and_moves_multiline_values_out_of_it():
    cli_env: dict[str, str] = {}
    text = _env_file_text({"A": "has space", "B": "x=y#z", "M": "two\nlines"}, cli_env)
    assert text == "A=has space\nB=x=y#z\nM\n"
    assert cli_env == {"M": "two\nlines"}
    with pytest.raises(StartError):
        _env_file_text({"PATH": "a\nb"}, {})
    with pytest.raises(StartError):
        _env_file_text({"BAD=NAME": "x"}, {})


def test_network_and_mount_arguments():
    assert _names_network(["--network=none"]) and _names_network(["--net", "bridge"])
    assert not _names_network(["--workdir", "/app"])
    assert _volume_arg(Mount("/host/dir", "/ctr", read_only=True)) == "/host/dir:/ctr:ro"
    with pytest.raises(StartError):
        _volume_arg(Mount("/host:dir", "/ctr"))


def test_engine_errors_map_to_batch_codes():
    assert classify_pull_error("Error: ... unauthorized: authentication required") == "ContainerInvalidRegistry"
    assert classify_pull_error("reading manifest 2 in 127.0.0.1:5055/x: manifest unknown") == "ContainerInvalidImage"
    assert classify_pull_error("dial tcp 127.0.0.1:1: connect: connection refused") == "ContainerInvalidRegistry"
    assert classify_create_error("Error: unknown flag: --bogus") == "ContainerInvalidSettings"
    assert classify_create_error("Error: x: image not known") == "ContainerInvalidImage"

