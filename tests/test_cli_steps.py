"""The command line is three steps (issue 13): ``plan`` checks the arguments, reads the configuration,
finds the files and says what project index to build; ``run_plan`` builds it (in the workers of a
parallel run) and ports every file in memory (nothing written);
``emit`` writes, prints or reports and returns the exit code."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from torchdevice_migrate import cli

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\n"


def _consoles():
    return Console(file=io.StringIO(), highlight=False), Console(file=io.StringIO(), highlight=False)


@pytest.mark.parametrize("kwargs,message", [
    (dict(report=True, diff=True), "--report cannot be combined with --diff or --out"),
    (dict(fmt="json"), "--format and --output go with --report"),
    (dict(report=True, fmt="nope"), "--format nope: choose one of"),
])
def test_plan_refuses_bad_combinations(tmp_path, kwargs, message):
    (tmp_path / "a.py").write_text(CUDA_SRC)
    with pytest.raises(cli.UsageError, match=message.replace("-", r"\-")):
        cli.plan([tmp_path], no_config=True, **kwargs)


def test_plan_refuses_a_missing_path(tmp_path):
    with pytest.raises(cli.UsageError, match="no such file or folder"):
        cli.plan([tmp_path / "missing"], no_config=True)


def test_plan_finds_the_files_and_ports_nothing(tmp_path, monkeypatch):
    f = tmp_path / "a.py"
    f.write_text(CUDA_SRC)

    def boom(*args, **kwargs):
        raise AssertionError("ported in the wrong step")

    monkeypatch.setattr(cli, "run", boom)
    the_plan = cli.plan([tmp_path], check=True, no_config=True)
    assert [p.name for p in the_plan.files] == ["a.py"] and the_plan.index is not None
    assert the_plan.check and not the_plan.write
    with pytest.raises(AssertionError, match="wrong step"):
        cli.run_plan(the_plan)  # the run step is the one that ports


def test_run_writes_nothing_and_emit_returns_the_exit_code(tmp_path):
    f = tmp_path / "a.py"
    f.write_text(CUDA_SRC)
    out, err = _consoles()
    check = cli.plan([tmp_path], check=True, no_config=True)
    summary = cli.run_plan(check)
    assert f.read_text() == CUDA_SRC and summary.changed
    assert cli.emit(check, summary, out, err) == cli.EXIT_CHANGES
    assert f.read_text() == CUDA_SRC

    port = cli.plan([tmp_path], no_config=True)
    assert port.write
    assert cli.emit(port, cli.run_plan(port), out, err) == cli.EXIT_OK
    assert f.read_text() != CUDA_SRC
    again = cli.plan([tmp_path], check=True, no_config=True)
    assert cli.emit(again, cli.run_plan(again), out, err) == cli.EXIT_OK


def test_emit_reports_an_unwritable_report_file(tmp_path):
    (tmp_path / "a.py").write_text(CUDA_SRC)
    out, err = _consoles()
    the_plan = cli.plan([tmp_path], report=True, output=tmp_path / "no" / "such" / "dir" / "r.txt", no_config=True)
    assert cli.emit(the_plan, cli.run_plan(the_plan), out, err) == cli.EXIT_ERROR
