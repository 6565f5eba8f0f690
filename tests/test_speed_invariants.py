"""The faster metadata plumbing gives exactly what LibCST's own providers and visitors give.

``rules/base.py`` and ``transform.py`` replace a few LibCST passes by cheaper equivalents (parents
from the node fields, positions from a leaner codegen state, scopes without the wrapper's empty
batched passes, qualified names on demand, imports added as AddImportsVisitor adds them
(``add_imports.py``), no deep copy of a freshly parsed module). These tests hold them to LibCST's results on every fixture, so
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


# ---- the parallel run builds the index in its workers (issue 12): the one-process run's results ---

import json as _json  # noqa: E402
import shutil as _shutil  # noqa: E402

from torchdevice_migrate import cli as _cli  # noqa: E402
from torchdevice_migrate import engine as _engine  # noqa: E402
from torchdevice_migrate.findings import FileState  # noqa: E402
from torchdevice_migrate.options import Options as _Options  # noqa: E402


def _fp(results):
    return [(r.path, r.state, r.original, r.new, r.error, r.read_stat,
             [(f.line, f.column, f.code, f.status, f.message) for f in r.findings]) for r in results]


def _parallel_project(root: Path) -> Path:
    """A project whose ports depend on the index: classes defined in other files, a ``torch.load``
    that is a candidate only because the project uses CUDA, a file left lazy, an unreadable file,
    a file that does not parse, a notebook, and the example projects."""
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    for name, text in _INDEX_CASES.items():
        (root / name).write_text(text, encoding="utf-8")
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "models.py").write_text("import torch.nn as nn\nclass Plain(nn.Module):\n    pass\n"
                                   "class Custom(nn.Module):\n    def cuda(self):\n        return self\n")
    (pkg / "use.py").write_text("import torch\nfrom .models import Plain, Custom\n"
                                "a = Plain().cuda()\nb = Custom().cuda()\nx = torch.ones(2).cuda()\n")
    (pkg / "ckpt.py").write_text("import torch\n\ndef restore(path):\n    return torch.load(path)\n")
    (pkg / "lazy_base.py").write_text("class Base:\n    def to(self, d):\n        return self\n")
    # Large enough to be sliced (a slice the cold scan plans and the cache keeps), and CUDA words
    # only in comments (a decision the cache keeps: no port).
    (pkg / "big.py").write_text("import torch\n\n" + "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300))
                                + "def g(x, device='cuda'):\n    return x.to(device)\n")
    (pkg / "comments.py").write_text("import torch\n# move everything to cuda first\nx = 1\n")
    (pkg / "nb.ipynb").write_text(_json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                                          "execution_count": None, "source": ["x = y.cuda()\n"]}],
                                               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    if hasattr(_os, "mkfifo"):
        _os.mkfifo(pkg / "fifo.py")
    for p in sorted((FIXTURES / "projects").iterdir()):
        if p.is_dir():
            _shutil.copytree(p, root / p.name)
    return root


def _project_without_cuda_use(root: Path) -> Path:
    """A project the index says uses no CUDA, whose files the rules still change (a device index,
    a backend name, the AMP scaler): the parallel run must port them and leave ``torch.load`` be."""
    root.mkdir()
    (root / "setup.py").write_text("")
    (root / "dist.py").write_text('import torch.distributed as dist\ndist.init_process_group("nccl")\n')
    (root / "amp.py").write_text("import torch\ns = torch.amp.GradScaler()\nx = torch.ones(2).to(0)\n")
    (root / "ckpt.py").write_text("import torch\n\ndef restore(path):\n    return torch.load(path)\n")
    # No candidate here (the project uses no CUDA), so not this tool's business: no parse error.
    (root / "broken_ckpt.py").write_text("import torch\nsd = torch.load(path)\ndef (:\n")
    (root / "plain.py").write_text("def f(x):\n    return x\n")
    return root


@pytest.mark.parametrize("which", ["root", "subfolder", "files", "no_cuda_use"])
def test_parallel_run_equals_one_process_run_with_the_project_index(tmp_path, monkeypatch, which):
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", str(tmp_path / "cache"))
    if which == "no_cuda_use":
        _project_without_cuda_use(tmp_path / "proj")
    else:
        _parallel_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)
    paths = {"root": [Path("proj")], "subfolder": [Path("proj/pkg")], "no_cuda_use": [Path("proj")],
             # the same file twice, spelled two ways; a file outside the folder given first
             "files": [Path("proj/pkg"), Path("proj/pkg/../pkg/use.py"), Path("proj/load.py")]}[which]

    def go(jobs):
        the_plan = _cli.plan(paths, check=True, no_config=True)
        summary = _engine.run(the_plan.files, the_plan.options, jobs=jobs, progress=False, index=the_plan.index)
        return summary, the_plan.options.project

    cold, cold_index = go(2)  # workers compute every file's index entry (and the cache is written)
    if which in ("root", "subfolder"):  # the scan's decisions are cached with the index: a slice for big.py
        from torchdevice_migrate.project_index import _load_cache, cache_file

        where = cache_file((tmp_path / "proj").resolve())
        _, plans = _load_cache(where)
        assert any(plan is not None for kind, plan in plans.values())
        assert any(kind == _engine._NOT_CANDIDATE for kind, plan in plans.values())  # comments.py
        # Loading the cache imports no LibCST (a staged file without CUDA stays light).
        done = _subprocess.run([_sys.executable, "-c", "import sys\nfrom torchdevice_migrate.project_index import "
                                f"_load_cache\n_load_cache({str(where)!r})\nprint('libcst' in sys.modules)"],
                               capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "False"
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", "off")
    one, one_index = go(1)  # the reference: the index built in this process, every file ported here
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", str(tmp_path / "cache"))
    warm, warm_index = go(2)  # the entries the parallel run cached
    for summary, index in ((cold, cold_index), (warm, warm_index)):
        assert _fp(summary.results) == _fp(one.results)
        assert list(index.files.items()) == list(one_index.files.items())
        assert list(index.lazy.items()) == list(one_index.lazy.items())
    states = {Path(r.path).name: r.state for r in one.results}
    if which == "no_cuda_use":
        assert not one_index.uses_cuda and states["ckpt.py"] is FileState.UNCHANGED
        assert states["broken_ckpt.py"] is FileState.UNCHANGED
        assert states["dist.py"] is FileState.CHANGED and states["amp.py"] is FileState.CHANGED
        return
    assert one_index.uses_cuda and one_index.lazy, "the project uses CUDA and leaves files lazy"
    assert states["use.py"] is FileState.CHANGED and states["ckpt.py"] is FileState.CHANGED  # ckpt: the project trigger
    if hasattr(_os, "mkfifo"):
        assert states["fifo.py"] is FileState.ERROR


def test_a_parallel_run_without_workers_builds_the_index_here(tmp_path, monkeypatch):
    """Where worker processes cannot start, the files are ported in this process, with the index."""
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", "off")
    root = _parallel_project(tmp_path / "proj")

    def no_workers(*args, **kwargs):
        raise OSError("no /dev/shm")

    reference = _cli.plan([root], check=True, no_config=True)
    expected = _engine.run(reference.files, reference.options, jobs=1, index=reference.index)
    monkeypatch.setattr(_engine, "ProcessPoolExecutor", no_workers)
    the_plan = _cli.plan([root], check=True, no_config=True)
    got = _engine.run(the_plan.files, the_plan.options, jobs=2, progress=False, index=the_plan.index)
    assert _fp(got.results) == _fp(expected.results)
    assert the_plan.options.project is not None and the_plan.options.project.uses_cuda


_SCAN_CASES = {
    "comment.py": "import torch\nx = 1  # move it to cuda\n",
    "docstring.py": '"""Runs on cuda."""\nimport torch\n',
    "code.py": "import torch\nx = torch.ones(2).cuda()\n",
    "load.py": "import torch\nsd = torch.load(path)\n",
    "load_comment.py": "import torch\n# torch.load(path)\n",
    "load_and_comment.py": "import torch\nsd = torch.load(path)  # on cuda\n",
    "both_in_comments.py": "import torch\n# x.cuda(); sd = torch.load(path)\n",
    "broken.py": "import torch\nx.cuda()\ndef (:\n",
    "plain.py": "def f(x):\n    return x\n",
}


def test_the_scan_says_what_is_candidate_says(tmp_path):
    """The parallel runner's scan classifies each file once for both kinds of project. Where it ran
    the comment/docstring check (on the tree its index entry parsed), its answer must be
    ``is_candidate``'s whether the project uses CUDA or not; elsewhere the regexes' (the worker checks)."""
    from torchdevice_migrate.trigger import is_candidate

    for name, text in _SCAN_CASES.items():
        (tmp_path / name).write_text(text)
    files = sorted(tmp_path.glob("*.py")) + sorted(FIXTURES.rglob("*.py"))[:400]
    projects = (None, _pi.ProjectIndex(files={"a.py": _pi.FileInfo(uses_cuda=True)}), _pi.ProjectIndex())
    for index, kinds_seen in ((True, {_engine._NOT_CANDIDATE, _engine._CANDIDATE, _engine._IF_PROJECT_USES_CUDA}),
                              (False, {_engine._NOT_CANDIDATE, _engine._MAYBE, _engine._MAYBE_IF_PROJECT_USES_CUDA})):
        records = _engine._scan([(f, True, index) for f in files])
        kinds = set()
        for f, record in zip(files, records):
            source = f.read_bytes()
            assert record is not None and record[0] == source
            kinds.add(record[2])
            for project in projects:
                port_as = _engine._port_as(record[2], project is not None and project.uses_cuda)
                if port_as is None:  # no candidate
                    assert not is_candidate(source, project), (f, project)
                elif port_as:  # a candidate: the worker skips the pre-filter
                    assert is_candidate(source, project), (f, project)
                else:  # the worker runs the pre-filter
                    assert is_candidate(source, project, refine=False), (f, project)
        assert kinds >= kinds_seen and (index or not kinds & {_engine._CANDIDATE, _engine._IF_PROJECT_USES_CUDA})


_START_METHOD_SCRIPT = """\
import multiprocessing, sys
from pathlib import Path
from torchdevice_migrate import cli, engine

