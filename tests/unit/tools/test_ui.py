"""devstack.tools.ui: what a person sees on a terminal and what a script reads from a pipe."""

from __future__ import annotations

import io
import json

import pytest
from rich.text import Text

from devstack.tools import ui

COLUMNS = (ui.Column("RUN", shrink=False), ui.Column("NAME", limit=10), ui.Column("STATE", style_by_value=ui.STATE_STYLES))
ROWS = [("r1", "short", "succeeded"), ("r2", "a-very-long-blob-name.txt", "failed")]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def fresh_options(monkeypatch):
    monkeypatch.setitem(ui._options, "no_color", False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def test_plain_table_is_aligned_and_cuts_long_cells_unless_wide():
    lines = ui.plain_table(COLUMNS, ROWS).splitlines()
    assert lines[0].split() == ["RUN", "NAME", "STATE"]
    assert lines[2] == "r2   a-very-lo\u2026  failed"
    assert "a-very-long-blob-name.txt" in ui.plain_table(COLUMNS, ROWS, wide=True)


def test_table_to_a_pipe_is_the_plain_table_without_escape_codes():
    out = io.StringIO()
    ui.table(COLUMNS, ROWS, stream=out)
    assert out.getvalue() == ui.plain_table(COLUMNS, ROWS) + "\n"
    assert "\x1b[" not in out.getvalue()


def test_table_on_a_terminal_is_coloured_and_fits_its_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = Tty()
    ui.table(COLUMNS, [("r3", "n" * 80, "succeeded")], stream=out)
    text = out.getvalue()
    assert "\x1b[32m" in text  # succeeded in green
    plain = Text.from_ansi(text).plain.splitlines()
    assert all(len(line) <= 40 for line in plain) and len(plain) > 2  # the long name wrapped onto more lines


def test_wide_on_a_terminal_keeps_every_cell_on_one_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = Tty()
    ui.table(COLUMNS, [("r3", "n" * 80, "succeeded")], wide=True, stream=out)
    assert "n" * 80 in out.getvalue()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_no_color_env_or_flag_turns_colour_off_on_a_terminal(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        ui.configure(no_color=True)
    out = Tty()
    ui.table(COLUMNS, ROWS, stream=out)
    assert "\x1b[3" not in out.getvalue() and "succeeded" in out.getvalue()
    assert not ui.color_enabled(Tty())


def test_cells_are_text_not_markup():
    out = Tty()
    ui.table(COLUMNS, [("r4", "[red]x[/red]", "failed")], wide=True, stream=out)
    assert "[red]x[/red]" in out.getvalue()


def test_print_json_is_plain_parseable_json_on_a_pipe():
    out = io.StringIO()
    ui.print_json({"name": "caf\u00e9", "n": 1}, stream=out)
    assert json.loads(out.getvalue()) == {"name": "caf\u00e9", "n": 1} and "caf\u00e9" in out.getvalue()


def test_progress_on_a_pipe_prints_one_line_per_change():
    out = io.StringIO()
    with ui.progress("waiting", total=3, stream=out) as bar:
        bar.update(0, detail="running 3")
        bar.update(0, detail="running 3")  # no change: no line
        bar.update(2, detail="running 1  succeeded 2")
        bar.update(3, detail="succeeded 3")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[1].endswith("waiting 2/3  running 1  succeeded 2")


def test_progress_on_a_terminal_draws_a_bar_with_counts_and_rate():
    out = Tty()
    with ui.progress("uploading", total=2048, unit="bytes", stream=out) as bar:
        bar.advance(1024)
        bar.advance(1024)
    text = Text.from_ansi(out.getvalue()).plain
    assert "uploading" in text and "2.0/2.0 kB" in text


def test_error_names_the_command_on_stderr(capsys):
    ui.error("wait", "no run 'x'")
    assert capsys.readouterr().err == "eventbatch wait: no run 'x'\n"
