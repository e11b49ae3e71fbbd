"""Nothing in the local stack opens a connection off this machine (issue 17, item 15).

Azurite 3.35 sends telemetry to Application Insights unless started with --disableTelemetry; on these offline
machines its log then fills with failed lookups of the ingestion endpoint. The check here is threefold: the
command lines say so, no stack process holds a TCP socket to a non-loopback address after real traffic, and no
service log since its latest start records a lookup or connection attempt to a remote host.
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from pathlib import Path

import pytest

from devstack.common import paths
from devstack.stack.azurite import azurite_service
from devstack.stack.ports import Ports
from devstack.stack.processes import Service, read_pid

pytestmark = pytest.mark.integration

SERVICES = ("azurite", "registry", "batch-emulator")
# What a failed or attempted outbound connection looks like in node, Go (registry) and Python logs.
OUTBOUND = re.compile(r"ENOTFOUND|EAI_AGAIN|getaddrinfo|applicationinsights|visualstudio\.com|dial tcp (?!127\.)"
                      r"|Temporary failure in name resolution|Name or service not known", re.IGNORECASE)


def test_azurite_is_started_without_telemetry():
    command = azurite_service(Ports.from_env()).command
    assert "--disableTelemetry" in command


def test_the_running_stack_was_started_without_telemetry(stack_traffic):
    pid = read_pid(Service("azurite", ["azurite"], None, lambda: False))
    if pid is None:
        pytest.skip("this stack's Azurite was not started by devstack (no pid file)")
    cmdlines = [_cmdline(p) for p in [pid, *_session(pid)]]
    assert any("--disableTelemetry" in c for c in cmdlines), cmdlines


def test_no_stack_process_holds_a_remote_connection(stack_traffic):
    remote = []
    for name in SERVICES:
        pid = read_pid(Service(name, [name], None, lambda: False))
        if pid is None:
            continue
        for member in [pid, *_session(pid)]:
            remote += [(name, member, addr) for addr in _remote_peers(member)]
    assert remote == []


def test_no_outbound_attempt_in_the_service_logs(stack_traffic):
    found = []
    for name in SERVICES:
        log = paths.logs_dir() / f"{name}.log"
        if not log.exists():
            continue
        since_start = log.read_text(errors="replace").rsplit("\n=== ", 1)[-1]
        found += [f"{name}: {line.strip()[:200]}" for line in since_start.splitlines() if OUTBOUND.search(line)]
    assert found == [], "\n".join(found[:10])


@pytest.fixture(scope="module")
def stack_traffic(stack, blob_service, queue_service, batch_client):
    """Some real use of every service: blobs, queues, a Batch call, and a short wait for periodic senders."""
    import time

    container = blob_service.get_container_client(f"offline-{uuid.uuid4().hex[:8]}")
    container.create_container()
    for i in range(20):
        container.upload_blob(f"b{i}", b"x" * 1000)
    list(container.list_blobs())
    container.delete_container()
    queue = queue_service.get_queue_client(f"offline-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    queue.send_message("hello")
    queue.delete_queue()
    list(batch_client.list_pools())
    time.sleep(5)
    return stack


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _session(sid: int) -> list[int]:
    members = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and int(proc.name) != sid:
                members.append(int(proc.name))
    return members


def _remote_peers(pid: int) -> list[str]:
    """Remote addresses of the TCP sockets process `pid` holds that are neither loopback nor unset."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    peers = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] not in inodes:
                continue
            addr = _decode(cols[2])
            if not (addr.is_loopback or addr.is_unspecified or
                    (addr.version == 6 and addr.ipv4_mapped and addr.ipv4_mapped.is_loopback)):
                peers.append(str(addr))
    return peers


def _decode(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    host = hex_addr.split(":")[0]
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
