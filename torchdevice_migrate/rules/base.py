"""What a rule is, and the context every rule works with.

A rule is one small class. It implements ``leave_<NodeType>(ctx, original, updated)`` methods that
return a replacement node (through ``ctx.rewrite``) or ``None``. ``original`` carries metadata
(qualified names, positions, parents); ``updated`` is what to build the replacement from.
``VALID`` lists code the rule must leave byte-identical; ``INVALID`` lists ``(before, after)``
pairs. Both are its documentation and its tests (``tests/test_rule_examples.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import (
    CodeRange,
    ParentNodeProvider,
    PositionProvider,
    QualifiedNameProvider,
    ScopeProvider,
)

from ..findings import Finding, FindingStatus
from ..registry import REASONS, Api, lookup

SUPPRESS_RE = re.compile(r"#\s*torchdevice:\s*ignore(?:\[(?P<codes>[A-Z0-9,\s]+)\])?")


class Rule:
    """Base class; see the module docstring."""

    #: Short name, used in docs and ``--select``.
    name: ClassVar[str] = ""
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[Tuple[str, str]]] = ()


@dataclass
class _Rewrite:
    start: Tuple[int, int]
    end: Tuple[int, int]
    finding: Finding
    alone: bool = True  # False: this rewrite alone does not make a file one that uses CUDA


class RuleContext:
    """Per-file state shared by the rules: metadata lookups, the shim import, findings."""

    def __init__(self, wrapper: cst.MetadataWrapper, path: str, shim_alias: str, source_lines: Sequence[str],
                 select: Optional[Set[str]] = None, ignore: Optional[Set[str]] = None) -> None:
        self.module = wrapper.module
        self.path = path
        self.shim_alias = shim_alias
        self._qualnames = wrapper.resolve(QualifiedNameProvider)
        self._positions = wrapper.resolve(PositionProvider)
        self._parents = wrapper.resolve(ParentNodeProvider)
        self._scopes = wrapper.resolve(ScopeProvider)
        self.shim_used = False
        self.imports: Set[Tuple[str, Optional[str]]] = set()
        self.rewrites: List[_Rewrite] = []
        self.other_findings: List[Finding] = []
        self.removed_from_imports: Set[Tuple[str, str, Optional[str]]] = set()
        self._suppressed = _suppressions(source_lines)
        self.select = select
        self.ignore = ignore or set()
        self._reported: Set[Tuple[int, int, str]] = set()

    # ---- metadata -------------------------------------------------------------------------
    def qualnames(self, node: cst.CSTNode) -> Set[str]:
        value = self._qualnames.get(node, ())
        if callable(value):  # LibCST resolves qualified names lazily
            value = value()
        return {q.name for q in value}

    def qualname(self, node: cst.CSTNode) -> Optional[str]:
        """The one qualified name of ``node`` that the registry or torch knows, if any."""
        names = self.qualnames(node)
        for n in sorted(names):
            if lookup(n) is not None:
                return n
        for n in sorted(names):
            if n == "torch" or n.startswith("torch."):
                return n
        return min(names) if names else None

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return self._parents.get(node)

    def scope(self, node: cst.CSTNode):
        """The LibCST scope of an original node (None for nodes outside any scope)."""
        return self._scopes.get(node)

    def position(self, node: cst.CSTNode) -> Optional[CodeRange]:
        return self._positions.get(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # ---- building -------------------------------------------------------------------------
    def shim(self, name: str) -> cst.Attribute:
        """``runtime_shim.<name>`` (under the alias chosen for this file); schedules the import."""
        self.shim_used = True
        return cst.Attribute(cst.Name(self.shim_alias), cst.Name(name))

    def add_import(self, module: str, obj: Optional[str] = None) -> None:
        """Schedule ``import module`` / ``from module import obj`` (added once, after the rules ran)."""
        self.imports.add((module, obj))

    def shim_call(self, name: str, *args: cst.BaseExpression | cst.Arg) -> cst.Call:
        return cst.Call(self.shim(name), [a if isinstance(a, cst.Arg) else cst.Arg(a) for a in args])

    def is_shim_ref(self, node: cst.CSTNode) -> bool:
        """True for ``runtime_shim.X`` written by us (or a previous run)."""
        return (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)
                and node.value.value == self.shim_alias)

    # ---- findings -------------------------------------------------------------------------
    def allowed(self, original: cst.CSTNode, code: str) -> bool:
        if code in self.ignore or (self.select is not None and not any(code.startswith(s) for s in self.select)):
            return False
        pos = self.position(original)
        if pos is None:
            return True
        for line in range(pos.start.line, pos.end.line + 1):
            codes = self._suppressed.get(line)
            if codes is not None and (not codes or code in codes):
                return False
        return True

    def rewrite(self, original: cst.CSTNode, new: cst.CSTNode, api: str, code: str,
                message: str = "", alone: bool = True) -> Optional[cst.CSTNode]:
        """Record a rewrite of ``original`` into ``new``; returns ``new`` (or None when suppressed).

        ``alone=False`` marks a rewrite that is kept only when the file has other CUDA rewrites
        (a file with no CUDA use is never rewritten)."""
        if not self.allowed(original, code):
            return None
        pos = self.position(original)
        start = (pos.start.line, pos.start.column) if pos else (0, 0)
        end = (pos.end.line, pos.end.column) if pos else (0, 0)
        # A rewrite that replaces an enclosing node subsumes the rewrites made inside it.
        self.rewrites = [r for r in self.rewrites if not (start <= r.start and r.end <= end)]
        finding = Finding(
            path=self.path, line=start[0], column=start[1] + 1, api=api, status=FindingStatus.REWRITTEN,
            code=code, message=message or REASONS[code].title, original=self.code(original),
            replacement=self.module.code_for_node(new), end_line=end[0], end_column=end[1] + 1,
        )
        self.rewrites.append(_Rewrite(start, end, finding, alone))
        return new

    def report(self, original: cst.CSTNode, api: str, status: FindingStatus, code: str,
               message: str = "", hint: str = "") -> None:
        """Record a site left as is (needs review, or unsupported)."""
        if not self.allowed(original, code):
            return
        pos = self.position(original)
        line, col = (pos.start.line, pos.start.column + 1) if pos else (0, 0)
        key = (line, col, code)
        if key in self._reported:
            return
        self._reported.add(key)
        reason = REASONS[code]
        self.other_findings.append(Finding(
            path=self.path, line=line, column=col, api=api, status=status, code=code,
            message=message or reason.description, original=_first_line(self.code(original)),
            hint=hint or reason.hint, end_line=pos.end.line if pos else 0, end_column=pos.end.column + 1 if pos else 0,
        ))

    def report_api(self, original: cst.CSTNode, api: Api) -> None:
        self.report(original, api.name, FindingStatus.UNSUPPORTED, api.code, api.reason, api.hint)

    def findings(self) -> List[Finding]:
        out = [r.finding for r in self.rewrites] + self.other_findings
        return sorted(out, key=lambda f: (f.line, f.column, f.code))

    def rewritten_ranges(self) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
        return [(r.start, r.end) for r in self.rewrites]


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= 160 else first[:157] + "..."


def _suppressions(lines: Sequence[str]) -> Dict[int, Set[str]]:
    """Line number -> suppressed codes (empty set: all codes) from ``# torchdevice: ignore[...]``."""
    out: Dict[int, Set[str]] = {}
    for i, line in enumerate(lines, start=1):
        if "torchdevice" not in line:
            continue
        m = SUPPRESS_RE.search(line)
        if m:
            codes = m.group("codes")
            out[i] = {c.strip() for c in codes.split(",") if c.strip()} if codes else set()
    return out


