"""filePattern matching and destination naming, against a real folder tree (tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.batch_emulator.staging.patterns import (
    destination_blob_name,
    expand_vars,
    has_wildcard,
    match_files,
)


@pytest.fixture()
def task(tmp_path: Path) -> tuple[Path, Path]:
    """A task dir with stdout/stderr and a working dir holding files, subfolders and dotfiles."""
    task_dir = tmp_path / "task"
    wd = task_dir / "wd"
    files = [
        "a.txt", "b.txt", "c.csv", ".hidden.txt", "abc*", "data1.bin", "data2.bin", "datax.bin",
        "sub/d.txt", "sub/deep/e.txt", "sub/.dot.txt", ".cache/f.txt", "other/g.log",
    ]
    for rel in files:
        (wd / rel).parent.mkdir(parents=True, exist_ok=True)
        (wd / rel).write_text(rel)
    (task_dir / "stdout.txt").write_text("out")
    (task_dir / "stderr.txt").write_text("err")
    return task_dir, wd


def rels(pattern: str, wd: Path) -> list[str]:
    return [m.relative for m in match_files(pattern, wd)]


def test_star_matches_one_level_and_skips_dotfiles(task):
    _, wd = task
    assert rels("*.txt", wd) == ["a.txt", "b.txt"]


def test_explicit_dot_matches_dotfiles(task):
    _, wd = task
    assert rels(".*.txt", wd) == [".hidden.txt"]


def test_double_star_recurses_but_not_into_dot_directories(task):
    _, wd = task
    assert rels("**/*.txt", wd) == ["a.txt", "b.txt", "sub/d.txt", "sub/deep/e.txt"]


def test_trailing_double_star_takes_every_visible_file_below(task):
    _, wd = task
    assert rels("sub/**", wd) == ["d.txt", "deep/e.txt"]


def test_question_mark_and_sets(task):
    _, wd = task
    assert rels("data?.bin", wd) == ["data1.bin", "data2.bin", "datax.bin"]
    assert rels("data[12].bin", wd) == ["data1.bin", "data2.bin"]
    assert rels("data[0-9].bin", wd) == ["data1.bin", "data2.bin"]
    assert rels("data[!12].bin", wd) == ["datax.bin"]


def test_bracket_escapes_a_wildcard_character(task):
    _, wd = task
    assert rels("abc[*]", wd) == ["abc*"]


def test_dot_dot_reaches_the_task_directory(task):
    task_dir, wd = task
    found = match_files("../std*.txt", wd)
    assert [m.relative for m in found] == ["stderr.txt", "stdout.txt"]
    assert all(m.path.parent == task_dir for m in found)


def test_specific_file_and_missing_file(task):
    task_dir, wd = task
    assert [m.path for m in match_files("../stdout.txt", wd)] == [task_dir / "stdout.txt"]
    assert match_files("nope.txt", wd) == []
    assert match_files("sub", wd) == []  # a directory is not a file


def test_absolute_pattern(task):
    task_dir, wd = task
    assert rels(f"{wd}/sub/*.txt", wd) == ["d.txt"]


def test_wildcard_in_a_middle_segment(task):
    _, wd = task
    assert rels("*/d.txt", wd) == ["sub/d.txt"]


def test_destination_for_specific_file_is_the_blob_name(task):
    _, wd = task
    (match,) = match_files("sub/d.txt", wd)
    assert destination_blob_name("results/final.txt", match, has_wildcard("sub/d.txt")) == "results/final.txt"
    assert destination_blob_name(None, match, False) == "d.txt"


def test_destination_for_pattern_is_a_virtual_directory_keeping_structure(task):
    _, wd = task
    names = [destination_blob_name("mytask/", m, True) for m in match_files("**/*.txt", wd)]
    assert names == ["mytask/a.txt", "mytask/b.txt", "mytask/sub/d.txt", "mytask/sub/deep/e.txt"]
    names = [destination_blob_name(None, m, True) for m in match_files("../std*.txt", wd)]
    assert names == ["stderr.txt", "stdout.txt"]


def test_env_vars_are_expanded_before_matching(task):
    _, wd = task
    env = {"EXT": "csv", "DIR": "sub"}
    assert expand_vars("*.$EXT", env) == "*.csv"
    assert rels(expand_vars("${DIR}/*.txt", env), wd) == ["d.txt"]
    assert expand_vars("$UNKNOWN/x", env) == "$UNKNOWN/x"
