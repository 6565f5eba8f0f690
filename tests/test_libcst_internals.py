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