def fingerprint(summary):
    return [(r.path, r.state, r.new, r.error, [(f.line, f.code) for f in r.findings]) for r in summary.results]

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    root = Path(sys.argv[2])
    a = cli.plan([root], check=True, no_config=True)
    parallel = engine.run(a.files, a.options, jobs=2, progress=False, index=a.index)
    b = cli.plan([root], check=True, no_config=True)
    one = engine.run(b.files, b.options, jobs=1, index=b.index)
    assert "dispatched" in parallel.phases, "the workers ran (no fallback to this process)"
    assert fingerprint(parallel) == fingerprint(one)
    assert any(r.state.name == "CHANGED" for r in one.results)
    print("ok")
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_parallel_run_with_other_start_methods(tmp_path, method):
    """macOS starts workers by spawn, Python 3.14 on Linux by forkserver: the workers must run there
    too (a forkserver's workers are not the run's children: that is no reason to exit)."""
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    script = tmp_path / "run.py"
    script.write_text(_START_METHOD_SCRIPT)
    root = _parallel_project(tmp_path / "proj")
    env = dict(_os.environ, TORCHDEVICE_MIGRATE_CACHE="off")
    out = _subprocess.run([_sys.executable, str(script), method, str(root)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_scan_plans_the_slice_of_a_candidate_it_parsed(tmp_path, monkeypatch):
    """A cold parallel scan parses a candidate for the project index; it plans the file's slice there
    (slicing.plan) and sends it with the port, which then needs no parse of its own: the same port."""
    import pickle as _pickle

    big = ("import torch\n\n" + "".join(f"def f{i}(x, dev=None):\n    return x + {i}\n\n" for i in range(300))
           + "def g(x):\n    return x.cuda()\n")
    path = tmp_path / "big.py"
    path.write_text(big)
    for target in ("shim", "torch"):
        options = _Options(target=target)
        monkeypatch.setattr(_engine, "_WORKER_OPTIONS", options)
        record = _engine._scan([(path, True, True)])[0]
        kind, piece = record[5]
        assert kind == _engine._CANDIDATE and piece is not None and piece.hidden == []  # planned; sent without nodes
        sent = _pickle.loads(_pickle.dumps(piece))
        planned = _engine.migrate_bytes(big.encode(), str(path), options, candidate=True, piece=[sent])
        alone = _engine.migrate_bytes(big.encode(), str(path), options, candidate=True)
        assert planned.state is FileState.CHANGED
        assert (planned.new, planned.findings) == (alone.new, alone.findings)


def test_the_collector_runs_between_files_only_in_the_tools_own_processes(tmp_path):
    """A library caller's process keeps its garbage collector as it was; the CLI's process (and its
    workers) turn it off and collect between files, when a file left enough to collect."""
    import gc

    from torchdevice_migrate.engine import run
    from torchdevice_migrate.options import Options

    f = tmp_path / "m.py"
    f.write_text("import torch\nx = torch.zeros(1).cuda()\n")
    assert gc.isenabled()
    run([f], Options(), jobs=1)
    assert gc.isenabled()  # not the tool's process: left alone
    code = (
        "import gc, sys\nfrom pathlib import Path\nfrom torchdevice_migrate import engine\n"
        "from torchdevice_migrate.options import Options\n"
        "during = []\n"
        "engine.run([Path(sys.argv[1])], Options(), own_process=True, on_result=lambda r: during.append(gc.isenabled()))\n"
        "assert during == [False] and gc.isenabled()\n"  # off during the run, back on after it
        "engine.collect_between_files()\n"
        "for _ in range(2 * engine._YOUNG_LIMIT):\n"
        "    a = []; a.append(a)\n"  # a reference cycle: only the collector frees it
        "assert gc.get_count()[0] > engine._YOUNG_LIMIT\n"
        "engine.between_files()\n"
        "assert gc.get_count()[0] < 1000, gc.get_count()\n"
        "print('ok')\n")
    out = _subprocess.run([_sys.executable, "-c", code, str(f)], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
