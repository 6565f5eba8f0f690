"""The project index (project_index.py), files judged in their project, TorchScript, import placement.

Multi-file golden cases: ``fixtures/project_index/<case>/`` is a small project (it has a root marker);
``fixtures/project_index/<case>.expected/`` holds the port of every file that changes, at the same
relative path, and ``<case>.findings`` the findings of every file (``path line:column CODE status``).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from torchdevice_migrate.engine import discover, migrate_path
from torchdevice_migrate.options import Options
from torchdevice_migrate.project_index import (
    FileInfo,
    ProjectIndex,
    cache_file,
    find_root,
    index_for,
    index_source,
)
from torchdevice_migrate.transform import migrate_source, migrate_text

from .conftest import FIXTURES

PROJECTS = FIXTURES / "project_index"
CASES = sorted(p for p in PROJECTS.iterdir() if p.is_dir() and not p.name.endswith(".expected"))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", str(tmp_path / "cache"))


# ---- the facts of one file -------------------------------------------------------------------

SOURCE = b'''
import torch
import torch.nn as nn

class Ema:
    def cuda(self):
        return self

class Batch:
    def to(self, dev):
        return self
    @property
    def is_cuda(self):
        return True

class Net(nn.Module):
    pass

class Moving(Net):
    def cuda(self, device=None):
        return super().cuda(device)

def get_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")

def not_a_helper():
    return "cuda_rng_state"

state = torch.load(path)
other = torch.load(path, map_location="cpu")
m = Net()
scripted = torch.jit.script(m)
'''


def test_index_source_facts():
    info = index_source(SOURCE)
    classes = {c.name: c for c in info.classes}
    assert classes["Ema"].members == {"cuda"}
    assert classes["Batch"].members == {"to", "is_cuda"} and classes["Batch"].to_positional_only
    assert classes["Moving"].bases == ("Net",)
    assert info.device_helpers == ("get_device",)
    assert info.load_sites == (29,)
    assert info.uses_cuda
    assert info.scripted == ("Net",)


def test_module_classes_through_the_project():
    project = ProjectIndex(None, {"a.py": index_source(SOURCE)})
    assert project.is_plain_module_class("Net")
    assert not project.is_plain_module_class("Moving")  # overrides cuda
    assert not project.is_plain_module_class("Ema")  # not a module
    assert not project.is_plain_module_class("Unknown")
    assert "is_cuda" in project.members("Batch")
    assert project.device_helpers() == {"get_device"}


@pytest.mark.parametrize("source", [b"x = 'cuda_rng_state'\nimpl = 'cuda'\n", b"import torch\nsd = torch.load(p)\n",
                                    b"def f(:\n"])
def test_no_cuda_use(source):
    assert not index_source(source).uses_cuda


def test_index_is_plain_data(tmp_path):
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "m.py").write_bytes(SOURCE)
    index = index_for([tmp_path / "m.py"])
    again = pickle.loads(pickle.dumps(index))
    assert again.files == index.files and again.uses_cuda


# ---- root and cache --------------------------------------------------------------------------

def test_find_root(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    f = tmp_path / "a" / "b" / "m.py"
    f.write_text("")
    assert find_root([f]) == tmp_path
    assert find_root([tmp_path / "a"]) == tmp_path


def test_cache_is_used_and_a_broken_cache_is_ignored(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".git").mkdir()
    (root / "m.py").write_bytes(SOURCE)
    first = index_for([root])
    path = cache_file(root)
    assert path is not None and path.exists()
    # A cached entry is found by content: a changed file is indexed again.
    (root / "m.py").write_bytes(b"import torch\nx = y.cuda()\n")
    assert index_for([root]).files["m.py"].classes == ()
    path.write_bytes(b"not a pickle")
    assert index_for([root]).files["m.py"].uses_cuda
    (root / "m.py").write_bytes(SOURCE)
    assert index_for([root]).files == first.files


def test_unwritable_cache_is_ignored(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", str(blocker / "cache"))  # below a file: cannot exist
    (tmp_path / "setup.cfg").write_text("")
    (tmp_path / "m.py").write_bytes(SOURCE)
    assert index_for([tmp_path]).files["m.py"].device_helpers == ("get_device",)
    monkeypatch.setenv("TORCHDEVICE_MIGRATE_CACHE", "off")
    assert cache_file(tmp_path) is None


def test_index_leaves_the_project_tree_alone(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    (root / "m.py").write_bytes(SOURCE)
    before = sorted(p.name for p in root.rglob("*"))
    index_for([root])
    assert sorted(p.name for p in root.rglob("*")) == before


# ---- files judged in their project -----------------------------------------------------------

def _port_tree(root: Path, index: ProjectIndex):
    out = {}
    for f in discover([root], suffixes=(".py",)):
        r = migrate_path(f, Options(project=index))
        assert r.error is None, r.error
        out[f.relative_to(root).as_posix()] = (r.new, [f"{x.line}:{x.column} {x.code} {x.status.value}" for x in r.findings])
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_project_case(case: Path):
    got = _port_tree(case, index_for([case]))
    expected_dir = case.with_name(case.name + ".expected")
    for rel, (new, _) in got.items():
        want = expected_dir / rel
        original = (case / rel).read_bytes()
        assert new == (want.read_bytes() if want.exists() else original), rel
        if want.exists():
            assert new != original, f"{rel}: expected port equals the input; remove it from {expected_dir.name}"
    want_findings = [line for line in case.with_name(case.name + ".findings").read_text().splitlines() if line]
    assert [f"{rel} {f}" for rel, (_, fs) in sorted(got.items()) for f in fs] == want_findings


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_one_staged_file_is_ported_as_in_the_whole_tree(case: Path, tmp_path):
    """A pre-commit run names one file; the index still covers its project."""
    tree = _port_tree(case, index_for([case]))
    for rel, (new, findings) in tree.items():
        alone = migrate_path(case / rel, Options(project=index_for([case / rel])))
        assert alone.new == new, rel
        assert [f"{x.line}:{x.column} {x.code} {x.status.value}" for x in alone.findings] == findings, rel


def test_cli_ports_a_helper_load_in_a_cuda_project(tmp_path):
    from typer.testing import CliRunner

    from torchdevice_migrate.cli import app

    shutil.copytree(PROJECTS / "cross_file", tmp_path / "p")
    result = CliRunner().invoke(app, [str(tmp_path / "p" / "pkg" / "ckpt.py"), "--diff"])
    assert "map_location=runtime_shim.load_location()" in result.output


def test_without_a_project_a_lone_load_stays():
    """A file ported on its own keeps the old rule: a load alone does not make it CUDA-using."""
    src = b"import torch\n\ndef load(p):\n    return torch.load(p)\n"
    assert migrate_source(src, "m.py").new == src
    in_cuda_project = ProjectIndex(None, {"other.py": FileInfo(uses_cuda=True)})
    assert b"load_location()" in migrate_source(src, "m.py", Options(project=in_cuda_project)).new


# ---- TorchScript -----------------------------------------------------------------------------

SCRIPTED = '''
import torch
import torch.nn as nn


@torch.jit.script
def place(t: torch.Tensor) -> torch.Tensor:
    if t.is_cuda:
        return t.cuda()
    if t.device.type == "cuda":
        return t
    return t * 2


class Head(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            return x.cuda() * 2
        return x + 1


class Old(torch.jit.ScriptModule):
    @torch.jit.script_method
    def forward(self, x):
        return x.cuda() if x.is_cuda else x - 1


def eager(t):
    return t.cuda()


head = torch.jit.script(Head())
old = Old()
'''


def test_scripted_code_still_scripts_after_the_port(tmp_path, monkeypatch):
    import importlib

    import torch

    new = migrate_text(SCRIPTED)
    assert "eager(t):\n    return runtime_shim.to_device(t)" in new  # outside TorchScript: ported
    assert new.count("runtime_shim.") == 1
    (tmp_path / "ported_scripted.py").write_text(new)  # TorchScript reads the source of what it compiles
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace = vars(importlib.import_module("ported_scripted"))
    x = torch.ones(2)
    assert torch.equal(namespace["place"](x), x * 2)
    assert torch.equal(namespace["head"](x), x + 1)
    assert torch.equal(namespace["old"](x), x - 1)
    codes = [f.code for f in migrate_source(SCRIPTED.encode(), "s.py").findings]
    assert codes.count("TDM214") == 6


# ---- where the import goes -------------------------------------------------------------------

def test_vendored_import_follows_the_path_setup():
    src = ("import os\nimport sys\n\nimport torch\n\nsys.path.insert(0, os.path.dirname(__file__))\n"
           "from helpers import build\n\nmodel = build().cuda()\n")
    new = migrate_text(src, Options(shim_module="pkg._vendor.runtime_shim"))
    lines = new.splitlines()
    assert lines.index("from pkg._vendor import runtime_shim") > lines.index("sys.path.insert(0, os.path.dirname(__file__))")
    assert lines.index("from pkg._vendor import runtime_shim") == lines.index("from helpers import build") + 1


def test_plain_import_follows_torch_not_the_environment_setup():
    src = 'import os\nos.environ["OMP_NUM_THREADS"] = "1"\nimport torch\n\nx = torch.ones(2).cuda()\n'
    lines = migrate_text(src).splitlines()
    assert lines[:4] == ["import os", 'os.environ["OMP_NUM_THREADS"] = "1"', "import torch", "import runtime_shim"]


def test_existing_shim_import_is_not_duplicated():
    src = 'import os\nos.environ["X"] = "1"\nimport torch\nimport runtime_shim\n\nx = torch.ones(2).cuda()\n'
    assert migrate_text(src).count("import runtime_shim") == 1


def test_a_file_ported_from_the_bytes_the_index_was_taken_from_is_not_indexed_again(tmp_path, monkeypatch):
    import torchdevice_migrate.project_index as pi

    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "helpers.py").write_text("import torch\n\ndef get():\n    return torch.device('cuda')\n")
    main = tmp_path / "main.py"
    main.write_text("import torch\nx = torch.zeros(2).cuda()\ny = torch.load('w.pt')\n")
    project = pi.index_for([tmp_path], cache=False)
    assert project is not None and project.digests  # the entries remember the bytes they came from
    calls = []
    real = pi.index_source
    monkeypatch.setattr(pi, "index_source", lambda source: calls.append(source) or real(source))
    same = migrate_path(main, Options(project=project))
    assert calls == [] and same.new != same.original  # the index's entry serves: no second parse
    main.write_text("import torch\nx = torch.zeros(2).cuda()\nz = torch.load('v.pt')\n")
    edited = migrate_path(main, Options(project=project))
    assert len(calls) == 1 and b"map_location" in edited.new  # other bytes: indexed again, as before


_FACT_SPELLINGS = [
    "import torch\nx = y.cuda()\n\ndef f():\n    device = '\\x63uda'\n",
    "import torch\nz = 'cuda'\nclass A:\n    def g(self):\n        self.device = ('cu'\n                       'da:0')\n",
    "import torch\n# cuda\n@deco(torch.load(p))\ndef h():\n    pass\n",
    "import torch\nx = 'cuda'\ntry:\n    pass\nexcept E as e:\n    m = torch.load(f)\n",
    "import torch as th\ny = 1  # cuda\nmatch a:\n    case 1:\n        w = th.load(p)\n",
    "import torch\nz = 1  # cuda\ndef helper():\n    return torch.device('c\\165da')\nx.to(helper())\n",
]


def test_the_index_walks_only_statements_that_can_hold_a_fact():
    """``index_source`` skips the statements on whose lines no fact can start (``_walk_lines``): the same
    facts as walking every node, on every fixture and on spellings that hide ``cuda`` from the text."""
    import ast

    from torchdevice_migrate import project_index

    sources = [p.read_bytes() for p in sorted(FIXTURES.rglob("*.py"))] + [s.encode() for s in _FACT_SPELLINGS]
    pruned = [project_index.index_source(s) for s in sources]
    assert sum(bool(i.uses_cuda) for i in pruned) > 50 and any(i.load_sites for i in pruned)
    real = project_index._walk_lines
    try:
        project_index._walk_lines = lambda tree, lines: ast.walk(tree)
        full = [project_index.index_source(s) for s in sources]
    finally:
        project_index._walk_lines = real
    assert pruned == full
    assert all(i.uses_cuda or i.load_sites for i in pruned[-len(_FACT_SPELLINGS):])  # each shows a fact
