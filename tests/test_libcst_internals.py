"""rules/base.py computes positions and scopes through LibCST internals (``libcst._position``,
``PositionProvidingCodegenState``, ``_codegen``, the providers' ``_computed``) instead of a full
``MetadataWrapper.resolve`` pass, for speed. pyproject.toml pins LibCST to the tested range; this test
fails loudly when an upgrade changes those internals: the shortcuts must give what LibCST's public
``MetadataWrapper`` gives, node for node."""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider, ScopeProvider

from torchdevice_migrate.rules.base import resolve_positions, resolve_scopes

SOURCE = '''import torch
from torch.cuda import amp as cuda_amp


class Net(torch.nn.Module):
    """A docstring
    on two lines."""

    def forward(self, x, *, scale=2.0):
        with cuda_amp.autocast():
            y = x.cuda(non_blocking=True) * scale  # a comment
        return [v for v in (y, f"{x!r:>10}") if v is not None]


def main(args=None):
    lam = lambda t: t.to("cuda:0")  # noqa: E731
    return Net().cuda(), lam, torch.cuda.is_available() and \\
        torch.cuda.device_count()
'''


def test_internals_exist():
    import libcst._position as position  # noqa: F401  (the import itself is the check)
    from libcst.metadata import position_provider

    assert hasattr(position, "CodePosition")
    assert hasattr(position_provider, "NEWLINE_RE") and hasattr(position_provider, "PositionProvidingCodegenState")
    assert hasattr(cst.Module, "_codegen")
    # what RuleContext.release clears to break the scope analysis's reference cycles
    scopes = resolve_scopes(cst.parse_module("import os\ndef f(a):\n    return a + os.sep\n"))
    scope = next(s for s in scopes.values() if s is not None and s.assignments["a"])
    assert all(isinstance(getattr(scope, t), dict) for t in ("_assignments", "_accesses_by_name", "_accesses_by_node"))
    assignment = next(iter(scope.assignments["a"]))
    access = next(iter(scope.accesses["a"]))
    assert isinstance(assignment._BaseAssignment__accesses, set) and isinstance(access._Access__assignments, set)


def test_a_port_leaves_its_tree_to_reference_counting():
    """Nothing of a port (scopes, closures over the rules' context, per-call visitor classes) is left in
    a reference cycle that holds the file's tree: dropped, the tree is freed at once, and the garbage
    collector, which the tool's own processes run only between files (engine.between_files), finds
    next to nothing to walk."""
    import gc

    from torchdevice_migrate.options import Options
    from torchdevice_migrate.transform import migrate_source

    source = SOURCE.encode() + b"\nif torch.cuda.is_available() and torch.cuda.device_count() >= 2:\n" \
                               b"    for i in range(torch.cuda.device_count()):\n        p.start()\n"
    migrate_source(source, "case.py", Options(slice_min_bytes=None))  # imports, caches
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):
            new = migrate_source(source, "case.py", Options(slice_min_bytes=None)).new
        assert new != source
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, cst.CSTNode)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
    assert left == []


def test_positions_equal_libcst_public_positions():
    module = cst.parse_module(SOURCE)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    public = wrapper.resolve(PositionProvider)
    ours = resolve_positions(wrapper.module)
    assert len(public) > 100
    assert set(ours) == set(public)
    for node, where in public.items():
        assert ours[node] == where, type(node).__name__


def test_scopes_equal_libcst_public_scopes():
    module = cst.parse_module(SOURCE)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    public = wrapper.resolve(ScopeProvider)
    ours = resolve_scopes(wrapper.module)
    assert len(public) > 50
    names = {}
    for node, scope in public.items():
        assert node in ours, type(node).__name__
        if scope is not None and isinstance(node, (cst.Name, cst.Attribute)):
            names[node] = {q.name for q in scope.get_qualified_names_for(node)}
    assert any("torch.cuda.amp.autocast" in q for q in names.values())
    for node, qualified in names.items():
        assert {q.name for q in ours[node].get_qualified_names_for(node)} == qualified


