"""``--out DEST --verify COMMAND``: the port is run, the outcome is recorded in DEST's report."""

import json
import shutil
import sys

import pytest

from torchdevice_migrate.verify import EXIT_VERIFY_FAILED, REPORT_JSON, REPORT_MD, TAIL_LINES

from .conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "cuda_project"
PY = sys.executable


def _copy_example(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    return src, tmp_path / "port"


def test_verified_port_of_the_example(tmp_path, cli_env):
    torch = pytest.importorskip("torch")
    src, dest = _copy_example(tmp_path)
    command = f'"{PY}" train.py --epochs 3'
    r = run_cli([src, "--out", dest, "--verify", command, "--verify-original"], env=cli_env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((dest / REPORT_JSON).read_text())
    assert sorted(data["files"]["changed"]) == ["classifier/data.py", "classifier/model.py", "train.py"]
    assert data["files"]["scanned"] == 4 and data["files"]["errors"] == []
    assert data["findings"]["by_status"]["rewritten"] > 0 and data["findings"]["by_code"]
    port, original = data["verify"]
    assert port["tree"] == "port" and port["ok"] and port["exit_code"] == 0 and port["command"] == command
    assert port["duration_s"] > 0 and any("epoch 2 loss" in line for line in port["output_tail"])
    assert port["pythonpath_added"]  # the shim was put on PYTHONPATH (not vendored)
    assert original["tree"] == "original"
    if not torch.cuda.is_available():
        assert not original["ok"] and any("needs a GPU" in line for line in original["output_tail"])
    assert data["verify_ok"] is True
    md = (dest / REPORT_MD).read_text()
    assert "## Verify on the port" in md and "**passed**" in md and "## Verify on the original" in md
    assert not any(src.glob("*.pt"))  # the original ran in a temporary copy


def test_failing_verify_exits_3_and_keeps_the_last_lines(tmp_path, cli_env):
    src, dest = _copy_example(tmp_path)
    command = f'"{PY}" -c "import sys; [print(i) for i in range(200)]; sys.exit(7)"'
    r = run_cli([src, "--out", dest, "--verify", command, "-q"], env=cli_env)
    assert r.returncode == EXIT_VERIFY_FAILED, r.stdout + r.stderr
    (port,) = json.loads((dest / REPORT_JSON).read_text())["verify"]
    assert port["exit_code"] == 7 and not port["ok"]
    assert port["output_tail"] == [str(i) for i in range(200 - TAIL_LINES, 200)]
    assert "failed (exit 7)" in (dest / REPORT_MD).read_text()
    assert "FAILED with exit code 7" in r.stderr


def test_the_shim_is_importable_by_the_command_even_without_site_packages(tmp_path, cli_env):
    src, dest = _copy_example(tmp_path)
    # python -S: no site-packages, no .pth (so not this checkout's editable install): only PYTHONPATH
    command = f'"{PY}" -S -c "import importlib.util as u; print(\'ORIGIN\', u.find_spec(\'runtime_shim\').origin)"'
    env = {k: v for k, v in cli_env.items() if k != "PYTHONPATH"}
    r = run_cli([src, "--out", dest, "--verify", command], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    (port,) = json.loads((dest / REPORT_JSON).read_text())["verify"]
    (line,) = [x for x in port["output_tail"] if x.startswith("ORIGIN ")]
    assert line.endswith("__init__.py") and "tdm-shim-" in line


def test_vendored_port_needs_no_pythonpath(tmp_path, cli_env):
    src, dest = _copy_example(tmp_path)
    command = f'"{PY}" -S -c "import importlib.util as u; print(\'ORIGIN\', u.find_spec(\'classifier._vendor.runtime_shim\').origin)"'
    r = run_cli([src, "--out", dest, "--vendor", "classifier/_vendor", "--verify", command], env=cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((dest / REPORT_JSON).read_text())
    assert data["vendored_shim"] == "classifier/_vendor/runtime_shim.py"
    assert data["shim_module"] == "classifier._vendor.runtime_shim"
    (port,) = data["verify"]
    assert port["pythonpath_added"] == []
    assert any(x.endswith("classifier/_vendor/runtime_shim.py") for x in port["output_tail"])


@pytest.mark.parametrize("args,message", [
    (["--verify", "true"], "--out"),
    (["--verify-original"], "--verify"),
    (["--out", "{dest}", "--verify", "true", "--diff"], "cannot be combined"),
    (["--out", "{dest}", "--verify", "  "], "empty"),
])
def test_usage_errors(tmp_path, cli_env, args, message):
    src, dest = _copy_example(tmp_path)
    r = run_cli([src, *[a.format(dest=dest) for a in args]], env=cli_env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert not dest.exists()
