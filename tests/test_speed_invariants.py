"""The faster metadata plumbing gives exactly what LibCST's own providers and visitors give.

``rules/base.py`` and ``transform.py`` replace a few LibCST passes by cheaper equivalents (parents
from the node fields, positions from a leaner codegen state, scopes without the wrapper's empty
batched passes, qualified names on demand, AddImportsVisitor on the head of the module, no deep
copy of a freshly parsed module). These tests hold them to LibCST's results on every fixture, so
that a LibCST upgrade that breaks an assumption fails here rather than changing output.
No timings here: see ``benchmarks/codemod_speed.py``.
"""

from pathlib import Path

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import ParentNodeProvider, PositionProvider, QualifiedNameProvider, ScopeProvider

from torchdevice_migrate.rules.base import _parent_map, resolve_positions, resolve_scopes
from torchdevice_migrate.transform import _add_imports_at_top

from .conftest import FIXTURES

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in list(FIXTURES.rglob("*.py")) + list((REPO / "examples").rglob("*.py")))
EXTRA = [
    "",
    "x = 1\n",
    '"""Doc."""\n',
    '"""Doc."""\nimport os\n',
    "__strict__ = True\nimport os\nfrom typing import List\n\n# c\ndef f():\n    import sys\n",
    "import os\r\nx = 'a\\r\\nb'\r\n",
    "from typing import Optional\nimport os\nclass A:\n    from typing import List\n",
]


def _modules():
    for p in SOURCES:
        try:
            yield p.name, cst.parse_module(p.read_bytes())
        except cst.ParserSyntaxError:
            continue
    for i, code in enumerate(EXTRA):
        yield f"extra{i}", cst.parse_module(code)


MODULES = list(_modules())


@pytest.mark.parametrize("name,module", MODULES, ids=[n for n, _ in MODULES])
def test_metadata_equals_libcst_providers(name, module):
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    # A freshly parsed module holds no node twice (what the skipped deep copy would guarantee).
    parents = _parent_map(module)
    seen, todo = 0, [module]
    while todo:
        node = todo.pop()
        seen += 1
        todo.extend(node.children)
    assert seen == len(parents)

    expected_parents = dict(wrapper.resolve(ParentNodeProvider))
    expected_parents[module] = None
    assert parents == expected_parents
    assert dict(resolve_positions(module)) == dict(wrapper.resolve(PositionProvider))

    scopes = resolve_scopes(module)
    expected_scopes = wrapper.resolve(ScopeProvider)
    # Both also hold the nodes of string annotations, which each run parses anew (not tree nodes).
    assert len(scopes) == len(expected_scopes)
    assert {n for n in scopes if n in parents} == {n for n in expected_scopes if n in parents}
    qualnames = wrapper.resolve(QualifiedNameProvider)
    for node in parents:
        scope = scopes.get(node)
        assert type(scope) is type(expected_scopes.get(node))
        mine = {q.name for q in scope.get_qualified_names_for(node)} if scope else set()
        value = qualnames.get(node, ())
        assert mine == {q.name for q in (value() if callable(value) else value)}


@pytest.mark.parametrize("name,module", MODULES, ids=[n for n, _ in MODULES])
@pytest.mark.parametrize("imports", [
    [("runtime_shim", None, None)],
    [("os", None, None), ("typing", "List", None)],
    [("pkg", "runtime_shim", "_runtime_shim"), ("__future__", "annotations", None)],
])
def test_add_imports_on_the_head_equals_the_whole_module(name, module, imports):
    def context():
        ctx = CodemodContext()
        for module_name, obj, asname in imports:
            AddImportsVisitor.add_needed_import(ctx, module_name, obj, asname=asname)
        return ctx

    expected = AddImportsVisitor(context()).transform_module(module).code
    # The head-only shortcut (where the imports go is _add_imports' business: tests/test_project_index.py)
    assert _add_imports_at_top(context(), module).code == expected


# ---- the parallel runner stops with its parent (issue 12) --------------------------------------

import os as _os
import signal as _signal
import subprocess as _subprocess
import sys as _sys
import time as _time

import psutil as _psutil


def _busy_tree(root: Path, n: int = 48) -> Path:
    body = "".join(f"def f{i}(x):\n    return x.cuda() + torch.ones({i}).cuda()\n\n" for i in range(400))
    for i in range(n):
        (root / f"m{i:03d}.py").write_text("import torch\n\n" + body)
    return root


def _start(root: Path):
    proc = _subprocess.Popen([_sys.executable, "-m", "torchdevice_migrate", "--no-config", "-q", "-j", "2", str(root)],
                             stdout=_subprocess.DEVNULL, stderr=_subprocess.DEVNULL)
    parent = _psutil.Process(proc.pid)
    workers = []
    for _ in range(600):  # until the workers are up (or the run is over)
        try:
            workers = parent.children(recursive=True)
        except _psutil.NoSuchProcess:
            break
        if len(workers) >= 2 or proc.poll() is not None:
            break
        _time.sleep(0.05)
    return proc, workers


def _gone(procs) -> bool:
    for _ in range(200):
        alive = [p for p in procs if p.is_running() and p.status() != _psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        _time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_workers_stop_with_the_parent_and_leave_no_temporary_files(tmp_path, how):
    root = _busy_tree(tmp_path)
    proc, workers = _start(root)
    assert workers, "the run started worker processes"
    _os.kill(proc.pid, getattr(_signal, how))
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert _gone(workers), "a worker outlived its parent"
    assert not list(root.rglob("*.tdm-tmp"))


def test_a_run_imports_libcst_only_for_files_that_may_use_cuda(tmp_path):
    """--version, --help and a run over files without CUDA words never import LibCST (issue 12)."""
    plain = tmp_path / "plain.py"
    plain.write_text("def f(x):\n    return x + 1  # not on cuda\n")
    code = ("import sys\nfrom torchdevice_migrate.cli import main\nsys.argv = ['tdm', '--no-config', '--check', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "print(sorted(m for m in sys.modules if m == 'libcst' or m.startswith('libcst.')))\n")
    out = _subprocess.run([_sys.executable, "-c", code, str(plain)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_light_option_tables_equal_the_targets_module():
    from torchdevice_migrate import options, targets

    assert options.TARGETS == targets.TARGETS and options.DEFAULT_TARGET == targets.DEFAULT_TARGET
