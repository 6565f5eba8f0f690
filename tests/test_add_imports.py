"""``add_imports.py`` adds imports exactly as LibCST's ``AddImportsVisitor`` does (issue 12).

The tool no longer imports ``libcst.codemod`` (~0.15 s through ``libcst.matchers``) to add the shim
import; the visitor stays the reference here. Every module the tool could see is covered: every
fixture (input and expected output), every example project file and every rule example (before and
after), plus import layouts written for the corner cases, each with the import sets the tool
schedules and some it does not. Both the bare insertion and the tool's placement (``_add_imports``:
after the torch import or the path setup) are compared.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from torchdevice_migrate import add_imports as adder
from torchdevice_migrate import transform
from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.rules.base import Example

from .conftest import FIXTURES

REPO = Path(__file__).resolve().parent.parent

CORNERS = [
    "",
    "\n",
    "# only a comment\n",
    "x = 1\n",
    '"""Doc."""\n',
    '"""Doc."""\nimport os\n',
    '"""Doc."""\n\n# c\nimport torch\nx = 1\n',
    'r"""Raw doc."""\nimport torch\n',
    '("Doc in parentheses")\nimport torch\n',
    '"Doc" "concatenated"\nimport torch\n',
    'f"not a docstring"\nimport torch\n',
    '"""Doc."""; import os\nimport torch\n',
    "__strict__ = True\nimport os\nfrom typing import List\n\n# c\ndef f():\n    import sys\n",
    "__strict__: bool = True\nimport os\n",
    "__strict__ = x = True\nimport os\n",
    "import os\r\nx = 'a\\r\\nb'\r\n",
    "import os\nimport torch\n# a comment first\nx = 1\n",
    "import os\nimport torch\n\n\n# a comment after an empty line\nx = 1\n",
    "import os; import torch\nx = 1\n",
    "from __future__ import annotations\nimport torch\n",
    "from __future__ import annotations\nfrom torch import nn\nx = 1\n",
    "from typing import Optional\nimport os\nclass A:\n    from typing import List\n",
    "from torch import *\nfrom pkg._vendor import *\nx = 1\n",
    "from torch import nn as tnn\nfrom pkg._vendor import runtime_shim as _runtime_shim\nx = 1\n",
    "from pkg._vendor import runtime_shim\nfrom pkg._vendor import other\nx = 1\n",
    "from pkg._vendor import (\n    other,  # why\n)\nx = 1\n",
    "from pkg._vendor import other as o, more\nx = 1\n",
    "from . import runtime_shim\nfrom .pkg import x\nimport torch\ny = 1\n",
    "import runtime_shim as _runtime_shim\nimport torch.nn as nn, os.path\nx = 1\n",
    "import runtime_shim\nimport torch\n",
    "import os.path as osp\nimport collections\nx = 1\n",
    "if True:\n    import torch\nimport os\n",
    "try:\n    import torch\nexcept ImportError:\n    torch = None\n",
    "\ufeffimport torch\n",
    "import torch\nif x:\n\ty = 1\n",
    # Placement after the path or environment setup the shim import needs (ported modules).
    "import sys\nsys.path.insert(0, 'src')\nfrom pkg import thing\nimport torch\n\nx = runtime_shim.f(y)\n",
    "import os\nos.environ['CUDA_VISIBLE_DEVICES'] = '0'\nimport numpy as np\n\nx = runtime_shim.f()\n",
    "import os\nx = 1\nimport torch\nfrom pkg._vendor import other\n# c\ny = runtime_shim.f()\n",
    '"""Doc."""\nimport sys\nsys.path.append("..")\nfrom pkg._vendor import runtime_shim as _runtime_shim\n'
    "import torch\nimport runtime_shim\n_runtime_shim.f()\nruntime_shim.g()\n",
    "import os\nimport site\nsite.addsitedir('lib')\nfrom pkg._vendor import other, runtime_shim\nimport torch\n"
    "\n\ndef f():\n    return _runtime_shim.f()\n",
]

#: What the tool schedules (the shim, plain, or vendored and aliased, with ``import torch``), then every
#: other kind of request at once (``__future__``, aliased modules, names, aliased names, one twice);
#: the test of the tool's placement adds the other shim spellings.
IMPORT_SETS = [
    [("runtime_shim", None, None)],
    [("torch", None, None), ("pkg._vendor", "runtime_shim", "_runtime_shim")],
    [("__future__", "annotations", None), ("os", None, None), ("collections", None, None), ("os.path", None, "osp"), ("typing", "List", None),
     ("typing", "Optional", None), ("typing", "Dict", "D"), ("torch", "cuda", "tc"), ("torch", "cuda", "tc"),
     ("runtime_shim", None, "_runtime_shim"), ("pkg._vendor", "runtime_shim", None)],
]


def _sources():
    paths = sorted(list(FIXTURES.rglob("*.py")) + list((REPO / "examples").rglob("*.py")))
    for p in paths:
        yield p.relative_to(REPO).as_posix(), p.read_bytes()
    for rule in ALL_RULES:
        for i, code in enumerate(rule.VALID):
            yield f"{rule.name}-valid-{i}", code.encode()
        for i, item in enumerate(rule.INVALID):
            example = Example.of(item)
            yield f"{rule.name}-invalid-{i}", example.before.encode()
            yield f"{rule.name}-invalid-{i}-after", example.after.encode()
    for i, code in enumerate(CORNERS):
        yield f"corner-{i}", code.encode()


def _top_end(body, at: int) -> int:
    while at < len(body) and transform._is_import_line(body[at]):
        at += 1
    return at


def _head_key(module: cst.Module, end: int):
    """The module cut after its first ``end`` statements, the next one standing in as a ``pass`` with
    its leading lines: all the visitor reads (the whole-module comparison on every module, with the
    tool's own sets, is ``tests/test_speed_invariants.py``)."""
    body = module.body
    head = list(body[:end])
    if end < len(body):
        head.append(cst.SimpleStatementLine([cst.Pass()], leading_lines=body[end].leading_lines))
    return module.with_changes(body=head).code, module.default_newline, module.default_indent


def _modules():
    """(name, module, its head as a module of its own), one per distinct head (~300 of ~560 modules;
    the visitor costs ~13 ms a call, and more on a large module: the visitor copies it first)."""
    seen = set()
    for name, data in _sources():
        try:
            module = cst.parse_module(data)
        except cst.ParserSyntaxError:
            continue
        key = _head_key(module, max(_top_end(module.body, 0), _top_end(module.body, 1)))
        if key not in seen:
            seen.add(key)
            yield name, module, cst.parse_module(key[0])


def _tail_placements(module: cst.Module):
    """(alias, vendored) where ``_add_imports`` inserts further down than the top imports."""
    body = module.body
    cut = _top_end(body, 1)
    for alias in ("runtime_shim", "_runtime_shim"):
        for vendored in (False, True):
            earliest = transform._earliest_import_position(module, alias, vendored)
            if cut < earliest < len(body):
                yield alias, vendored


HEADS = list(_modules())
MODULES = [(name, module) for name, module, _ in HEADS]
PLACED = [(name, module) for name, module in MODULES if any(_tail_placements(module))]


def _outcome(function, *args) -> str:
    try:
        return function(*args)
    except Exception as e:  # noqa: BLE001 - the same failure is the same outcome
        return f"raised {type(e).__name__}"


def _reference(module: cst.Module, imports) -> str:
    context = CodemodContext()
    for module_name, obj, asname in imports:
        AddImportsVisitor.add_needed_import(context, module_name, obj, asname=asname)
    return AddImportsVisitor(context).transform_module(module).code


def _ours(module: cst.Module, imports) -> str:
    context = adder.ImportContext()
    for module_name, obj, asname in imports:
        context.add_needed_import(module_name, obj, asname=asname)
    return adder.add_scheduled_imports(context, module).code


def test_the_corpus_is_broad():
    assert len(MODULES) > 250
    assert any(name.startswith("corner-") for name, _ in MODULES)
    assert any(name.endswith("-after") for name, _ in MODULES)
    assert len(PLACED) >= 5


@pytest.mark.parametrize("name,head", [(n, h) for n, _, h in HEADS], ids=[n for n, _, _ in HEADS])
def test_insertion_equals_add_imports_visitor(name, head):
    for imports in IMPORT_SETS:
        assert _outcome(_ours, head, imports) == _outcome(_reference, head, imports), imports


def test_a_request_the_visitor_cannot_sort_fails_the_same_way():
    imports = [("torch", "nn", None), ("torch", "nn", "tnn")]
    module = cst.parse_module("import os\nx = 1\n")
    assert _outcome(_ours, module, imports) == _outcome(_reference, module, imports) == "raised TypeError"


@pytest.mark.parametrize("name,module", PLACED, ids=[n for n, _ in PLACED])
def test_tool_placement_equals_the_placement_through_the_visitor(name, module, monkeypatch):
    """``_add_imports`` inserting after the torch import or the path setup the shim needs, with our
    insertion and with ``AddImportsVisitor`` in its place: the same module."""
    for alias, vendored in _tail_placements(module):
        imports = ([("pkg._vendor", "runtime_shim", None if alias == "runtime_shim" else alias)] if vendored
                   else [("runtime_shim", None, None if alias == "runtime_shim" else alias)])
        for extra in ([], [("torch", None, None)]):
            context = adder.ImportContext()
            for module_name, obj, asname in imports + extra:
                context.add_needed_import(module_name, obj, asname=asname)
            ours = transform._add_imports(context, module, alias, vendored=vendored).code
            with monkeypatch.context() as m:
                m.setattr(adder, "add_scheduled_imports",
                          lambda ctx, mod: AddImportsVisitor(ctx).transform_module(mod))
                reference = CodemodContext()
                for module_name, obj, asname in imports + extra:
                    AddImportsVisitor.add_needed_import(reference, module_name, obj, asname=asname)
                theirs = transform._add_imports(reference, module, alias, vendored=vendored).code
            assert ours == theirs, (alias, vendored, extra)


def test_future_imports_are_refused_as_by_the_visitor():
    context = adder.ImportContext()
    with pytest.raises(ValueError):
        context.add_needed_import("__future__")
    context.add_needed_import("__future__", "annotations", asname="a")
    with pytest.raises(ValueError):
        adder.add_scheduled_imports(context, cst.parse_module("x = 1\n"))


def test_relative_imports_and_package_names_go_to_the_visitor():
    module = cst.parse_module("from . import a\nx = 1\n")
    context = CodemodContext(full_package_name="pkg.sub")
    AddImportsVisitor.add_needed_import(context, "pkg.sub", "b")
    expected = AddImportsVisitor(context).transform_module(module).code
    assert adder.add_scheduled_imports(context, module).code == expected


def test_a_ported_file_does_not_import_libcst_codemod(tmp_path):
    """Adding the shim import no longer needs ``libcst.codemod`` (nor ``libcst.matchers``); removing an
    import left unused still does."""
    source = tmp_path / "m.py"
    source.write_text("import torch\nx = torch.zeros(2).cuda()\n")
    code = ("import sys\nfrom torchdevice_migrate.cli import main\n"
            "sys.argv = ['tdm', '--no-config', '--check', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 1, e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith(('libcst.codemod', 'libcst.matchers'))))\n")
    out = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---- imports left unused: remove_unused_imports equals RemoveImportsVisitor ---------------------

def _visitor_removal(module: cst.Module, removals) -> str:
    from libcst.codemod.visitors import RemoveImportsVisitor

    context = CodemodContext()
    for module_name, obj, asname in removals:
        RemoveImportsVisitor.remove_unused_import(context, module_name, obj, asname)
    return RemoveImportsVisitor(context).transform_module(module).code


def _scheduled(node) -> list:
    """What ``rules.base.forget_import`` schedules for each name of an import."""
    if isinstance(node, cst.Import):
        return [(a.evaluated_name, None, a.evaluated_alias) for a in node.names]
    if isinstance(node.names, cst.ImportStar) or node.module is None:
        return []
    module = "." * len(node.relative) + cst.helpers.get_full_name_for_node(node.module)
    return [(module, a.evaluated_name, a.evaluated_alias) for a in node.names]


REMOVAL_CORNERS = [
    ("from a import (\n    c,  # cc\n    b,  # bb\n)\nx = c\n", [("a", "b", None)]),
    ("from a import (  # head\n    b,  # bb\n    c,\n)\nx = c\n", [("a", "b", None)]),
    ("from a import (b,  # bb\n    c)\nx = c\n", [("a", "b", None)]),
    ("from a import c, b, d\nx = c + d\n", [("a", "b", None)]),
    ("from a import b as bb, c\n# about c\nx = c\n", [("a", "b", "bb")]),
    ("from a import b as bb, b\nx = b\n", [("a", "b", "bb")]),
    ("import os\n# comment\nfrom a import b\nx = 1\n", [("a", "b", None)]),
    ("import a.b as ab, os\nx = os\n", [("a.b", None, "ab")]),
    ("import a.b as ab\nimport a.b as ac\nx = 1\n", [("a.b", None, "ab"), ("a.b", None, "ac")]),
    ("from a import b;\nx = 1\n", [("a", "b", None)]),
    ("from a import b; import os\nx = 1\n", [("a", "b", None)]),
    ("from . import b\nfrom .a import c\nx = 1\n", [(".", "b", None), ("a", "c", None)]),
    ("from a import *\nfrom a import b\nx = 1\n", [("a", "b", None)]),
    ("from __future__ import annotations\nx = 1\n", [("__future__", "annotations", None)]),
    ("from a import b\nx = torch.b(y) + z . b\n", [("a", "b", None)]),
    ("from a import b\nx = (y.\n    b)\n", [("a", "b", None)]),
    ("from a import b\nx = b\n", [("a", "b", None)]),
    ("from a import b\n__all__ = ['b']\n", [("a", "b", None)]),
    ("from a import b\ndef f(x: 'b') -> None: ...\n", [("a", "b", None)]),
    ("from a import b\ndef f(x: '\\x62') -> None: ...\n", [("a", "b", None)]),
    ("from a import b\ndef f(x: 'List[\\\nb]') -> None: ...\n", [("a", "b", None)]),
    ("from a import b\nif x:\n    from a import b\n", [("a", "b", None)]),
    ("from a import b\n# b is gone\nx = 1\n", [("a", "b", None)]),
    ("from a import b\nx = f'{b}'\n", [("a", "b", None)]),
    ("from a import b\nfrom c import b\nx = 1\n", [("a", "b", None)]),
    ("from a import b\nb = 2\n", [("a", "b", None)]),
    ("from a import b, c\nfrom d import e as f\nx = 1\n", [("a", "b", None), ("a", "c", None), ("d", "e", "f")]),
    ("from a import (\n    c,  # cc\n    b,  # bb\n    # about d\n    d,\n)\nx = c + d\n", [("a", "b", None)]),
    ("from a import (  # head\n    b,  # bb\n    # about c\n    c,\n)\nx = c\n", [("a", "b", None)]),
    ("from a import autocast\ndef f(x: 'auto' 'cast') -> None: ...\n", [("a", "autocast", None)]),
    ("from a import autocast\nT = TypeVar('T', bound='auto'\n  'cast')\n", [("a", "autocast", None)]),
    ("from a import autocast\nlog('use torch.autocast')\n", [("a", "autocast", None)]),
]


@pytest.mark.parametrize("code,removals", REMOVAL_CORNERS, ids=[str(i) for i in range(len(REMOVAL_CORNERS))])
def test_removal_corners_equal_the_visitor(code, removals):
    module = cst.parse_module(code)
    assert (_outcome(lambda: adder.remove_unused_imports(module, removals).code)
            == _outcome(lambda: _visitor_removal(module, removals)))


def test_removal_after_a_name_the_tool_added_equals_the_visitor():
    """A name merged into a ``from`` import by the insertion has no comma of its own."""
    context = adder.ImportContext()
    context.add_needed_import("a", "z")
    module = adder.add_scheduled_imports(context, cst.parse_module("from a import b,c\nx = c + z\n"))
    assert module.code.startswith("from a import z, b,c\n")
    removals = [("a", "b", None)]
    assert adder.remove_unused_imports(module, removals).code == _visitor_removal(module, removals)


def test_removal_without_the_visitor_where_nothing_can_use_the_name():
    taken = [i for i, (code, removals) in enumerate(REMOVAL_CORNERS)
             if adder._remove_unreferenced(cst.parse_module(code), removals) is not None]
    # The attribute ``.b`` is not a use; a name, an export, a string annotation, an escape or a comment
    # that spells it sends the module to the visitor.
    assert 14 in taken and 15 in taken and 0 in taken
    assert not {16, 17, 18, 19, 20, 21, 22, 23, 29, 30, 31} & set(taken)


@pytest.mark.parametrize("name,head", [(n, h) for n, _, h in HEADS], ids=[n for n, _, _ in HEADS])
def test_removal_from_every_import_layout_equals_the_visitor(name, head):
    """In a module's head nothing uses its imports: the first name of each line and the last name of
    each line of several (a line goes, or loses a name and its comma)."""
    lines = [s.body[0] for s in head.body if transform._is_import_line(s)]
    removals = sorted({item for node in lines for item in _scheduled(node)[:1] + _scheduled(node)[1:][-1:]}, key=str)
    if not removals:
        return
    assert (_outcome(lambda: adder.remove_unused_imports(head, removals).code)
            == _outcome(lambda: _visitor_removal(head, removals))), removals


def test_removals_the_tool_schedules_equal_the_visitor(monkeypatch):
    """Every fixture and example whose port leaves an import unused: the same module as the visitor's."""
    from torchdevice_migrate.options import Options
    from torchdevice_migrate.transform import migrate_source

    cases = []
    real = adder.remove_unused_imports

    def record(module, removals, text_of=None):
        cases.append((module, list(removals)))
        result = real(module, removals, text_of)
        assert result.code == real(module, removals).code  # the statements' code at hand changes nothing
        return result

    monkeypatch.setattr(adder, "remove_unused_imports", record)
    for path in sorted(list(FIXTURES.rglob("*.py")) + list((REPO / "examples").rglob("*.py"))):
        if not path.name.endswith(".expected.py"):
            migrate_source(path.read_bytes(), str(path), Options())
    assert len(cases) >= 5
    fast = 0
    for module, removals in cases:
        fast += adder._remove_unreferenced(module, removals) is not None
        assert real(module, removals).code == _visitor_removal(module, removals), removals
    assert fast >= len(cases) // 2  # most ports need no scope analysis to remove the import
