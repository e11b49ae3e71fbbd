"""`logs --follow` reads only the new bytes of a node file each look (the fake client records the ranges asked)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from azure.core.exceptions import ResourceNotFoundError

from devstack.tools.logs_follow import Follower


class NodeFiles:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.ranges: list[tuple[str, str]] = []
        self.state = "running"

    def get_task_file_properties(self, job, task, path):
        if path not in self.files:
            raise ResourceNotFoundError("no file")
        return SimpleNamespace(content_length=len(self.files[path]))

    def download_task_file(self, job, task, path, ocp_range=None):
        self.ranges.append((path, ocp_range))
        first, last = (int(x) for x in ocp_range.removeprefix("bytes=").split("-"))
        data = self.files[path][first:last + 1]
        return iter([data[:3], data[3:]])  # the SDK streams chunks

    def get_task(self, job, task, select=None):
        return SimpleNamespace(state=SimpleNamespace(value=self.state))


def test_each_look_asks_only_for_the_bytes_added_since_the_last():
    node = NodeFiles()
    out = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    f = Follower(node, "job", "task", ["stdout", "stderr"], out)
    assert f.read_new() == 0 and node.ranges == []  # the task has not started: no files yet
    node.files["stdout.txt"] = b"first\n"
    assert f.read_new() == 6
    node.files["stdout.txt"] += b"second\n"
    node.files["stderr.txt"] = "caf\u00e9\n".encode()
    f.read_new()
    assert f.read_new() == 0  # nothing new: no download at all
    assert node.ranges == [("stdout.txt", "bytes=0-5"), ("stdout.txt", "bytes=6-12"), ("stderr.txt", "bytes=0-5")]
    assert out["stdout"].getvalue() == "first\nsecond\n" and out["stderr"].getvalue() == "caf\u00e9\n"
    assert f.offsets == {"stdout": 13, "stderr": 6}


def test_a_character_split_between_two_looks_comes_out_whole():
    node = NodeFiles()
    out = {"stdout": io.StringIO()}
    f = Follower(node, "job", "task", ["stdout"], out)
    node.files["stdout.txt"] = "caf\u00e9".encode()[:-1]
    f.read_new()
    node.files["stdout.txt"] = "caf\u00e9!\n".encode()
    f.read_new()
    assert out["stdout"].getvalue() == "caf\u00e9!\n"


def test_only_the_stream_asked_for_is_read():
    node = NodeFiles()
    node.files = {"stdout.txt": b"out\n", "stderr.txt": b"err\n"}
    out = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    f = Follower(node, "job", "task", ["stderr"], out)
    f.read_new()
    assert out["stdout"].getvalue() == "" and out["stderr"].getvalue() == "err\n"
    node.state = "completed"
    assert f.task_completed()
