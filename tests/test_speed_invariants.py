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


# ---- the lazy project index (issue 12): the facts of an eager index ------------------------------

from torchdevice_migrate import project_index as _pi  # noqa: E402

_INDEX_CASES = {
    "plain.py": "class A(nn.Module):\n    def to(self, d):\n        return self\n",
    "two.py": "# a comment that ends with the word class\nclass Net(A):\n    pass\nclass  \\\n  Other(Net): pass\n",
    "cuda.py": "import torch\nclass C(A):\n    def cuda(self):\n        return self\nx = y.cuda()\n",
    "helper.py": "def get_device():\n    return 'cuda:0'\n",
    "jit.py": "import torch\nclass S(A): pass\nm = S()\nscripted = torch.jit.script(m)\n",
    "load.py": "import torch\nsd = torch . load(path)\nclass L(Net): device = None\n",
    "load_only.py": "import torch\nsd = torch.load(path)\n",
    "unicode.py": "class Ｎｅｔ2(A):\n    def to(self, d): ...\n",
    "cookie.py": "# -*- coding: shift_jis -*-\nclass J(A): pass\n",
    "inner.py": "def f():\n    class Hidden(A): pass\nif x:\n    class Shown(A):\n        cpu = 1\n",
    "broken.py": "class (:\n",
    "empty.py": "",
}


def _index_tree(root: Path) -> list:
    for name, text in _INDEX_CASES.items():
        (root / name).write_text(text, encoding="utf-8")
    return sorted(root.glob("*.py")) + sorted(FIXTURES.joinpath("projects").rglob("*.py"))


def test_lazy_index_gives_the_facts_of_the_eager_index(tmp_path):
    files = _index_tree(tmp_path)
    eager = _pi.build_index(files, None, cache=False, lazy=False)
    lazy = _pi.build_index(files, None, cache=False)
    assert lazy.lazy, "some files are left for later"
    assert lazy.uses_cuda == eager.uses_cuda and lazy.scripted_classes() == eager.scripted_classes()
    assert lazy.device_helpers() == eager.device_helpers()
    names = {c.name for f in eager.files.values() for c in f.classes} | {"Missing", "Net2", "Ｎｅｔ2"}
    for member in ("cuda", "to", "cpu", "device", "is_cuda"):
        assert _pi.build_index(files, None, cache=False).defines_anywhere(member) == eager.defines_anywhere(member)
    for name in sorted(names):
        assert sorted(map(repr, lazy.classes(name))) == sorted(map(repr, eager.classes(name))), name
        assert lazy.mro_members(name) == eager.mro_members(name) and lazy.members(name) == eager.members(name)
        assert lazy.is_plain_module_class(name) == eager.is_plain_module_class(name)
    assert lazy.all_files() == eager.files
    # A file being ported replaces its lazy entry (``project_of``'s merge).
    key = lazy.key_for(str(tmp_path / "two.py"))
    assert key in lazy.lazy
    merged = lazy.merged(key, _pi.FileInfo(uses_cuda=True))
    assert key not in merged.lazy and merged.uses_cuda and merged.classes("Net") == []


def test_lazy_index_parses_only_what_it_is_asked_about(tmp_path):
    files = _index_tree(tmp_path)
    lazy = _pi.build_index(files, None, cache=False)
    assert lazy.key_for(str(tmp_path / "plain.py")) in lazy.lazy
    assert not lazy._loaded
    lazy.classes("A")
    assert list(lazy._loaded) == [lazy.key_for(str(tmp_path / "plain.py"))]
