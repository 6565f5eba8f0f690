"""References to registry entries: renames into the shim, and reports of what is not ported.

For every name or attribute whose qualified name (aliases resolved: ``import torch as th``,
``from torch import cuda``, ``import torch.cuda as tc``, ``from torch.cuda import Event``) is in
the registry:

* a ``rename`` entry (``torch.cuda.Event`` -> ``runtime_shim.Event``) is rewritten in place, called
  or not; a ``from torch.cuda import X`` that becomes unused is removed;
* an ``UNSUPPORTED`` entry is reported with its reason code, hint and line, and left as is;
* a ``torch.cuda`` / ``torch.backends.cuda`` name that the registry does not know is reported (TDM303).

``torch.cuda.is_available()`` becomes ``runtime_shim.is_available()`` (true on every machine: the
CPU counts), except in the test of an ``if``, a ``while`` or a conditional expression (``A if c else B``)
one of whose branches keeps CUDA code that is not ported: something reported as unsupported (a CUDA
extension, CUDA graphs, NVML...), something left for review (``torch.cuda.HalfTensor`` used as a
value, an unknown ``torch.cuda`` name, a ``'nccl'`` or ``'cuda'`` string not proven a device). There
it guards CUDA-only code and becomes ``runtime_shim.accelerator_type() == "cuda"``: equal to the
original on every machine (true exactly on CUDA), so a branch that would fail elsewhere stays off
there, and the other branch runs as it did in the original. The same holds for the left operand of
``and`` / ``or`` whose right operand keeps such code (``torch.cuda.is_available() and
torch.cuda.CUDAGraph()``): the right operand runs only where it did.
"""

from __future__ import annotations

from typing import List, Optional, Union

import libcst as cst

from ..findings import FindingStatus
from ..registry import Status, is_cuda_namespace, lookup
from .base import NodeVisitor, Rule, RuleContext, is_reference_site
from .review import has_leftover_device_strings


def _is_dotted_name(node: cst.CSTNode) -> bool:
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name)


class RegistryRenames(Rule):
    name = "registry-renames"
    VALID = (
        "torch.backends.cudnn.benchmark = True\n",
        "import torch\nkey = 'torch.cuda.synchronize'\n",
        "def synchronize():\n    pass\nsynchronize()\n",
        "import runtime_shim\ntotal = runtime_shim.get_device_properties(0).total_memory\n",
        # A guard written by a previous run is left alone (and not listed for review).
        "import runtime_shim\nif runtime_shim.accelerator_type() == 'cuda':\n    import pynvml\n",
    )
    INVALID = (
        ("import torch\nn = torch.cuda.device_count()\n", "import torch\nimport runtime_shim\n\nn = runtime_shim.device_count()\n"),
        ("import torch as th\nth.cuda.synchronize()\n", "import torch as th\nimport runtime_shim\n\nruntime_shim.synchronize()\n"),
        ("from torch import cuda\nok = cuda.is_available()\n", "from torch import cuda\nimport runtime_shim\n\nok = runtime_shim.is_available()\n"),
        ("import torch.cuda as tc\ntc.set_device(rank)\n", "import torch.cuda as tc\nimport runtime_shim\n\nruntime_shim.set_device(rank)\n"),
        ("from torch.cuda import Event\ne = Event(enable_timing=True)\n", "import runtime_shim\n\ne = runtime_shim.Event(enable_timing=True)\n"),
        ("import torch\nwith torch.cuda.device(1):\n    pass\n", "import torch\nimport runtime_shim\n\nwith runtime_shim.device_context(1):\n    pass\n"),
        ("import torch\nfrom torch.utils.cpp_extension import load\nif torch.cuda.is_available():\n    ext = load('k', ['k.cu'])\n",
         "import torch\nfrom torch.utils.cpp_extension import load\nimport runtime_shim\n\n"
         "if runtime_shim.accelerator_type() == \"cuda\":\n    ext = load('k', ['k.cu'])\n"),
        # The CUDA branch keeps a legacy type used as a value (left for review): CUDA only.
        ("import torch\nT = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor\n",
         "import torch\nimport runtime_shim\n\nT = torch.cuda.FloatTensor if runtime_shim.accelerator_type() == \"cuda\" else torch.FloatTensor\n"),
        # The left operand of `and` guards the right one; so does the test of a `while` loop.
        ("import torch\ng = torch.cuda.is_available() and torch.cuda.CUDAGraph()\n",
         "import torch\nimport runtime_shim\n\ng = runtime_shim.accelerator_type() == \"cuda\" and torch.cuda.CUDAGraph()\n"),
        # A negated test guarding an unported string in the else branch.
        ("import torch\nif not torch.cuda.is_available():\n    name = 'cpu'\nelse:\n    name = run('cuda')\n",
         "import torch\nimport runtime_shim\n\nif not runtime_shim.accelerator_type() == \"cuda\":\n    name = 'cpu'\nelse:\n    name = run('cuda')\n"),
    )

    def _leave_ref(self, ctx: RuleContext, original: Union[cst.Name, cst.Attribute], updated):
        if ctx.is_shim_ref(original):
            return None
        if not _is_dotted_name(original):
            return None  # an attribute of a call result (``get_device_properties(0).total_memory``)
        qual = ctx.qualname(original)
        if qual is None or not (qual.startswith("torch.") or qual.startswith("literal:")):
            return None
        api = lookup(qual)
        if api is None:
            if is_cuda_namespace(qual) and is_reference_site(ctx, original):
                ctx.report(original, qual, FindingStatus.REVIEW, "TDM303")
            return None
        if not is_reference_site(ctx, original):
            return None
        if api.status is Status.UNSUPPORTED:
            ctx.report_api(original, api)
            return None
        shim_name = api.shim_name
        if shim_name is None:
            return None
        new = ctx.shim(shim_name)
        if isinstance(updated, (cst.Name, cst.Attribute)):
            new = new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        result = ctx.rewrite(original, new, api.name, api.code)
        if result is not None and isinstance(original, cst.Name):
            module, _, obj = api.name.rpartition(".")
            ctx.removed_from_imports.add((module, obj, original.value if original.value != obj else None))
        return result

    leave_Name = _leave_ref
    leave_Attribute = _leave_ref

    def leave_If(self, ctx: RuleContext, original: cst.If, updated: cst.If):
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_While(self, ctx: RuleContext, original: cst.While, updated: cst.While):
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_BooleanOperation(self, ctx: RuleContext, original: cst.BooleanOperation, updated: cst.BooleanOperation):
        """``torch.cuda.is_available() and <unported CUDA>``: the left operand guards the right one."""
        return self._cuda_only_guard(ctx, original, updated, [original.right], test="left")

    def _cuda_only_guard(self, ctx: RuleContext, original, updated, branches, test: str = "test"):
        calls = _availability_calls(ctx, getattr(original, test))
        if not calls or not any(b is not None and _keeps_unported_cuda(ctx, b) for b in branches):
            return None
        replacer = _GuardReplacer(ctx, calls)
        new_test = getattr(updated, test).visit(replacer)
        return updated.with_changes(**{test: new_test}) if replacer.done else None


