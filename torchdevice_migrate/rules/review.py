"""After the rules ran: CUDA device strings that no rule could prove to be devices are listed for review."""

from __future__ import annotations

from typing import List, Tuple

import libcst as cst

from ..findings import FindingStatus
from .base import RuleContext, is_cuda_device_string

Range = Tuple[Tuple[int, int], Tuple[int, int]]


class _LeftoverStrings(cst.CSTVisitor):
    def __init__(self, ctx: RuleContext, ranges: List[Range]) -> None:
        self.ctx = ctx
        self.ranges = ranges

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
                node.value.visit(self)
                return False
        return True

    def _check(self, node: cst.CSTNode) -> bool:
        if is_cuda_device_string(node):
            if not self._covered(node):
                parent = self.ctx.parent(node)
                in_comparison = isinstance(parent, (cst.ComparisonTarget, cst.Comparison)) or isinstance(
                    self.ctx.parent(parent) if parent is not None else None, (cst.ComparisonTarget, cst.Comparison))
                code = "TDM302" if in_comparison else "TDM301"
                self.ctx.report(node, "literal:'cuda'", FindingStatus.REVIEW, code)
            return False
        return True

    visit_SimpleString = _check
    visit_FormattedString = _check
    visit_ConcatenatedString = _check
    visit_BinaryOperation = _check


def report_leftover_device_strings(ctx: RuleContext) -> None:
    ctx.module.visit(_LeftoverStrings(ctx, ctx.rewritten_ranges()))
