"""End to end: the bundled CUDA example fails on a CPU-only build, ports with one command, trains."""

import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "cuda_project"

torch = pytest.importorskip("torch")
needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only failure of the original")


def _train(project, env):
    return subprocess.run([sys.executable, "train.py", "--epochs", "6"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


@needs_cpu_only
def test_original_fails_without_cuda(tmp_path, cli_env):
    project = tmp_path / "orig"
    shutil.copytree(EXAMPLE, project)
    r = _train(project, cli_env)
    assert r.returncode != 0
    assert "CUDA" in r.stderr or "GPU" in r.stderr


def test_ported_example_trains_on_cpu(tmp_path, cli_env):
    project = tmp_path / "ported"
    shutil.copytree(EXAMPLE, project)
    r = run_cli([project], env=cli_env)
    assert r.returncode == 0, r.stderr
    r = _train(project, cli_env)
    assert r.returncode == 0, r.stderr
    losses = [float(x) for x in re.findall(r"epoch \d+ loss ([0-9.]+)", r.stdout)]
    assert len(losses) == 6
    assert losses[-1] < losses[0] * 0.8, losses
    assert "checkpoint reloaded on" in r.stdout
    # a second run changes nothing
    r = run_cli([project, "--check"], env=cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
