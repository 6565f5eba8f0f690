"""Slicing (``slicing.py``): a large file's port made from the port of its reduced module equals the
port of the whole file, byte for byte and finding for finding.

The fixtures and rule examples are small, so here they are sliced as finely as possible
(``slice_min_bytes=0``: every function nothing can touch is set aside) and compared with the
reference (``slice_min_bytes=None``: LibCST parses the whole file). The pieces below check the cases
where information flows from one part of a file to another (the reasons a body is kept).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from torchdevice_migrate.options import Options, SourceError
from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.rules.base import Example
from torchdevice_migrate.slicing import plan
from torchdevice_migrate.transform import migrate_source
from torchdevice_migrate.trigger import is_candidate

REPO = Path(__file__).resolve().parent.parent


def _port(source: bytes, path: str = "case.py", **options):
    try:
        m = migrate_source(source, path, Options(**options), prefilter=False)
    except SourceError as e:
        return ("error", e.line, e.reason)
    return ("ok", m.new, [(f.line, f.column, f.end_line, f.end_column, f.code, f.api, f.status, f.message, f.hint,
                           f.original, f.replacement) for f in m.findings])


def _fixture_sources():
    files = sorted(p for p in (REPO / "fixtures").rglob("*.py") if not p.name.endswith(".expected.py"))
    files += sorted((REPO / "tests" / "e2e").rglob("*.py"))
    return [p for p in files if is_candidate(p.read_bytes())]


FIXTURES = _fixture_sources()


@pytest.mark.parametrize("target", ["shim", "torch"])
def test_every_fixture_sliced_finely_equals_the_whole_port(target):
    assert len(FIXTURES) > 100
    differences, sliced = [], 0
    for path in FIXTURES:
        source = path.read_bytes()
        if plan(source, Options(slice_min_bytes=0, target=target)) is None:
            continue  # ported whole either way
        sliced += 1
        whole = _port(source, str(path), slice_min_bytes=None, target=target, layout=True)
        if _port(source, str(path), slice_min_bytes=0, target=target, layout=True) != whole:
            differences.append(str(path.relative_to(REPO)))
    assert differences == []
    assert sliced >= 15  # the comparison covers sliced files, not only files that could not be


def test_every_rule_example_sliced_finely_equals_the_whole_port():
    differences, n = [], 0
    for rule in ALL_RULES:
        sources = [*rule.VALID, *(Example.of(item).before for item in rule.INVALID),
                   *(code for code, _ in getattr(rule, "REPORTS", ()))]
        for before in sources:
            source = before.encode()
            for target in ("shim", "torch"):
                n += 1
                if _port(source, slice_min_bytes=0, target=target) != _port(source, slice_min_bytes=None, target=target):
                    differences.append((rule.__name__, target, before[:60]))
    assert n > 300 and differences == []


BIG = b'''import torch


def unrelated(a, b):
    """Adds."""
    c = a + b
    return c


class Model(torch.nn.Module):
    """A model.

    Several lines of docstring.
    """

    def forward(self, x):
        y = x * 2
        return y

    @property
    def size(self):
        return 3

    def move(self, x):
        return x.cuda()


def after():
    return torch.cuda.synchronize()
'''


def test_bodies_nothing_can_touch_are_set_aside_and_put_back():
    piece = plan(BIG, Options(slice_min_bytes=0))
    assert piece is not None
    reduced = piece.reduced.decode()
    assert "c = a + b" not in reduced and "y = x * 2" not in reduced and "Several lines" not in reduced
    assert "return x.cuda()" in reduced and "torch.cuda.synchronize()" in reduced
    assert piece.restore(piece.reduced) == BIG
    sliced = _port(BIG, slice_min_bytes=0)
    assert sliced == _port(BIG, slice_min_bytes=None)
    lines = [f[0] for f in sliced[2]]
    assert lines == [25, 29]  # the original's lines, not the reduced module's


def test_a_moved_or_lost_placeholder_means_the_whole_file_is_ported():
    piece = plan(BIG, Options(slice_min_bytes=0))
    assert piece is not None
    assert piece.restore(piece.reduced.replace(b"__tdm_sliced_0__", b"x")) is None
    assert piece.restore(piece.reduced.replace(b"    __tdm_sliced_2__", b"  __tdm_sliced_2__")) is None
    assert piece.restore(piece.reduced.replace(b"def unrelated(): ", b"def unrelated(a): ")) is None


def test_methods_set_aside_next_to_each_other_go_as_one_line_unless_the_class_level_names_them():
    piece = plan(BIG, Options(slice_min_bytes=0))
    assert piece is not None
    assert b"def forward" not in piece.reduced and b"def size" not in piece.reduced  # one placeholder line
    named = BIG.replace(b"    def move(self, x):", b"    alias = forward\n\n    def move(self, x):")
    piece = plan(named, Options(slice_min_bytes=0))
    assert piece is not None and b"def forward(): __tdm_sliced_" in piece.reduced  # the class scope reads it
    assert _port(named, slice_min_bytes=0) == _port(named, slice_min_bytes=None)


@pytest.mark.parametrize("source, kept", [
    # a name bound next to a CUDA use, used in another function: the rule follows it there
    (b"import torch\nimport torch.multiprocessing as mp\nn = torch.cuda.device_count()\n\n"
     b"def main():\n    mp.spawn(fn, nprocs=n)\n\ndef other():\n    return 'unrelated'\n", "nprocs=n"),
    (b"import torch\nfrom torch.cuda import is_available as ok\n\ndef main():\n    return ok()\n"
     b"\ndef other():\n    return 'unrelated'\n", "return ok()"),
    # a name compared with 'cuda' (an implementation?): the rule looks for its other comparisons
    (b"import torch\n\ndef f(impl):\n    if impl == 'cuda':\n        return 1\n\n"
     b"def g(impl):\n    return impl == 'triton'\n\ndef other():\n    return 'unrelated'\n", "'triton'"),
    (b"import torch\n\ndef f(args):\n    return args.attn_impl == 'cuda'\n\ndef g(p):\n"
     b"    p.add_argument('--attn-impl', choices=['triton', 'eager'])\n\ndef other():\n    return 'unrelated'\n", "choices="),
    # a body that binds a module's name
    (b"import torch\nmodel = None\n\ndef setup():\n    global model\n    model = Net()\n\n"
     b"def use():\n    return model.cuda()\n\ndef other():\n    return 'unrelated'\n", "model = Net()"),
    # environment setup in a file without a module-level torch import: the shim import goes after it
    (b"def env():\n    os.environ['X'] = '1'\n\ndef use(x):\n    return x.cuda()\n\ndef other():\n    return 'unrelated'\n",
     "os.environ"),
    # a device string spelled with escapes (the review pass lists it)
    (b"import torch\n\ndef f(x):\n    return x.to('\\x63uda')\n\ndef g(x):\n    return x.cuda()\n"
     b"\ndef other():\n    return 'unrelated'\n", "x63uda"),
])
def test_what_connects_a_body_to_a_cuda_use_keeps_it(source, kept):
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None, "the file has a body nothing can touch"
    assert kept in piece.reduced.decode()
    assert "unrelated" not in piece.reduced.decode()
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


@pytest.mark.parametrize("source,gone", [
    # a CUDA word only in a comment or a docstring of several words: no rule acts there
    (b"import torch\n\ndef f(x):\n    return x.cuda()\n\ndef g(x):\n    # move it to cuda first\n    return x + 1\n", "x + 1"),
    (b"import torch\n\ndef f(x):\n    return x.cuda()\n\ndef g(x):\n    '''Runs on cuda.'''\n    return x + 1\n", "x + 1"),
    (b"import torch\n\ndef f(x):\n    return x.cuda()\n\nclass A:\n    '''Uses torch.cuda streams, see below.'''\n\n"
     b"    def g(self):\n        return 1\n", "torch.cuda streams"),
    # a ``load`` call that cannot be ``torch.load``
    (b"import json\nimport torch\n\ndef f(x):\n    return x.cuda()\n\ndef g(p):\n    return json.load(p)\n", "json.load"),
])
def test_what_can_be_no_cuda_use_keeps_nothing(source, gone):
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None and gone not in piece.reduced.decode()
    assert "x.cuda()" in piece.reduced.decode()
    for target in ("shim", "torch"):
        assert _port(source, slice_min_bytes=0, target=target) == _port(source, slice_min_bytes=None, target=target)


@pytest.mark.parametrize("source,kept", [
    (b"import torch\n\ndef f(x):\n    return x.cuda()\n\ndef g():\n    '''cuda'''\n    return 1\n", "return 1"),
    (b"import torch\n\ndef f(x):\n    return x.cuda()\n\ndef g(x):\n    s = '#'; return x.to('cuda')\n", "x.to("),
    (b"import torch as th\n\ndef f(x):\n    return x.cuda()\n\ndef g(p):\n    return th.load(p)\n", "th.load"),
])
def test_a_one_word_docstring_a_string_hash_and_a_torch_alias_still_keep(source, kept):
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is None or kept in piece.reduced.decode()
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


_FIELDS = "".join(f"    field_{i}: int = {i}  # a field\n" for i in range(6))


@pytest.mark.parametrize("source,gone,kept", [
    # fields nothing at the class level reads go as one placeholder line
    ((b"import torch\n\nclass Config:\n    '''Settings.'''\n\n" + _FIELDS.encode() +
      b"\n    def to_device(self, x):\n        return x.cuda()\n"), ["field_3"], ["return x.cuda()"]),
    # a field read by what stays (a device value), or by a string annotation, stays
    ((b"import torch\n\nclass C:\n    A = 1\n    B = 2\n    E = 3\n    F = 4\n    Foo = int\n"
      b"    D = torch.device('cuda') if A else None\n    dev: 'Foo' = torch.device('cuda')\n"),
     ["E = 3"], ["A = 1", "Foo = int"]),
    # the names that decide how a class's cuda/to are ported never go
    (b"import torch\n\nclass M:\n    x = 1\n    device = None\n    y = 2\n\ndef f(m):\n    return m.cuda()\n",
     [], ["device = None"]),
])
def test_class_level_statements_nothing_reads_are_set_aside(source, gone, kept):
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None
    reduced = piece.reduced.decode()
    for text in gone:
        assert text not in reduced, text
    for text in kept:
        assert text in reduced, text
    for target in ("shim", "torch"):
        assert _port(source, slice_min_bytes=0, target=target) == _port(source, slice_min_bytes=None, target=target)


def test_under_the_torch_target_the_device_names_of_bodies_set_aside_count():
    source = (b"import torch\n\ndef f(x):\n    return x.cuda()\n\ndef g():\n    device = 1\n    return device\n")
    sliced = _port(source, slice_min_bytes=0, target="torch")
    assert sliced == _port(source, slice_min_bytes=None, target="torch")
    assert b"device = 1" in sliced[1]


def test_a_nested_decorated_function_stays_valid():
    source = (b"import functools\nimport torch\n\ndef deco(f):\n    @functools.wraps(f)\n    def inner(*a):\n"
              b"        return f(*a)\n    return inner\n\ndef g(x):\n    return x.cuda()\n")
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


def test_small_files_and_other_encodings_are_ported_whole():
    assert plan(BIG, Options()) is None  # under the default size (4 KB)
    assert plan(b"# -*- coding: latin-1 -*-\n" + BIG, Options(slice_min_bytes=0)) is None
    assert plan(BIG.replace(b"\n", b"\r\n"), Options(slice_min_bytes=0)) is None
    assert plan(BIG, Options(slice_min_bytes=None)) is None


def test_device_type_is_a_device_whatever_else_type_is_compared_with():
    source = (b"import torch\n\ndef f(x, layer):\n    if layer.type == 'conv':\n        return 0\n"
              b"    return x.device.type == 'cuda'\n")
    new = migrate_source(source, options=Options(slice_min_bytes=None)).new
    assert b"x.device.type == 'cuda'" not in new


ALIASED = b"""import torch
from contextlib import nullcontext
from torch import autocast


