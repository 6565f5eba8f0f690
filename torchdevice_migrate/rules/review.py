"""After the rules ran: CUDA device strings that no rule could prove to be devices are listed for review.

Comparisons (``x == 'cuda:0'``, ``x in ('cuda', 'mps')``) get TDM302, anything else TDM301; a
``'cuda'`` compared inside TorchScript is not listed (left as it is on purpose, see device_comparisons). Arguments
of ``torch.cuda`` functions renamed into the shim (``set_device('cuda:1')``) are not listed: the shim
maps CUDA device arguments itself.
"""

from __future__ import annotations

from typing import AbstractSet, List, Tuple

import libcst as cst

from ..findings import FindingStatus
from ..registry import lookup
from ..trigger import MAY_HOLD_DEVICE_STRING
from .base import NodeVisitor, RuleContext, in_torchscript, is_cuda_device_string, is_plain_cuda, walk

Range = Tuple[Tuple[int, int], Tuple[int, int]]


class _LeftoverStrings(NodeVisitor):
    def __init__(self, ctx: RuleContext, ranges: List[Range], report: bool = True) -> None:
        self.ctx = ctx
        self.ranges = ranges
        self.report = report
        self.found = False
        self.skip: AbstractSet[int] = getattr(ctx, "review_skip", frozenset()) if report else frozenset()

    def on_visit(self, node: cst.CSTNode) -> bool:
        # Statements that hold no possible device string (``slicing.Slice.skipped``) are not gone into.
        if id(node) in self.skip:
            return False
        return super().on_visit(node)

    def _covered(self, node: cst.CSTNode) -> bool:
        pos = self.ctx.position(node)
        if pos is None:
            return True
        start, end = (pos.start.line, pos.start.column), (pos.end.line, pos.end.column)
        return any(s <= start and end <= e for s, e in self.ranges)

    def visit_Call(self, node: cst.Call) -> bool:
        # Nothing inside a call to the shim is reported again (idempotency).
        if self.ctx.is_shim_ref(node.func):
            return False
        return self._check(node)

    def visit_DictElement(self, node: cst.DictElement) -> bool:
        # Keys of a map_location dict name where tensors were saved, not where they go.
        if is_cuda_device_string(node.key):
            dict_node = self.ctx.parent(node)
            arg = self.ctx.parent(dict_node) if dict_node is not None else None
            if isinstance(arg, cst.Arg) and (arg.keyword is None or arg.keyword.value == "map_location"):
                walk(self, node.value)
                return False
        return True

    def _check(self, node: cst.CSTNode) -> bool:
        if is_cuda_device_string(node):
            if (not self._covered(node) and not self._shim_device_argument(node) and not self._compared_with_shim(node)
                    and not self._scripted_comparison(node)):
                self.found = True
                if self.report:
                    code = "TDM302" if self._in_comparison(node) else "TDM301"
                    hint = _TORCH_HINTS[code] if self.ctx.target == "torch" else ""
                    self.ctx.report(node, "literal:'cuda'", FindingStatus.REVIEW, code, hint=hint)
            return False
        return True

    def _in_comparison(self, node: cst.CSTNode) -> bool:
        """An operand of a comparison, or an element of a collection that is one (``x in ('cuda', 'mps')``)."""
        parent = self.ctx.parent(node)
        if isinstance(parent, cst.Element):
            parent = self.ctx.parent(parent)
            if isinstance(parent, (cst.Tuple, cst.List, cst.Set)):
                parent = self.ctx.parent(parent)
        return isinstance(parent, (cst.ComparisonTarget, cst.Comparison))

    def _scripted_comparison(self, node: cst.CSTNode) -> bool:
        """``t.device.type == 'cuda'`` in TorchScript: left as it is on purpose (exact on CUDA, false
        wherever the original ran without CUDA); a shim call could not be scripted."""
        return is_plain_cuda(node) and self._in_comparison(node) and in_torchscript(self.ctx, node)

    def _compared_with_shim(self, node: cst.CSTNode) -> bool:
        """``runtime_shim.accelerator_type() == 'cuda'``: a guard this tool wrote (or one written by hand)."""
        parent = self.ctx.parent(node)
        comparison = self.ctx.parent(parent) if isinstance(parent, cst.ComparisonTarget) else parent
        if not isinstance(comparison, cst.Comparison):
            return False
        operands = [comparison.left] + [t.comparator for t in comparison.comparisons]
        return any(isinstance(o, cst.Call) and self.ctx.is_shim_ref(o.func) for o in operands)

    def _shim_device_argument(self, node: cst.CSTNode) -> bool:
        """An argument of a ``torch.cuda`` function renamed into the shim (``set_device(f'cuda:{r}')``):
        the shim maps CUDA device arguments to the chosen device itself."""
        arg = self.ctx.parent(node)
        call = self.ctx.parent(arg) if isinstance(arg, cst.Arg) else None
        if not isinstance(call, cst.Call) or not isinstance(call.func, (cst.Name, cst.Attribute)):
            return False
        api = lookup(self.ctx.qualname(call.func) or "")
        return api is not None and api.shim_name is not None and self._covered(call.func)

    visit_SimpleString = _check
    visit_FormattedString = _check
    visit_ConcatenatedString = _check
    visit_BinaryOperation = _check


#: The hints of the two codes under ``--target torch`` (the registry's name the runtime shim).
_TORCH_HINTS = {
    "TDM301": "If it is a device, write the module's device value (`device = torch.accelerator.current_accelerator("
              "check_available=True) or torch.device(\"cpu\")`), or `device.type` where a str is needed; otherwise "
              "ignore this finding.",
    "TDM302": "Compare `x.device.type` with `device.type` (the chosen device's type) instead.",
}


#: (``trigger.MAY_HOLD_DEVICE_STRING``: what the source of a CUDA device string must spell.)


def report_leftover_device_strings(ctx: RuleContext) -> None:
    source = getattr(ctx, "source_text", None)
    if isinstance(source, str) and MAY_HOLD_DEVICE_STRING.search(source) is None:
        return  # no string in the file can be a CUDA device string: no pass over every node
    walk(_LeftoverStrings(ctx, ctx.rewritten_ranges()), ctx.module)


def has_leftover_device_strings(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether ``node`` (an original node) holds a CUDA device string that no rewrite so far covers,
    i.e. one that will be listed for review (used while the rules still run, on finished subtrees)."""
    visitor = _LeftoverStrings(ctx, ctx.rewritten_ranges(), report=False)
    walk(visitor, node)
    return visitor.found
