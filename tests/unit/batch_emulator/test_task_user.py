import os

import pytest

from devstack.batch_emulator import task_user
from devstack.batch_emulator.runtimes.base import RunSpec
from devstack.batch_emulator.runtimes.cli import ContainerCliRuntime


@pytest.mark.parametrize("identity, ids", [
    (None, (1001, 1000)),
    ({"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}, (1000, 1000)),
    ({"autoUser": {"scope": "task"}}, (1001, 1000)),
    ({"autoUser": {"scope": "task", "elevationLevel": "admin"}}, (0, 0)),
    ({"autoUser": {"scope": "pool", "elevationLevel": "admin"}}, (0, 0)),
    ({"username": "bob"}, (1002, 1000)),
])
def test_mapping(identity, ids):
    user = task_user.resolve(identity, {})
    assert (user.uid, user.gid) == ids


def test_named_user_from_pool_accounts():
    pool = {"userAccounts": [{"name": "bob", "linuxUserConfiguration": {"uid": 4242, "gid": 4243}},
                             {"name": "root-ish", "elevationLevel": "admin"}]}
    assert task_user.resolve({"username": "bob"}, pool).user_arg() == "4242:4243"
    assert task_user.resolve({"username": "root-ish"}, pool).admin


def test_folders_are_given_to_the_task_user(tmp_path):
    wd = tmp_path / "wd"
    (wd / "in").mkdir(parents=True)
    (wd / "in" / "input.txt").write_text("x")
    (tmp_path / "stdout.txt").touch()
    task_user.give_folders(task_user.TaskUser(1000, 1000), tmp_path, wd)
    for path in (tmp_path, wd, wd / "in", wd / "in" / "input.txt", tmp_path / "stdout.txt"):
        st = os.stat(path)
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (1000, 1000)
        else:
            assert st.st_mode & 0o002


def test_container_argv_carries_the_user(tmp_path):
    rt = ContainerCliRuntime("podman", executable="podman")
    spec = RunSpec(name="n", command=["id"], env={}, workdir=None, mounts=[], image="img", run_options=["--user=5"],
                   stdout_path="o", stderr_path="e", user="1000:1000")
    args = rt._run_args(spec, tmp_path / "env", tmp_path / "cid")
    assert args[args.index("--user") + 1] == "1000:1000"
    assert args.index("--user") < args.index("--user=5")  # run options come last and win, as on Batch
