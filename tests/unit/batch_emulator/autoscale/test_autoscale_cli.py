"""eventbatch autoscale eval / simulate, through main(argv) as the eventbatch command calls it."""

import json
from pathlib import Path

from devstack.batch_emulator.autoscale.cli import main

REPO = Path(__file__).resolve().parents[4]
FORMULA = """// docs example 2, shortened
$samples = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 2);
$tasks = $samples < 70 ? max(0,$PendingTasks.GetSample(1)) : max( $PendingTasks.GetSample(1), avg($PendingTasks.GetSample(TimeInterval_Minute * 2)));
$TargetDedicatedNodes = max(0, min($tasks, 20));
$NodeDeallocationOption = taskcompletion;"""


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_eval_prints_the_autoscale_run(tmp_path, capsys):
    samples = write(tmp_path, "s.json", {"now": "2026-11-25T10:00:00Z",
                                         "samples": {"PendingTasks": [2, 4, None, 6, 8]}})
    assert main(["eval", "--formula", write(tmp_path, "f.txt", FORMULA), "--samples", samples]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run == {"timestamp": "2026-11-25T10:00:00.0000000Z",
                   "results": "$TargetDedicatedNodes=8;$TargetLowPriorityNodes=0;"
                              "$NodeDeallocationOption=taskcompletion;$samples=75;$tasks=8"}


def test_eval_reports_insufficient_samples_like_the_service(tmp_path, capsys):
    samples = write(tmp_path, "s.json", {"now": "2026-11-25T10:00:00Z", "samples": {"CPUPercent": [50, 60]}})
    code = main(["eval", "--formula", "$TargetDedicatedNodes = avg($CPUPercent.GetSample(TimeInterval_Minute * 5, 80));",
                 "--samples", samples])
    run = json.loads(capsys.readouterr().out)
    assert code == 1
    assert run["error"]["code"] == "InsufficientSampleData"
    assert run["error"]["values"][0]["value"] == ("Line 1, Col 50: Insufficient data from data set: "
                                                  "$CPUPercent wanted 80%, received 20%")


def test_eval_usage_errors_say_what_is_wrong(tmp_path, capsys):
    assert main(["eval", "--formula", "no-such-file.txt"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = write(tmp_path, "s.json", {"samples": {"PendingTasks": ["x"]}})
    assert main(["eval", "--formula", "$TargetDedicatedNodes=1;", "--samples", bad]) == 2
    assert "samples.PendingTasks must be a list of numbers or null" in capsys.readouterr().err


def test_simulate_compares_formulas_and_writes_a_chart(tmp_path, capsys):
    chart = tmp_path / "chart.png"
    trace = write(tmp_path, "t.csv", "arrival_s,duration_s\n0,120\n5,120\n600,60\n")
    code = main(["simulate", "--formula", "$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(1));",
                 "--name", "one-per-task", "--formula", "$TargetDedicatedNodes = 3;", "--name", "fixed-3",
                 "--trace", trace, "--interval", "PT1M", "--startup", "PT30S", "--chart", str(chart), "--drain", "PT30M"])
    out = capsys.readouterr().out
    assert code == 0
    assert "one-per-task" in out and "fixed-3" in out and "queue wait p95" in out and "lower bound" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_json_output_and_bad_formula(tmp_path, capsys):
    trace = str(REPO / "samples" / "traces" / "idle.csv")
    assert main(["simulate", "--formula", "$TargetDedicatedNodes = max(0, $PendingTasks.GetSample(1));",
                 "--trace", trace, "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["tasks"] == 5 and summary["unfinished"] == 0 and summary["spot_node_minutes"] == 0
    assert main(["simulate", "--formula", "$TargetDedicatedNodes = (1;", "--trace", trace]) == 2
    assert "Line 1, Col 27" in capsys.readouterr().err
