"""The pre-commit hooks, run by the real ``pre-commit`` in a temporary git repository.

The hooks under test are the ones in ``.pre-commit-hooks.yaml``: the test copies each hook's
definition (entry, types_or, ...) into a ``repo: local`` configuration, changing only
``language: python`` to ``language: system`` so that pre-commit runs the ``torchdevice-migrate``
of this environment instead of pip-installing the project into a new virtualenv (slow, and it
needs the network). ``TDM_TEST_PRECOMMIT_INSTALL=1`` also runs ``pre-commit try-repo`` against this
checkout, which installs the hook exactly as users get it.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run_cli

yaml = pytest.importorskip("yaml")
pytest.importorskip("pre_commit")

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\n"
HOOKS = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
BIN = Path(sys.executable).parent


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    env.pop("TORCHDEVICE_DEVICE", None)
    env.pop("PRE_COMMIT", None)
    return env


def _git(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def _precommit(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)


def _local_config(hook_id: str) -> str:
    hook = dict(next(h for h in HOOKS if h["id"] == hook_id))
    assert hook["language"] == "python"
    hook["language"] = "system"  # the installed torchdevice-migrate; everything else as shipped
    hook.pop("minimum_pre_commit_version", None)
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]}, sort_keys=False)


@pytest.fixture
def git_repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    env = _env(tmp_path)
    assert _git(repo, env, "init", "-q", "-b", "main").returncode == 0
    return repo, env


def test_hook_file_is_what_we_document():
    ids = {h["id"]: h for h in HOOKS}
    assert set(ids) == {"torchdevice-migrate", "torchdevice-migrate-check"}
    for h in HOOKS:
        assert h["language"] == "python"
        assert h["types_or"] == ["python", "jupyter"]
        assert h["entry"].split()[0] == "torchdevice-migrate"
    assert "--check" in ids["torchdevice-migrate-check"]["entry"].split()
    assert "--check" not in ids["torchdevice-migrate"]["entry"].split()


def test_fix_hook_fails_fixes_then_passes_and_commits(git_repo):
    repo, env = git_repo
    (repo / ".pre-commit-config.yaml").write_text(_local_config("torchdevice-migrate"))
    r = _precommit(repo, env, "install")
    assert r.returncode == 0, r.stdout + r.stderr

    # a commit with no Python files: the hook is skipped, the commit goes through
    (repo / "README.md").write_text("cuda is only a word here\n")
    _git(repo, env, "add", "README.md", ".pre-commit-config.yaml")
    r = _git(repo, env, "commit", "-m", "docs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no files to check" in (r.stdout + r.stderr).lower()

    # a staged CUDA file: the hook ports it and fails the commit
    (repo / "train.py").write_text(CUDA_SRC)
    _git(repo, env, "add", "train.py")
    r = _git(repo, env, "commit", "-m", "train")
    assert r.returncode != 0
    assert "files were modified by this hook" in r.stdout + r.stderr
    ported = (repo / "train.py").read_text()
    assert "runtime_shim.to_device(" in ported and ".cuda()" not in ported
    assert _git(repo, env, "log", "--oneline").stdout.count("\n") == 1

    # stage the fix: the next commit passes
    _git(repo, env, "add", "train.py")
    r = _git(repo, env, "commit", "-m", "train")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _git(repo, env, "log", "--oneline").stdout.count("\n") == 2


def test_check_hook_fails_without_writing(git_repo):
    repo, env = git_repo
    (repo / ".pre-commit-config.yaml").write_text(_local_config("torchdevice-migrate-check"))
    (repo / "train.py").write_text(CUDA_SRC)
    (repo / "notes.txt").write_text("cuda\n")
    _git(repo, env, "add", ".")
    r = _precommit(repo, env, "run", "--files", "train.py", "notes.txt")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "-x = torch.ones(2).cuda()" in r.stdout and "runtime_shim.to_device(" in r.stdout
    assert (repo / "train.py").read_text() == CUDA_SRC
    # only non-Python files: skipped, passes
    r = _precommit(repo, env, "run", "--files", "notes.txt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped" in r.stdout.lower()


def test_fix_hook_ports_notebooks(git_repo):
    repo, env = git_repo
    (repo / ".pre-commit-config.yaml").write_text(_local_config("torchdevice-migrate"))
    shutil.copy(REPO / "fixtures" / "notebooks" / "cuda_train.ipynb", repo / "nb.ipynb")
    _git(repo, env, "add", ".")
    r = _precommit(repo, env, "run", "--all-files")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "runtime_shim.to_device(" in (repo / "nb.ipynb").read_text(encoding="utf-8")
    _git(repo, env, "add", ".")
    r = _precommit(repo, env, "run", "--all-files")
    assert r.returncode == 0, r.stdout + r.stderr


def test_cli_with_no_paths_prints_usage_and_exits_2(cli_env):
    r = run_cli([], env=cli_env)
    assert r.returncode == 2
    assert "Usage" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.skipif(os.environ.get("TDM_TEST_PRECOMMIT_INSTALL") != "1",
                    reason="installs the hook with pip into a new virtualenv (network, ~1 min); set TDM_TEST_PRECOMMIT_INSTALL=1")
def test_try_repo_installs_and_runs_the_real_hook(git_repo):
    repo, env = git_repo
    (repo / "train.py").write_text(CUDA_SRC)
    _git(repo, env, "add", ".")
    r = _precommit(repo, env, "try-repo", str(REPO), "torchdevice-migrate", "--files", "train.py")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "runtime_shim.to_device(" in (repo / "train.py").read_text()
    _git(repo, env, "add", ".")
    r = _precommit(repo, env, "try-repo", str(REPO), "torchdevice-migrate", "--files", "train.py")
    assert r.returncode == 0, r.stdout + r.stderr
