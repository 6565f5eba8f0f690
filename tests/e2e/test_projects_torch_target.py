"""End-to-end, ``--target torch`` (issue 11): the projects of fixtures/projects ported for an upstream PR.

For every project:
  (a) the port exits 0, every ported file compiles and imports nothing new but torch and the standard
      library (no ``runtime_shim``);
  (b) a project whose port has no CPU-unsafe site (TDM115) and no site left in place (TDM307) runs on this
      CPU-only machine and does the work (the manifest's first run and its checks);
  (c) a project that has such sites is not run here: the report names each of them (file, line, code, a
      message saying why), so a reviewer knows what raises without an accelerator.
"""
from __future__ import annotations

import ast
import json
import shutil
import sys

import pytest

from .test_projects import IGNORE, MANIFEST, NAMES, check_output, copy_project, run_cli, run_step_with_retry

pytestmark = pytest.mark.e2e

STOPS_ON_CPU = {"TDM115", "TDM307"}  # CPU-unsafe torch spelling; no exact torch spelling (left in place)


def _imports(source: bytes) -> set:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.fixture(scope="module")
def torch_port(tmp_path_factory):
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            root = tmp_path_factory.mktemp(f"torch_{name}")
            src = copy_project(name, root / "src" / name)
            dest = root / "dest" / name
            port = run_cli(src, "--out", dest, "--target", "torch")
            report = run_cli(src, "--report", "--format", "json", "--target", "torch")
            cache[name] = (src, dest, port, report)
        return cache[name]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_torch_target_port_needs_only_torch(name, torch_port):
    src, dest, port, _ = torch_port(name)
    assert port.returncode == 0, port.describe()
    local = {p.stem for p in src.rglob("*.py")} | {p.name for p in src.rglob("*") if p.is_dir()}
    for f in sorted(dest.rglob("*.py")):
        new = f.read_bytes()
        compile(new, str(f), "exec")
        old = (src / f.relative_to(dest)).read_bytes()
        added = _imports(new) - _imports(old)
        foreign = {m for m in added if m != "torch" and m not in sys.stdlib_module_names and m not in local}
        assert not foreign, f"{f.relative_to(dest)}: --target torch added imports of {sorted(foreign)}"
        assert b"runtime_shim" not in new or b"runtime_shim" in old, f"{f.relative_to(dest)} uses the shim"


@pytest.mark.parametrize("name", NAMES)
def test_torch_target_runs_on_cpu_or_names_the_cpu_unsafe_sites(name, torch_port, tmp_path):
    _, dest, port, report = torch_port(name)
    assert port.returncode == 0 and report.returncode == 0, port.describe() + report.describe()
    findings = json.loads(report.stdout)["findings"]
    stops = [f for f in findings if f["code"] in STOPS_ON_CPU]
    if stops:
        for f in stops:  # the report says where and why, for each site
            assert f["path"].endswith(".py") and f["line"] > 0 and f["message"], f
        return
    work = tmp_path / name
    shutil.copytree(dest, work, ignore=IGNORE)
    step = MANIFEST[name]["runs"][0]
    proc = run_step_with_retry(step, work, tmp_path / "before_run")
    assert proc.returncode == 0, f"the torch-target port reports no CPU-unsafe site but fails here\n{proc.describe()}"
    failures = check_output(step["checks"], proc.stdout, work)
    assert not failures, f"exited 0 but did not do the work: {failures}\n{proc.describe()}"