# ---- small syntax helpers shared by the rules ------------------------------------------------

CUDA_DEVICE_RE = re.compile(r"cuda(:\d+)?")


def string_value(node: cst.CSTNode) -> Optional[str]:
    """The value of a plain (non-f, non-bytes) string literal, else None."""
    if isinstance(node, cst.SimpleString):
        prefix = node.prefix.lower()
        if "b" in prefix:
            return None
        try:
            value = node.evaluated_value
        except Exception:
            return None
        return value if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = string_value(node.left), string_value(node.right)
        return left + right if left is not None and right is not None else None
    return None


def is_cuda_device_string(node: cst.CSTNode) -> bool:
    """``'cuda'``, ``'cuda:N'``, ``f'cuda:{i}'``, ``'cuda:%d' % i``, ``'cuda:{}'.format(i)``, ``'cuda:' + str(i)``."""
    value = string_value(node)
    if value is not None:
        return CUDA_DEVICE_RE.fullmatch(value) is not None
    if isinstance(node, cst.FormattedString):
        if "b" in node.prefix.lower():
            return False
        parts = node.parts
        return (len(parts) == 2 and isinstance(parts[0], cst.FormattedStringText)
                and parts[0].value == "cuda:" and isinstance(parts[1], cst.FormattedStringExpression))
    if isinstance(node, cst.BinaryOperation):
        left = string_value(node.left)
        if isinstance(node.operator, cst.Modulo):
            return left is not None and re.fullmatch(r"cuda:%[dis]", left) is not None
        if isinstance(node.operator, cst.Add):
            return left == "cuda:"
        return False
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "format":
        left = string_value(node.func.value)
        return left is not None and re.fullmatch(r"cuda:\{\w*\}", left) is not None
    return False


def is_plain_cuda(node: cst.CSTNode) -> bool:
    return string_value(node) == "cuda"


def is_cpu_string(node: cst.CSTNode) -> bool:
    return string_value(node) == "cpu"


DEVICE_NAME_RE = re.compile(r"(?:.*_)?(?:device|dev)(?:_name|_str)?", re.IGNORECASE)
DEVICE_TYPE_NAME_RE = re.compile(r"(?:.*_)?device_type", re.IGNORECASE)


def target_name(node: cst.CSTNode) -> Optional[str]:
    """``device`` for ``device``, ``self.device``, ``args.device``, ``cfg['device']``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        idx = node.slice[0].slice
        if isinstance(idx, cst.Index):
            return string_value(idx.value)
    return None


def device_kind_for_name(name: Optional[str]) -> Optional[str]:
    """``'string'`` for device-like names, ``'type'`` for device-type-like names, else None."""
    if not name:
        return None
    if DEVICE_TYPE_NAME_RE.fullmatch(name):
        return "type"
    if DEVICE_NAME_RE.fullmatch(name) or name == "map_location":
        return "string"
    return None
