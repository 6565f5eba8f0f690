"""The command line: modes, exit codes, out-of-place port, summary."""

import os
from pathlib import Path

from .conftest import run_cli

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\n"
PLAIN_SRC = "import torch\n\nx = torch.ones(2)\n"


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(CUDA_SRC)
    (root / "pkg" / "b.py").write_text(PLAIN_SRC)
    (root / "pkg" / "data.txt").write_text("not python, cuda\n")
    return root


def test_version_and_help(cli_env):
    r = run_cli(["--version"], env=cli_env)
    assert r.returncode == 0 and r.stdout.startswith("torchdevice-migrate ")
    r = run_cli(["--help"], env=cli_env)
    assert r.returncode == 0
    for word in ("--diff", "--check", "--out", "--exclude", "Exit codes", "Examples"):
        assert word in r.stdout


def test_diff_writes_nothing_and_is_plain_when_piped(tmp_path, cli_env):
    make_tree(tmp_path)
    r = run_cli([tmp_path, "--diff"], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "+x = runtime_shim.to_device(torch.ones(2))" in r.stdout
    assert "\x1b[" not in r.stdout
    assert (tmp_path / "pkg" / "a.py").read_text() == CUDA_SRC
    assert "3 file(s) scanned" not in r.stderr  # data.txt is not Python
    assert "2 file(s) scanned, 1 would change, 0 skipped with errors" in r.stderr


def test_check_exits_1_before_and_0_after(tmp_path, cli_env):
    make_tree(tmp_path)
    r = run_cli([tmp_path, "--check"], env=cli_env)
    assert r.returncode == 1
    assert (tmp_path / "pkg" / "a.py").read_text() == CUDA_SRC
    r = run_cli([tmp_path], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "runtime_shim.to_device(" in (tmp_path / "pkg" / "a.py").read_text()
    assert (tmp_path / "pkg" / "b.py").read_text() == PLAIN_SRC
    r = run_cli([tmp_path, "--check", "--diff"], env=cli_env)
    assert r.returncode == 0 and r.stdout == ""


def test_syntax_error_reported_others_ported(tmp_path, cli_env):
    make_tree(tmp_path)
    bad = tmp_path / "pkg" / "broken.py"
    bad.write_bytes(b"import torch\nx = y.cuda(\n")
    r = run_cli([tmp_path], env=cli_env)
    assert r.returncode == 2
    assert f"{bad}:" in r.stderr and "syntax error" in r.stderr
    assert bad.read_bytes() == b"import torch\nx = y.cuda(\n"
    assert "runtime_shim.to_device(" in (tmp_path / "pkg" / "a.py").read_text()


def test_out_writes_a_ported_copy(tmp_path, cli_env):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    r = run_cli([src, "--out", dest], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert (src / "pkg" / "a.py").read_text() == CUDA_SRC
    assert "runtime_shim.to_device(" in (dest / "pkg" / "a.py").read_text()
    assert (dest / "pkg" / "b.py").read_text() == PLAIN_SRC
    assert (dest / "pkg" / "data.txt").read_text() == "not python, cuda\n"


def test_out_refuses_non_empty_destination(tmp_path, cli_env):
    src = make_tree(tmp_path / "src")
    (tmp_path / "dest").mkdir()
    (tmp_path / "dest" / "keep.txt").write_text("x")
    r = run_cli([src, "--out", tmp_path / "dest"], env=cli_env)
    assert r.returncode == 2


def test_exclude(tmp_path, cli_env):
    make_tree(tmp_path)
    r = run_cli([tmp_path, "--exclude", "pkg/a.py"], env=cli_env)
    assert r.returncode == 0
    assert (tmp_path / "pkg" / "a.py").read_text() == CUDA_SRC


def test_missing_path_is_usage_error(tmp_path, cli_env):
    r = run_cli([tmp_path / "nope"], env=cli_env)
    assert r.returncode == 2


def test_review_sites_listed(tmp_path, cli_env):
    f = tmp_path / "m.py"
    f.write_text("import torch\nnames = ['cuda', 'cpu']\n")
    r = run_cli([f, "--check"], env=cli_env)
    assert r.returncode == 0
    assert f"{f}:2:10: TDM301" in r.stderr


def test_parallel_jobs_give_same_result(tmp_path, cli_env):
    for i in range(20):
        (tmp_path / f"m{i}.py").write_text(CUDA_SRC if i % 2 else PLAIN_SRC)
    r = run_cli([tmp_path, "--jobs", "2"], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "20 file(s) scanned, 10 changed" in r.stderr
    assert all(("runtime_shim" in (tmp_path / f"m{i}.py").read_text()) == bool(i % 2) for i in range(20))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tdm-tmp")]
