"""``--vendor PATH``: the shim copied into the user's tree, imports pointing at it, and the port
running in a Python where torchdevice-migrate (and so ``runtime_shim``) is not installed.

"Not installed" is made honest with ``python -S``: the ``site`` module does not run, so no ``.pth``
file is processed (this checkout's editable install of ``runtime_shim`` is one) and neither this
checkout nor the current folder is on ``sys.path``; ``PYTHONPATH`` holds only the folder torch is
installed in, so torch and its dependencies import and ``runtime_shim`` can only come from the port.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from torchdevice_migrate.engine import migrate_bytes
from torchdevice_migrate.findings import FileState
from torchdevice_migrate.transform import Options
from torchdevice_migrate.vendor import (
    HEADER,
    MARKER,
    VendorError,
    is_vendored_shim,
    module_for,
    shim_source_file,
    vendor_shim,
)

from .conftest import REPO, run_cli

EXAMPLE = REPO / "examples" / "cuda_project"


def test_module_for(tmp_path):
    assert module_for(tmp_path, tmp_path) == "runtime_shim"
    assert module_for(tmp_path / ".", tmp_path) == "runtime_shim"
    assert module_for(tmp_path / "mypkg" / "_vendor", tmp_path) == "mypkg._vendor.runtime_shim"
    assert module_for(tmp_path / "third_party", tmp_path) == "third_party.runtime_shim"
    with pytest.raises(VendorError, match="not a valid Python package name"):
        module_for(tmp_path / "my-pkg", tmp_path)
    with pytest.raises(VendorError, match="inside the project root"):
        module_for(tmp_path.parent, tmp_path)


def test_shim_source_is_found_without_importing_it_or_torch(cli_env):
    code = ("import sys; from torchdevice_migrate.vendor import shim_source_file; p = shim_source_file(); "
            "assert 'torch' not in sys.modules and 'runtime_shim' not in sys.modules, sorted(sys.modules); print(p)")
    r = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == (REPO / "runtime_shim" / "__init__.py").read_bytes()


def test_vendor_shim_files(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    v = vendor_shim(tmp_path / "mypkg" / "_vendor", tmp_path)
    assert v.module == "mypkg._vendor.runtime_shim"
    assert v.path.read_bytes() == HEADER.encode() + shim_source_file().read_bytes()
    assert is_vendored_shim(v.path.read_bytes())
    assert v.created_init == tmp_path / "mypkg" / "_vendor" / "__init__.py"  # inside a package: a subpackage
    # a top-level folder stays a namespace package: no __init__.py
    v = vendor_shim(tmp_path / "third_party", tmp_path)
    assert v.created_init is None and not (tmp_path / "third_party" / "__init__.py").exists()
    # updating a vendored shim is fine; a file of the user's is never overwritten
    vendor_shim(tmp_path / "third_party", tmp_path)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "runtime_shim.py").write_text("# mine\n")
    with pytest.raises(VendorError, match="not overwriting"):
        vendor_shim(tmp_path / "lib", tmp_path)


def test_a_vendored_shim_is_never_ported():
    source = HEADER.encode() + shim_source_file().read_bytes()
    assert source.startswith(MARKER)
    result = migrate_bytes(source, "pkg/_vendor/runtime_shim.py", Options())
    assert result.state is FileState.UNCHANGED and result.new == source


def _isolated_env():
    torch = pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TORCHDEVICE_"))}
    env["PYTHONPATH"] = str(Path(torch.__file__).resolve().parent.parent)  # torch's site-packages only
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _run_isolated(code, cwd, env, timeout=300):
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_isolated_python_cannot_import_the_installed_shim(tmp_path):
    env = _isolated_env()
    r = _run_isolated("import importlib.util as u, torch; print(u.find_spec('runtime_shim'))", tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "None"


RUN_TRAIN = ("import runpy, sys; sys.argv = ['train.py', '--epochs', '3']; "
             "runpy.run_path('train.py', run_name='__main__'); "
             "import {module} as shim; print('SHIM', shim.__file__)")


@pytest.mark.parametrize("vendor,module,init", [
    ("classifier/_vendor", "classifier._vendor.runtime_shim", True),
    (".", "runtime_shim", False),
])
def test_vendored_port_runs_without_torchdevice_migrate(tmp_path, cli_env, vendor, module, init):
    src, dest = tmp_path / "src", tmp_path / "port"
    shutil.copytree(EXAMPLE, src)
    r = run_cli([src, "--out", dest, "--vendor", vendor], env=cli_env)
    assert r.returncode == 0, r.stderr
    shim_file = dest / vendor / "runtime_shim.py"
    assert is_vendored_shim(shim_file.read_bytes())
    assert (dest / vendor / "__init__.py").exists() is init
    parent, _, last = module.rpartition(".")
    expected_import = f"from {parent} import {last}" if parent else f"import {last}"
    assert expected_import in (dest / "train.py").read_text()
    assert not (src / vendor / "runtime_shim.py").exists()  # the original is never written to

    r = _run_isolated(RUN_TRAIN.format(module=module), dest, _isolated_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(re.findall(r"epoch \d+ loss", r.stdout)) == 3
    (shim_path,) = re.findall(r"^SHIM (.*)$", r.stdout, re.MULTILINE)
    assert Path(shim_path).resolve() == shim_file.resolve()

    # porting the port again changes nothing: the vendored shim is not ported
    r = run_cli([dest, "--check", "--shim-module", module], env=cli_env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vendor_in_place_and_usage_errors(tmp_path, cli_env):
    project = tmp_path / "proj"
    shutil.copytree(EXAMPLE, project)
    r = run_cli([project, "--vendor", "classifier/_vendor", "--shim-module", "x.runtime_shim"], env=cli_env)
    assert r.returncode == 2 and "--shim-module" in r.stderr
    r = run_cli([project / "train.py", "--vendor", "."], env=cli_env)
    assert r.returncode == 2 and "one project folder" in r.stderr
    (project / "lib").mkdir()
    (project / "lib" / "runtime_shim.py").write_text("# mine\n")
    r = run_cli([project, "--vendor", "lib"], env=cli_env)
    assert r.returncode == 2 and "not overwriting" in r.stderr
    assert "cuda" in (project / "train.py").read_text()  # nothing written on a usage error
    r = run_cli([project, "--vendor", "classifier/_vendor"], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "from classifier._vendor import runtime_shim" in (project / "train.py").read_text()
    assert is_vendored_shim((project / "classifier" / "_vendor" / "runtime_shim.py").read_bytes())
    r = run_cli([project, "--check", "--shim-module", "classifier._vendor.runtime_shim"], env=cli_env)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------------
# The shim says once, at first use, which device it chose and why (TORCHDEVICE_LOG_LEVEL)
# ---------------------------------------------------------------------------

USE_SHIM = "import runtime_shim; runtime_shim.device(); runtime_shim.device('cuda'); runtime_shim.device_string()"


def _shim_run(env_extra):
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHDEVICE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", USE_SHIM], env=env, capture_output=True, text=True, timeout=120)


def test_shim_logs_its_choice_once_at_info():
    r = _shim_run({"TORCHDEVICE_LOG_LEVEL": "INFO"})
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("runtime_shim:")]
    assert len(lines) == 1, r.stderr
    assert re.match(r"runtime_shim: using \S+ \(.+\)$", lines[0]), lines[0]
    r = _shim_run({"TORCHDEVICE_LOG_LEVEL": "INFO", "TORCHDEVICE_DEVICE": "cpu"})
    assert "runtime_shim: using cpu (forced by TORCHDEVICE_DEVICE=cpu)" in r.stderr


def test_shim_is_silent_by_default():
    r = _shim_run({})
    assert r.returncode == 0, r.stderr
    assert "runtime_shim" not in r.stderr and r.stdout == ""