def train(model, batches, use_amp=True):
    precision_scope = autocast if use_amp else nullcontext
    total = 0
    for _ in batches:
        total += 1
    print(total)
    with precision_scope("cuda"):
        loss = model(batches)
    return loss
"""


def test_statements_nothing_can_touch_are_skipped_and_what_a_rule_reads_is_not():
    import libcst as cst

    source = ALIASED.replace(b"    for _ in batches:\n        total += 1\n    print(total)\n", b"")
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None
    module = cst.parse_module(piece.reduced)
    rules, review, scopes = piece.skipped(module)
    body = module.body[3].body.body  # train's statements
    codes = {module.code_for_node(s).strip().split("\n")[0]: id(s) for s in body}
    assert codes["total = 0"] in rules and codes["total = 0"] in scopes  # one short line: not set aside
    # read where the rules go (``precision_scope('cuda')``): the scope analysis must see the binding,
    # and the import of what it holds
    assert codes["precision_scope = autocast if use_amp else nullcontext"] in rules
    assert codes["precision_scope = autocast if use_amp else nullcontext"] not in scopes
    assert id(module.body[2]) not in scopes  # from torch import autocast
    assert codes['with precision_scope("cuda"):'] not in rules and codes['with precision_scope("cuda"):'] not in review
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


def test_statements_no_pass_goes_into_are_set_aside_inside_the_functions_that_stay():
    piece = plan(ALIASED, Options(slice_min_bytes=0))
    assert piece is not None
    reduced = piece.reduced.decode()
    # ``total = 0``, the loop and ``print(total)``: one placeholder line, in train's body
    assert "total" not in reduced and "for _ in batches" not in reduced
    assert any(body.startswith(b"    total = 0\n") and body.endswith(b"    print(total)\n") for body in piece.bodies)
    # what a rule reads stays: the binding of ``precision_scope`` and the ``with`` itself
    assert "precision_scope = autocast if use_amp else nullcontext" in reduced
    assert 'with precision_scope("cuda"):' in reduced and "return loss" in reduced
    assert piece.restore(piece.reduced) == ALIASED
    for target in ("shim", "torch"):
        assert _port(ALIASED, slice_min_bytes=0, target=target) == _port(ALIASED, slice_min_bytes=None, target=target)


_TRAIN_HEAD = b"import sys\nimport torch\n\n\ndef pick(flag):\n"
_TRAIN_TAIL = b"    if flag:\n        return 'cuda'\n    return x.cuda()\n"


@pytest.mark.parametrize("middle,kept", [
    # a sibling device name of a ``return 'cuda'`` in the same function (device_strings._OwnStatements)
    (b"    for i in range(3):\n        print(i)\n    n = 2\n    if n:\n        return 'cpu'\n", "return 'cpu'"),
    # ``yield`` makes the function a generator
    (b"    for i in range(3):\n        print(i)\n        yield i\n", "yield i"),
    # a statement that binds a name read where a rule goes (``x.cuda()``), and what it reads in turn
    (b"    base = [1,\n            2]\n    x = torch.tensor(base)\n", "base = [1,"),
    # a statement on the line of another one
    (b"    a = [1,\n         2]; b = 3\n", "b = 3"),
])
def test_what_ties_a_statement_inside_a_function_keeps_it(middle, kept):
    source = _TRAIN_HEAD + middle + _TRAIN_TAIL
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is None or kept in piece.reduced.decode()
    for target in ("shim", "torch"):
        assert _port(source, slice_min_bytes=0, target=target) == _port(source, slice_min_bytes=None, target=target)


def test_a_statement_set_aside_in_a_function_carries_the_setup_the_import_placement_looks_for():
    source = (b"def main(x):\n    for p in ['a',\n              'b']:\n        sys.path.insert(0, p)\n"
              b"    return x.cuda()\n")
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None and "sys.path.insert" not in piece.reduced.decode()
    assert "sys.path" in piece.reduced.decode()  # in the placeholder's comment
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


def test_an_import_the_port_removes_is_judged_with_every_body_that_uses_it():
    # ``from torch.cuda.amp import autocast``: ported where it is called, and removed when nothing else
    # uses it. Another function that uses it is connected by the name (kept), so the import stays.
    source = (b"import torch\nfrom torch.cuda.amp import autocast\n\n"
              b"def gpu(x):\n    with autocast():\n        return x.cuda()\n\n"
              b"def other(x):\n    return autocast\n\n"
              b"def unrelated(x):\n    return x + 1\n")
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None and b"return autocast" in piece.reduced and b"x + 1" not in piece.reduced
    sliced = _port(source, slice_min_bytes=0)
    assert sliced == _port(source, slice_min_bytes=None)
    assert b"from torch.cuda.amp import autocast" in sliced[1]
    # and the last guard: a removed name that a body set aside spells sends the file to the whole port
    assert piece.uses_any({"x"}) and not piece.uses_any({"autocast"}) and not piece.uses_any(set())


def test_a_body_set_aside_keeps_the_environment_setup_the_import_placement_looks_for():
    # No module-level torch import: the shim import goes after the last environment setup before its
    # first use, found in the text of each module-level statement, bodies included.
    source = (b"import os\n\ndef env():\n    os.environ['X'] = '1'\n\ndef use(x):\n    return x.cuda()\n\n"
              b"class Config:\n    def setup(self):\n        os.environ['Y'] = '2'\n")
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None
    reduced = piece.reduced.decode()
    assert "os.environ['X']" not in reduced and "def env(): __tdm_sliced_0__  # os.environ" in reduced
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)
    underscore = plan(b"import torch\n_ = torch.cuda.is_available()\n\ndef f(a):\n    return a - 1\n",
                      Options(slice_min_bytes=0))
    assert underscore is not None and b"a - 1" not in underscore.reduced  # ``_`` is not ``-``


def test_an_import_ties_only_the_names_whose_own_spelling_matches():
    source = (b"import torch\nfrom .helpers import get_device, load_config\nfrom torch.cuda import nvtx, Stream as S\n\n"
              b"def a():\n    return get_device()\n\ndef b():\n    return load_config()\n\n"
              b"def c():\n    return S()\n\ndef d(x):\n    return x.cuda()\n")
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None
    reduced = piece.reduced.decode()
    assert "return get_device()" in reduced and "return S()" in reduced  # tied: its name, its module
    assert "return load_config()" not in reduced
    assert _port(source, slice_min_bytes=0) == _port(source, slice_min_bytes=None)


ODD_LAYOUTS = {
    "tabs": b"import torch\n\nclass A:\n\tdef f(self):\n\t\treturn 1\n\n\tdef g(self, x):\n\t\treturn x.cuda()\n",
    "comments between decorators": b"import torch\nimport functools\n\n@functools.lru_cache()\n# why\n@staticmethod\n"
                                   b"def f():\n    return 1  # trailing\n\ndef g(x):\n    return x.cuda()\n",
    "no final newline": b"import torch\n\ndef g(x):\n    return x.cuda()\n\ndef f():\n    return 1",
    "all methods set aside": b"import torch\n\nclass A:\n    def f(self):\n        return 1\n    def g(self):\n        return 2\n"
                             b"\nx = torch.zeros(1).cuda()\n",
    "property setter": b"import torch\n\nclass A:\n    @property\n    def dev(self):\n        return 1\n\n    @dev.setter\n"
                       b"    def dev(self, v):\n        self._d = v\n\n    def g(self, x):\n        return x.cuda()\n",
    "continued signature": b"import torch\n\ndef f(a,\n      b=(1,\n         2)) -> int:\n    return a\n\n"
                           b"def g(x):\n    return x.cuda()\n",
    "one-line bodies and semicolons": b"import torch\n\ndef f(): return 1\nx = 1; y = 2\n\ndef g(x): return x.cuda()\n",
    "nested classes": b"import torch\n\nclass A:\n    class B:\n        def f(self):\n            return 1\n\n        def g(self, x):\n"
                      b"            return x.cuda()\n    def h(self):\n        return 3\n",
    "defs under if": b"import torch\n\nif True:\n    def f():\n        return 1\n\ndef g(x):\n    return x.cuda()\n",
    "async and match": b"import torch\n\nasync def f(x):\n    match x:\n        case 1:\n            return 1\n\n"
                       b"async def g(x):\n    return x.cuda()\n",
    "multi-line strings": b'import torch\n\ndef f():\n    """Doc\n\n    lines\n    """\n    s = """\ndef fake():\n    pass\n"""\n'
                          b"    return s\n\ndef g(x):\n    return x.cuda()\n",
    "backslash continuation": b"import torch\n\ndef f():\n    return 1 + \\\n        2\n\ndef g(x):\n    return x \\\n        .cuda()\n",
}


@pytest.mark.parametrize("name", sorted(ODD_LAYOUTS))
def test_odd_layouts_sliced_equal_the_whole_port(name):
    source = ODD_LAYOUTS[name]
    compile(source, name, "exec")
    for target in ("shim", "torch"):
        whole = _port(source, slice_min_bytes=None, target=target, layout=True)
        assert _port(source, slice_min_bytes=0, target=target, layout=True) == whole, target
    piece = plan(source, Options(slice_min_bytes=0))
    assert piece is not None
    assert piece.bodies or name == "defs under if"  # (a function under an ``if`` stays with its block)
    assert piece.restore(piece.reduced) == source