def _scope_signature(mapping, module):
    """Per node (in the module's walk order): the scope's type and its place among the scopes, and per
    scope its assignments and accesses, by node identity: what a scope analysis is, nothing more."""
    index: dict = {}
    nodes = []
    stack = [module]
    while stack:  # every node, children by LibCST's own listing
        node = stack.pop()
        nodes.append(node)
        stack.extend(reversed(node.children))
    per_node = []
    for node in nodes:
        scope = mapping.get(node)
        if scope is None:
            per_node.append(None)
            continue
        per_node.append((type(scope).__name__, index.setdefault(id(scope), len(index))))
    scopes = {id(s): s for s in mapping.values() if s is not None}
    per_scope = {}
    for key, at in index.items():
        s = scopes[key]
        per_scope[at] = (sorted((a.name, id(getattr(a, "node", None))) for a in s.assignments),
                         sorted((id(a.node), sorted((r.name, id(getattr(r, "node", None))) for r in a.referents))
                                for a in s.accesses))
    return per_node, per_scope


def test_scopes_equal_libcst_public_scopes_on_every_fixture():
    """The scope analysis walks the tree without LibCST rebuilding each node (``_LeanDispatch``):
    node for node, the same scopes with the same assignments and accesses as LibCST's ScopeProvider."""
    from pathlib import Path

    fixtures = sorted((Path(__file__).resolve().parent.parent / "fixtures").rglob("*.py"))
    checked = 0
    for path in [*fixtures, None]:
        try:
            module = cst.parse_module(path.read_bytes() if path is not None else SOURCE)
        except cst.ParserSyntaxError:
            continue
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        public = wrapper.resolve(ScopeProvider)
        ours = resolve_scopes(wrapper.module)
        assert _scope_signature(ours, wrapper.module) == _scope_signature(public, wrapper.module), path
        checked += 1
    assert checked > 100


class _Trace(cst.CSTVisitor):
    """Every call LibCST makes on a read-only visitor, in order; a few node types not gone into."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.events.append(("visit", id(node)))
        return not isinstance(node, (cst.Lambda, cst.Decorator))

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.events.append(("leave", id(original_node)))

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.events.append(("in", id(node), attribute))

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        self.events.append(("out", id(original_node), attribute))


def test_walk_makes_the_calls_libcst_visit_makes_on_every_fixture():
    from pathlib import Path

    from torchdevice_migrate.rules import base
    from torchdevice_migrate.rules.base import walk

    base._FIELD_ORDER.clear()  # the order is learnt from the first node of a type: here one without a format spec
    first = b'a = f"{x}"\nb = f"{y:>{width}}"\nfrom m import *\nfrom m import (n as o)\n'
    checked = 0
    for path in [None, *sorted((Path(__file__).resolve().parent.parent / "fixtures").rglob("*.py"))]:
        try:
            module = cst.parse_module(path.read_bytes() if path is not None else first)
        except cst.ParserSyntaxError:
            continue
        ours, theirs = _Trace(), _Trace()
        walk(ours, module)
        module.visit(theirs)
        assert ours.events == theirs.events, path
        checked += 1
    assert checked > 100


def test_the_ports_code_from_its_statements_is_the_modules_code(monkeypatch):
    """The port's code is put together from the code each unchanged statement had in the original's
    generation (``StatementTexts``): on every fixture, under both targets, it is ``module.code``, and
    each statement's is ``module.code_for_node``."""
    from pathlib import Path

    from torchdevice_migrate.options import Options, SourceError
    from torchdevice_migrate.rules import base
    from torchdevice_migrate.transform import migrate_source

    real_code, real_of = base.StatementTexts.code, base.StatementTexts.of
    seen = []

    def code(self, module):
        got = real_code(self, module)
        assert got == module.code
        seen.append(sum(1 for s in module.body if self._texts.get(id(s), (None,))[0] is s))
        return got

    def of(self, module, statement):
        got = real_of(self, module, statement)
        assert got == module.code_for_node(statement)
        return got

    monkeypatch.setattr(base.StatementTexts, "code", code)
    monkeypatch.setattr(base.StatementTexts, "of", of)
    for path in sorted((Path(__file__).resolve().parent.parent / "fixtures").rglob("*.py")):
        for target in ("shim", "torch"):
            try:
                migrate_source(path.read_bytes(), str(path), Options(target=target, layout=True))
            except SourceError:  # a fixture that is an error case: its port is not the point here
                pass
    assert len(seen) > 100 and sum(seen) > 500  # ports put together, mostly of statements already generated
