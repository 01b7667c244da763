"""The ``wspace`` command line, run as a real subprocess where exit codes matter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import wspace
from wspace.cli import app, reports_errors
from wspace.errors import StoreNotFoundError
from wspace.layout import Layout
from wspace.testing import SMALL_LAYOUT, tiny_weights, tiny_zoo

runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wspace", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def zoo_url(tmp_path: Path) -> str:
    return tiny_zoo(str(tmp_path / "z.zarr"), 6, writers=2, steps=[1, 2])


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in ("info", "ls", "compact", "verify", "demo"):
        assert command in out.stdout


def test_info_text_and_json(zoo_url):
    out = runner.invoke(app, ["info", zoo_url])
    assert out.exit_code == 0, out.output
    assert "12 rows, 6 models, 91,481 params" in out.output
    assert "dense_1/weight" in out.output and "blosc-zstd" in out.output
    data = json.loads(runner.invoke(app, ["info", zoo_url, "--json"]).output)
    assert data["archs"]["lenet5"]["rows"] == 12
    assert data["archs"]["lenet5"]["live_segments"] == 2


def test_ls_where_and_limit(zoo_url):
    out = runner.invoke(
        app,
        ["ls", zoo_url, "--where", "cls=church", "--where", "step>=2", "--columns", "model,step"],
    )
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].split() == ["model", "step"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["church_0", "church_2", "church_4"]
    out = runner.invoke(app, ["ls", zoo_url, "--limit", "2"])
    assert "... 10 more of 12 rows" in out.output


def test_compact_then_verify(zoo_url):
    out = run("compact", zoo_url)
    assert out.returncode == 0 and "compacted 12 rows of 'lenet5'" in out.stdout
    out = run("verify", zoo_url)
    assert out.returncode == 0 and "0 damaged" in out.stdout
    assert len(wspace.open(zoo_url)) == 12


def test_verify_exit_code_1_on_damage(zoo_url):
    chunk = sorted(Path(zoo_url).glob("archs/lenet5/seg/*/conv2d/c/0/0"))[0]
    chunk.write_bytes(chunk.read_bytes()[:-7] + b"garbage")
    out = run("verify", zoo_url)
    assert out.returncode == 1
    assert "DAMAGED" in out.stdout and "layer=conv2d" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "/no/such/store.zarr"], "no wspace store"),
        (["ls", "{url}", "--where", "klass=x"], "no column 'klass'"),
        (["ls", "{url}", "--where", "garbage"], "expected COLUMN=VALUE"),
        (["ls", "{url}", "--where", "seed=abc"], "seed is numeric"),
        (["compact", "{url}", "--arch", "nope"], "no architecture 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(zoo_url, args, message):
    out = run(*[a.format(url=zoo_url) for a in args])
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr
    assert "Traceback" not in out.stderr


def test_demo_trains_and_queries_a_zoo(tmp_path):
    path = str(tmp_path / "demo.zarr")
    out = run(
        "demo", path, "--classes", "zero,seven", "--per-class", "2", "--epochs", "2",
        "--workers", "2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "trained 4 digits LeNet-5s" in out.stdout
    assert "architecture 'lenet5' (lenet5): 4 rows, 4 models" in out.stdout  # wspace info
    assert "as recorded: True" in out.stdout  # rebuilt network reproduces its accuracy
    assert "dense_1 unchanged: True" in out.stdout
    assert "Accuracy Min" in out.stdout and "All" in out.stdout
    zoo = wspace.open(path)
    assert sorted(zoo.models["model"]) == ["seven_0", "seven_1", "zero_0", "zero_1"]
    # it ends with the zoo's report, beside the store
    report = tmp_path / "demo-report"
    assert "report written in" in out.stdout and str(report / "report.html") in out.stdout
    markdown = (report / "report.md").read_text()
    for heading in ("## Summary", "## Metrics of the networks", "## Training curves"):
        assert heading in markdown
    assert "## Jensen-Shannon divergence between groups, per layer" in markdown
    assert "<table>" in (report / "report.html").read_text()
    figures = sorted(p.name for p in report.glob("*.png"))
    assert {"training_curves.png", "divergence.png", "weight_histograms.png"} <= set(figures)
    for name in figures:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (report / name).stat().st_size > 5_000, name
        assert f"]({name})" in markdown
    assert run("demo", path).returncode == 2  # refuses to overwrite without --overwrite


def test_help_describes_every_command_and_the_report_forms():
    out = run("--help")
    for command in ("info", "ls", "compact", "verify", "vacuum", "import", "export", "demo"):
        assert f" {command} " in out.stdout, command
    assert " train " in out.stdout and " report " in out.stdout
    report = runner.invoke(app, ["report", "--help"], terminal_width=200)
    assert report.exit_code == 0
    assert "[all|metrics] URL" in report.output and "lone word is always the store" in report.output
    metrics = runner.invoke(app, ["report", "metrics", "--help"], terminal_width=200)
    assert metrics.exit_code == 0 and "--csv" in metrics.output and "--fast" not in metrics.output


# -- `wspace report [NAME] URL`: a store may be named like a report ---------------------------
def _store_named_metrics(folder: Path) -> None:
    """A small store at ``folder/metrics`` with the columns of a metrics table."""
    layout = Layout.from_dict(SMALL_LAYOUT)
    path = str(folder / "metrics")
    wspace.create(path, layout)
    with wspace.writer(path) as w:
        for i in range(6):
            scores = {"accuracy": 0.9 + i / 100, "precision": 0.8, "recall": 0.7, "f1": 0.75}
            w.append(tiny_weights(i, layout.size), model=f"m{i}", cls="ab"[i % 2], **scores)


@pytest.fixture
def in_folder_with_metrics_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _store_named_metrics(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_metrics_then_a_url_prints_the_metrics_table(in_folder_with_metrics_store):
    out = runner.invoke(app, ["report", "metrics", "metrics", "--csv", "t.csv"])
    assert out.exit_code == 0, out.output
    assert "Accuracy Min" in out.output and "wrote t.csv" in out.output
    assert pd.read_csv("t.csv")["Count"].tolist() == [3, 3, 6]
    assert not Path("report").exists()  # not the full report


def test_a_lone_word_is_the_store_even_when_it_names_a_report(in_folder_with_metrics_store):
    out = runner.invoke(app, ["report", "metrics", "--fast"])  # the store ./metrics
    assert out.exit_code == 0, out.output
    assert "wrote report/report.md" in out.output
    assert "## Metrics of the networks" in Path("report/report.md").read_text()
    # options of the full report after the word: still the store (an unknown store says so)
    for args in (
        ["report", "./metrics", "--out", "r", "--arch", "nope"],
        ["report", "metrics", "--out", "r", "--arch", "nope"],
        ["report", "all", "metrics", "--out", "r", "--arch", "nope"],
    ):
        out = runner.invoke(app, args)
        assert out.exit_code == 2 and "no architecture 'nope'" in out.output, (args, out.output)
    out = runner.invoke(app, ["report", "--out", "r", "--fast", "all"])  # options first
    assert out.exit_code == 2 and "no wspace store at 'all'" in out.output, out.output


def test_a_report_word_with_its_own_options_but_no_url_asks_for_the_url(
    in_folder_with_metrics_store,
):
    out = runner.invoke(app, ["report", "metrics", "--csv", "t.csv"])
    assert out.exit_code == 2
    assert "Missing argument" in out.output and "report metrics" in out.output
    assert not Path("t.csv").exists() and not Path("report").exists()


def test_error_decorator_reports_wspace_errors_and_keeps_bugs_loud(capsys):
    @reports_errors
    def missing_store() -> None:
        raise StoreNotFoundError("no wspace store at 'x'")

    @reports_errors
    def bug() -> None:
        return {}["key"]  # type: ignore[no-any-return]

    with pytest.raises(typer.Exit) as info:
        missing_store()
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "wspace: error: no wspace store at 'x'\n"
    with pytest.raises(KeyError):  # a bug is not turned into an error message
        bug()
    assert capsys.readouterr().err == ""
