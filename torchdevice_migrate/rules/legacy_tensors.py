"""Legacy CUDA tensor types (``torch.cuda.HalfTensor``...) -> a dtype plus the shim's device.

``torch.cuda.XTensor`` exists only in CUDA builds. Each use becomes the dtype and the device:

* ``torch.cuda.LongTensor(...)`` -> ``torch.LongTensor(...).to(runtime_shim.device())``: the CPU type
  has the same constructor (sizes or data), then the tensor moves to the current device, as the CUDA
  constructor puts it there.
* ``x.type(torch.cuda.HalfTensor)`` (or ``'torch.cuda.HalfTensor'``) ->
  ``x.to(device=runtime_shim.device(), dtype=torch.half)`` (``non_blocking`` kept). Both return ``x``
  itself when nothing changes.
* ``isinstance(x, torch.cuda.FloatTensor)`` -> ``(isinstance(x, torch.Tensor) and x.dtype ==
  torch.float and x.layout == torch.strided and runtime_shim.is_accelerator(x.device))``: torch's
  check is "a dense tensor of this dtype on a CUDA device", which this spells out (``x`` must be a
  plain name or attribute, since it is evaluated more than once).
* ``torch.set_default_tensor_type(T)`` where ``T`` is a CUDA type (a reference, its dotted name as
  a string, or a conditional expression with one as a branch) becomes
  ``runtime_shim.set_default_tensor_type(T)``: on CUDA the original call, so legacy constructors
  (``torch.Tensor(data)``, ``torch.FloatTensor(...)``) still make CUDA tensors, which
  ``set_default_device`` would not do; elsewhere the dtype plus the chosen device as default device.

Anything else (a legacy type stored in a variable, chosen by a conditional expression, compared
with ``type(x)``) is left for review (TDM304).
"""

from __future__ import annotations

import re
from typing import List, Optional

import libcst as cst

from ..findings import FindingStatus
from ..registry import handled_by, lookup
from ..targets import DEVICE_VALUE
from .base import (
    REVIEW_CODE,
    Example,
    Rule,
    RuleContext,
    cpu_string,
    device_expression,
    device_type_expression,
    dotted,
    forget_import,
    is_reference_site,
    keyword_arg,
    split_args,
    string_value,
    with_commas,
)
from .base import torch_name_or_import as torch_name

#: Registry entries this rule ports (issue 13): the legacy ``torch.cuda.<Name>Tensor`` types and
#: ``torch.set_default_tensor_type``; each type's dtype is read from its registry replacement.
HANDLES = handled_by("legacy_tensors")
_TYPE_RE = re.compile(r"torch\.cuda\.(\w+Tensor)")
_DTYPE_RE = re.compile(r"dtype=torch\.(\w+)")
LEGACY = {n: m.group(1) for n in HANDLES for m in [_TYPE_RE.fullmatch(n)] if m}  # qualified name -> ``HalfTensor``
DTYPES = {LEGACY[n]: _DTYPE_RE.search(lookup(n).replacement).group(1) for n in LEGACY}  # type: ignore[union-attr]
SET_DEFAULT = set(HANDLES) - set(LEGACY)
_SET_DEFAULT_API = min(SET_DEFAULT)  # ``torch.set_default_tensor_type``
KEPT_CODE = "TDM307"
_DV = f"device = {DEVICE_VALUE}\n"  # the torch target's device value, as the examples show it
ISINSTANCE = {"builtins.isinstance", "isinstance"}


def legacy_type(ctx: RuleContext, node: cst.CSTNode) -> Optional[str]:
    """``'HalfTensor'`` for a reference to ``torch.cuda.HalfTensor`` or the string ``'torch.cuda.HalfTensor'``."""
    if isinstance(node, (cst.Name, cst.Attribute)):
        return LEGACY.get(ctx.qualname(node) or "")
    value = string_value(node)
    return LEGACY.get(value) if value else None