def _availability_calls(ctx: RuleContext, test: cst.BaseExpression) -> List[cst.Call]:
    """``torch.cuda.is_available()`` calls in an ``if`` test, in source order."""
    found: List[cst.Call] = []

    class _Find(NodeVisitor):
        def visit_Call(self, node: cst.Call) -> bool:
            if not node.args and ctx.qualname(node.func) == "torch.cuda.is_available":
                found.append(node)
            return True

    test.visit(_Find())
    return found


def _keeps_unported_cuda(ctx: RuleContext, branch: cst.CSTNode) -> bool:
    """Whether a finished branch holds a site reported as unsupported or for review, or a CUDA
    device string that no rule ported (it will be listed for review after the rules ran)."""
    pos = ctx.position(branch)
    if pos is None:
        return False
    start, end = (pos.start.line, pos.start.column), (pos.end.line, pos.end.column)
    if any(start <= (f.line, f.column - 1) < end for f in ctx.other_findings):
        return True
    return has_leftover_device_strings(ctx, branch)


class _GuardReplacer(cst.CSTTransformer):
    """Turns the (already renamed) ``runtime_shim.is_available()`` calls into a CUDA check."""

    def __init__(self, ctx: RuleContext, originals: List[cst.Call]) -> None:
        super().__init__()
        self.ctx, self.originals, self.index, self.done = ctx, originals, 0, False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = updated.func
        if not (self.ctx.is_shim_ref(func) and func.attr.value == "is_available" and not updated.args  # type: ignore[union-attr]
                and self.index < len(self.originals)):
            return updated
        source = self.originals[self.index]
        self.index += 1
        quote = _free_quote(self.ctx, source)
        if quote is None:
            return updated
        check = cst.Comparison(self.ctx.shim_call("accelerator_type"),
                               [cst.ComparisonTarget(cst.Equal(), cst.SimpleString(f"{quote}cuda{quote}"))],
                               lpar=updated.lpar, rpar=updated.rpar)
        new = self.ctx.rewrite(source, check, "torch.cuda.is_available", "TDM102",
                               "Guards CUDA-only code: true only when the chosen device is a CUDA GPU.")
        if new is None:
            return updated
        self.done = True
        return new  # type: ignore[return-value]


def _free_quote(ctx: RuleContext, node: cst.CSTNode) -> Optional[str]:
    """A quote character that may be written at ``node``: before Python 3.12, an expression inside
    an f-string cannot use the quote that delimits it (``f"{c == "cuda"}"`` does not compile)."""
    used = set()
    p = ctx.parent(node)
    while p is not None:
        if isinstance(p, cst.FormattedString):
            used.add(p.start[-1])
        p = ctx.parent(p)
    return next((q for q in ('"', "'") if q not in used), None)