def _simple(node: cst.CSTNode) -> bool:
    """A name or attribute chain: evaluating it twice is safe."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return isinstance(node, cst.Name)


def _torch_ref(node: cst.CSTNode) -> bool:
    return isinstance(node, (cst.Name, cst.Attribute))


class LegacyTensors(Rule):
    name = "legacy-tensors"
    VALID = (
        "import torch\nx = torch.LongTensor([1, 2])\n",
        "import torch\ntorch.set_default_tensor_type(torch.FloatTensor)\n",
        "y = x.type(torch.float16)\n",
        "ok = isinstance(x, torch.Tensor)\n",
    )
    INVALID = (
        Example("import torch\nidx = torch.cuda.LongTensor([1, 2])\n",
                "import torch\nimport runtime_shim\n\nidx = torch.LongTensor([1, 2]).to(runtime_shim.device())\n", ("TDM109",),
                torch="import torch\n\n" + _DV + "\nidx = torch.LongTensor([1, 2]).to(device)\n"),
        Example("import torch\ny = x.type(torch.cuda.HalfTensor)\n",
                "import torch\nimport runtime_shim\n\ny = x.to(device=runtime_shim.device(), dtype=torch.float16)\n", ("TDM109",),
                torch="import torch\n\n" + _DV + "\ny = x.to(device=device, dtype=torch.float16)\n"),
        Example("import torch\nif isinstance(x, torch.cuda.FloatTensor):\n    pass\n",
                "import torch\nimport runtime_shim\n\nif isinstance(x, torch.Tensor) and x.dtype == torch.float32 and "
                "x.layout == torch.strided and runtime_shim.is_accelerator(x.device):\n    pass\n", ("TDM109",),
                torch="import torch\n\n" + _DV + "\nif isinstance(x, torch.Tensor) and x.dtype == torch.float32 and "
                      "x.layout == torch.strided and x.device.type == device.type != \"cpu\":\n    pass\n"),
        # The default tensor type: one shim call (the original on CUDA). No exact torch spelling: with
        # --target torch it is left and reported (TDM307), with set_default_dtype/set_default_device as the hint.
        Example("import torch\ntorch.set_default_tensor_type(torch.cuda.HalfTensor)  # fp16\n",
                "import torch\nimport runtime_shim\n\nruntime_shim.set_default_tensor_type(torch.cuda.HalfTensor)  # fp16\n",
                ("TDM109",), torch="import torch\ntorch.set_default_tensor_type(torch.cuda.HalfTensor)  # fp16\n",
                torch_codes=("TDM307",)),
        Example("import torch\ntorch.set_default_tensor_type('torch.cuda.FloatTensor' if cuda else 'torch.FloatTensor')\n",
                "import torch\nimport runtime_shim\n\n"
                "runtime_shim.set_default_tensor_type('torch.cuda.FloatTensor' if cuda else 'torch.FloatTensor')\n",
                ("TDM109",), torch="import torch\ntorch.set_default_tensor_type('torch.cuda.FloatTensor' if cuda else "
                                   "'torch.FloatTensor')\n", torch_codes=("TDM307",)),
        Example("import torch as th\nm = th.cuda.ByteTensor(2, 3).zero_()\n",
                "import torch as th\nimport runtime_shim\n\nm = th.ByteTensor(2, 3).to(runtime_shim.device()).zero_()\n",
                ("TDM109",), torch="import torch as th\n\n" + _DV.replace("torch.", "th.") + "\nm = th.ByteTensor(2, 3).to(device).zero_()\n"),
        # Every legacy type of the registry, with its dtype from the registry entry.
        Example("import torch\na = x.type(torch.cuda.CharTensor)\nb = x.type(torch.cuda.DoubleTensor)\n"
                "c = torch.cuda.IntTensor(3)\nd = torch.cuda.ShortTensor(3)\n",
                "import torch\nimport runtime_shim\n\na = x.to(device=runtime_shim.device(), dtype=torch.int8)\n"
                "b = x.to(device=runtime_shim.device(), dtype=torch.float64)\nc = torch.IntTensor(3).to(runtime_shim.device())\n"
                "d = torch.ShortTensor(3).to(runtime_shim.device())\n", ("TDM109",) * 4),
    )
    #: Left in place and reported: a legacy type held in a variable cannot be ported at its use.
    REPORTS = (
        ("import torch\nT = torch.cuda.FloatTensor\n", ("TDM304",)),
    )

    # -- references: report those no handler below ports ----------------------------------------
    def _leave_ref(self, ctx: RuleContext, original, updated):
        name = LEGACY.get(ctx.qualname(original) or "")
        if name is None:
            return None
        if not is_reference_site(ctx, original) or self._handled_position(ctx, original):
            return None
        ctx.report(original, f"torch.cuda.{name}", FindingStatus.REVIEW, REVIEW_CODE)
        return None

    leave_Name = _leave_ref
    leave_Attribute = _leave_ref

    def _handled_position(self, ctx: RuleContext, node: cst.CSTNode) -> bool:
        parent = ctx.parent(node)
        if isinstance(parent, cst.Call) and parent.func is node:
            return True
        if isinstance(parent, cst.IfExp) and node in (parent.body, parent.orelse):
            parent = ctx.parent(parent)  # set_default_tensor_type(T_cuda if c else T_cpu)
        if not isinstance(parent, cst.Arg):
            return False
        call = ctx.parent(parent)
        if not isinstance(call, cst.Call):
            return False
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "type":
            return True
        return ctx.qualname(call.func) in ISINSTANCE | SET_DEFAULT

    # -- calls ----------------------------------------------------------------------------------
    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        if ctx.is_shim_ref(original.func):
            return None
        name = LEGACY.get(ctx.qualname(original.func) or "") if _torch_ref(original.func) else None
        if name is not None:
            return self._constructor(ctx, original, updated, name)
        if isinstance(original.func, cst.Attribute) and original.func.attr.value == "type" and original.args:
            return self._dot_type(ctx, original, updated)
        qual = ctx.qualname(original.func) if _torch_ref(original.func) else None
        if qual in ISINSTANCE and len(original.args) == 2:
            return self._isinstance(ctx, original, updated)
        if (qual in SET_DEFAULT and len(original.args) == 1 and not original.args[0].star
                and _may_be_legacy(ctx, original.args[0].value)):
            if ctx.target == "torch":
                # Two torch statements (set_default_dtype + set_default_device) would miss legacy constructors on
                # CUDA (torch.Tensor(data) stays on the CPU): no exact torch spelling, left and reported.
                ctx.report(original, _SET_DEFAULT_API, FindingStatus.REVIEW, KEPT_CODE,
                           "`set_default_tensor_type` with a CUDA type sets the dtype and the device of every "
                           "new tensor, legacy constructors included: torch has no one spelling that does that.",
                           "Use `torch.set_default_dtype(...)` and `torch.set_default_device(device)` if the code "
                           "makes no tensors with legacy constructors (`torch.Tensor(data)`), or port with `--target shim`.")
                return None
            new = updated.with_changes(func=ctx.shim("set_default_tensor_type"))
            return ctx.rewrite(original, new, _SET_DEFAULT_API, "TDM109",
                               "The default tensor type: the original call on CUDA (legacy constructors such as "
                               "torch.Tensor(data) make CUDA tensors, as before); dtype and default device elsewhere.")
        return None

    def _review(self, ctx: RuleContext, node: cst.CSTNode, api: str, message: str) -> None:
        ctx.report(node, api, FindingStatus.REVIEW, REVIEW_CODE, message,
                   "Set the dtype with torch.set_default_dtype and the device with "
                   "torch.set_default_device(runtime_shim.device()), or use .to(device=..., dtype=...).")

    def _constructor(self, ctx: RuleContext, original: cst.Call, updated: cst.Call, name: str):
        th = torch_name(ctx, original, original.func)
        if th is None:
            self._review(ctx, original, f"torch.cuda.{name}", "The module does not import torch, so the CPU type cannot be named here.")
            return None
        inner = updated.with_changes(func=dotted(th, name), lpar=[], rpar=[])
        new = cst.Call(cst.Attribute(inner, cst.Name("to")), [cst.Arg(_device(ctx, original))],
                       lpar=updated.lpar, rpar=updated.rpar)
        return _done(ctx, ctx.rewrite(original, new, f"torch.cuda.{name}", "TDM109"), original.func)

    def _dot_type(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        receiver = original.func.value  # type: ignore[attr-defined,union-attr]
        if _torch_ref(receiver) and (ctx.qualname(receiver) or "").startswith("torch"):
            return None  # torch.Tensor.type(x, T): not a method call on a value
        shape = split_args(original)
        if shape is None:
            return None
        positional, keywords = shape
        type_arg = positional[0] if positional else keywords.get("dtype")
        if type_arg is None or set(keywords) - {"dtype", "non_blocking"} or len(positional) > 2:
            return None
        name = legacy_type(ctx, type_arg.value)
        if name is None:
            return None
        th = torch_name(ctx, original, type_arg.value)
        if th is None:
            self._review(ctx, original, f"torch.cuda.{name}", "The module does not import torch, so the dtype cannot be named here.")
            return None
        upd_shape = split_args(updated)
        assert upd_shape is not None
        upd_pos, upd_kw = upd_shape
        args = [keyword_arg("device", _device(ctx, original)), keyword_arg("dtype", dotted(th, DTYPES[name]))]
        if len(upd_pos) == 2:
            args.append(keyword_arg("non_blocking", upd_pos[1].value, upd_pos[1]))
        elif "non_blocking" in upd_kw:
            args.append(upd_kw["non_blocking"])
        new = updated.with_changes(func=updated.func.with_changes(attr=cst.Name("to")), args=with_commas(args))  # type: ignore[union-attr]
        return _done(ctx, ctx.rewrite(original, new, f"torch.cuda.{name}", "TDM109"), type_arg.value)

    def _isinstance(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        obj_arg, type_arg = original.args
        name = legacy_type(ctx, type_arg.value) if _torch_ref(type_arg.value) else None
        if name is None:
            return None
        if obj_arg.keyword or obj_arg.star or type_arg.keyword or type_arg.star or not _simple(obj_arg.value):
            self._review(ctx, original, f"torch.cuda.{name}",
                         "isinstance with a legacy CUDA type on an expression that cannot be evaluated twice.")
            return None
        th = torch_name(ctx, original, type_arg.value)
        if th is None:
            self._review(ctx, original, f"torch.cuda.{name}", "The module does not import torch, so the dtype cannot be named here.")
            return None
        x = updated.args[0].value.with_changes(lpar=[], rpar=[])

        def attr(n: str) -> cst.Attribute:
            return cst.Attribute(x, cst.Name(n))

        parts: List[cst.BaseExpression] = [
            updated.with_changes(args=[cst.Arg(x, comma=cst.MaybeSentinel.DEFAULT), cst.Arg(dotted(th, "Tensor"))], lpar=[], rpar=[]),
            _eq(attr("dtype"), dotted(th, DTYPES[name])),
            _eq(attr("layout"), dotted(th, "strided")),
            _on_accelerator(ctx, original, attr("device")),
        ]
        new: cst.BaseExpression = parts[0]
        for p in parts[1:]:
            new = cst.BooleanOperation(new, cst.And(), p)
        if updated.lpar or not self._bare_context(ctx, original):
            new = new.with_changes(lpar=updated.lpar or [cst.LeftParen()], rpar=updated.rpar or [cst.RightParen()])
        return _done(ctx, ctx.rewrite(original, new, f"torch.cuda.{name}", "TDM109"), type_arg.value)

    @staticmethod
    def _bare_context(ctx: RuleContext, node: cst.CSTNode) -> bool:
        """Where an ``a and b`` needs no parentheses: a whole condition, value or argument."""
        parent = ctx.parent(node)
        if isinstance(parent, (cst.If, cst.While, cst.Assert)) and parent.test is node:
            return True
        if isinstance(parent, (cst.Assign, cst.AnnAssign, cst.Return)) and parent.value is node:
            return True
        return isinstance(parent, cst.Arg) and parent.value is node

def _may_be_legacy(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """A CUDA legacy type, or a conditional expression with one as a branch."""
    if isinstance(node, cst.IfExp):
        return _may_be_legacy(ctx, node.body) or _may_be_legacy(ctx, node.orelse)
    return legacy_type(ctx, node) is not None


def _done(ctx: RuleContext, result, ref: cst.CSTNode):
    """After a rewrite: schedule removal of ``from torch.cuda import XTensor`` if now unused."""
    if result is not None and isinstance(ref, (cst.Name, cst.Attribute)):
        forget_import(ctx, ref, "")
    return result


def _eq(left: cst.BaseExpression, right: cst.BaseExpression) -> cst.Comparison:
    return cst.Comparison(left, [cst.ComparisonTarget(cst.Equal(), right)])


def _device(ctx: RuleContext, at: cst.CSTNode) -> cst.BaseExpression:
    """The chosen device: ``runtime_shim.device()``, or the torch target's ``{device}``."""
    if ctx.target == "torch":
        ctx.port(min(LEGACY))
        return device_expression(ctx, at)
    return ctx.shim_call("device")


def _on_accelerator(ctx: RuleContext, at: cst.CSTNode, device: cst.BaseExpression) -> cst.BaseExpression:
    """``runtime_shim.is_accelerator(d)``, or the torch target's ``d.type == {device_type} != "cpu"``."""
    if ctx.target == "torch":
        return cst.Comparison(cst.Attribute(device, cst.Name("type")), [
            cst.ComparisonTarget(cst.Equal(), device_type_expression(ctx, at)),
            cst.ComparisonTarget(cst.NotEqual(), cpu_string(ctx, at))])
    return ctx.shim_call("is_accelerator", device)
