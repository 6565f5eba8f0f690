"""Tensor methods and flags that assume CUDA: ``is_cuda``, ``pin_memory``, ``record_stream``.

* ``x.is_cuda`` (read), one rule for every receiver (a tensor, a module, a ``PackedSequence`` that
  has no ``.device``, a project class with its own ``is_cuda`` property, anything unknown): a
  question (``if x.is_cuda``, ``flag = x.is_cuda``) -> ``runtime_shim.is_cuda(x)``; a stated
  requirement (the test of an ``assert``, also joined by ``and`` or inside ``all(...)``) ->
  ``runtime_shim.on_device(x)``. On CUDA both are exactly ``x.is_cuda``. Elsewhere the question
  is True only on the chosen accelerator (False on a CPU machine, as the original answered there),
  and the requirement holds for an object on the chosen device, CPU included, so a ported
  ``.cuda()`` followed by ``assert x.is_cuda`` still agrees. ``x.device.type == 'cuda'`` is never
  emitted: it needs a ``.device`` that not every receiver has. Assignment, loop and ``with``
  targets (``self.is_cuda = True``) and calls (``m.is_cuda()``) are user attributes and stay, and
  so does ``Tensor.is_cuda.__get__`` (the property object, not a flag); in a file that defines its
  own ``is_cuda`` (a ``def`` or an assignment), reads on ``self`` and on the receivers it assigns
  stay too, and so do reads on ``self`` in a class whose project base (any file) defines one.
* ``x.pin_memory()`` -> ``runtime_shim.pin_memory(x)``: pinned on CUDA/XPU, ``x`` itself elsewhere
  (``pin_memory()`` raises without CUDA).
* ``t.record_stream(s)`` -> ``runtime_shim.record_stream(t, s)``: the real call on CUDA/XPU, nothing on
  the single in-order queue of MPS and the CPU.
* ``DataLoader(..., pin_memory=True)`` and torch factories (``torch.empty(..., pin_memory=True)``, which
  raise without an accelerator) -> ``pin_memory=runtime_shim.pin_memory_enabled(True)``, and the
  same for a value that mentions CUDA (``pin_memory=torch.cuda.is_available()``, ``args.device == 'cuda'``).
  Decision: ported although the CPU build only warns ("pin_memory ... no accelerator is found"):
  on CUDA the value is returned unchanged, on CPU/MPS it removes the warning and the pinning thread
  that the loader would start for nothing. Values that are already portable
  (``pin_memory=device.type != 'cpu'``, a variable, ``False``) stay, so portable code stays byte-identical.

``non_blocking=True`` is left as it is: every backend accepts it, and where no asynchronous copy
exists (CPU to CPU, CPU to MPS) the copy is simply synchronous, which is what the program waits for.
"""

from __future__ import annotations

from typing import Optional, Set, Tuple

import libcst as cst

from ..findings import FindingStatus
from ..project_index import project_of
from ..registry import handled_by
from ..targets import DEVICE_VALUE
from .base import (
    Example,
    GuardsStatements,
    NodeVisitor,
    Rule,
    RuleContext,
    cpu_string,
    device_type_expression,
    is_available_test,
    is_store_target,
    rewrite_ported,
    torch_expression,
    walk,
)

#: Registry entries this rule ports (issue 13).
HANDLES = handled_by("tensor_methods")
_DATALOADER_PIN = next(n for n in HANDLES if n.endswith("DataLoader.pin_memory"))
IS_CUDA = next(n for n in HANDLES if n.endswith("Tensor.is_cuda"))
PIN = next(n for n in HANDLES if n.endswith("Tensor.pin_memory"))
RECORD = next(n for n in HANDLES if n.endswith("Tensor.record_stream"))
#: ``torch.utils.data.DataLoader`` (from the registry entry ``...DataLoader.pin_memory``) and its defining module's path.
DATALOADERS = {_DATALOADER_PIN.rpartition(".")[0], "torch.utils.data.dataloader.DataLoader"}
KEPT_CODE = "TDM307"
_AVAILABLE = "torch.accelerator.is_available()"
_DV = f"device = {DEVICE_VALUE}\n"  # the torch target's device value, as the examples show it


def _torch_receiver(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """``torch.Tensor.pin_memory(x)`` and the like: the receiver is torch itself, not a value."""
    if not isinstance(node, (cst.Name, cst.Attribute)):
        return False
    qual = ctx.qualname(node) or ""
    return qual == "torch" or qual.startswith("torch.")


class _OwnIsCuda(NodeVisitor):
    """Receivers (as code) of ``<recv>.is_cuda = ...`` (or ``for``/``with`` targets), and whether a ``def is_cuda`` exists."""

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.receivers: Set[str] = set()
        self.defined = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if node.name.value == "is_cuda":
            self.defined = True

    def _target(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Attribute) and target.attr.value == "is_cuda":
            self.receivers.add(self.module.code_for_node(target.value))
        elif isinstance(target, (cst.Tuple, cst.List)):
            for e in target.elements:
                self._target(e.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._target(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._target(node.name)


def _asserted(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """``assert x.is_cuda`` / ``assert a.is_cuda and b.is_cuda``, ``assert all(t.is_cuda for t in ts)``."""
    child, parent = node, ctx.parent(node)
    while True:
        if isinstance(parent, cst.Assert):
            return parent.test is child
        if isinstance(parent, cst.BooleanOperation) and isinstance(parent.operator, cst.And):
            child, parent = parent, ctx.parent(parent)
            continue
        if isinstance(parent, cst.GeneratorExp) and parent.elt is child:
            arg = ctx.parent(parent)
            call = ctx.parent(arg) if isinstance(arg, cst.Arg) else None
            if (isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "all"
                    and len(call.args) == 1):
                child, parent = call, ctx.parent(call)
                continue
        return False


def _enclosing_class_members(ctx: RuleContext, node: cst.CSTNode) -> Set[str]:
    current = ctx.parent(node)
    while current is not None and not isinstance(current, cst.ClassDef):
        current = ctx.parent(current)
    if current is None:
        return set()
    project = project_of(ctx)
    out = set(project.members(current.name.value))
    for base in current.bases:
        if isinstance(base.value, (cst.Name, cst.Attribute)):
            name = base.value.value if isinstance(base.value, cst.Name) else base.value.attr.value
            out |= project.members(name)
    return out


class TensorMethods(GuardsStatements, Rule):
    name = "tensor-methods"
    VALID = (
        "class M:\n    def __init__(self):\n        self.is_cuda = True\n    def go(self):\n        return self.is_cuda\n",
        "ok = model.is_cuda()\n",
        # Loop and `with` targets are written, not read; `.is_cuda.__get__` is the property object.
        "for ctx.is_cuda in flags:\n    pass\nwith flag() as ctx.is_cuda:\n    pass\n",
        "handlers = {Tensor.is_cuda.__get__: lambda self: -1}\n",
        "x = x.to(device, non_blocking=True)\n",
        "from torch.utils.data import DataLoader\nloader = DataLoader(ds, pin_memory=False)\n",
        # Portable already, in a file with no CUDA use: pin_memory alone never ports a file.
        "def place(x, device):\n    if device.type != 'cpu':\n        x = x.pin_memory()\n    return x.to(device)\n",
    )
    INVALID = (
        Example("if x.is_cuda:\n    pass\n", "import runtime_shim\n\nif runtime_shim.is_cuda(x):\n    pass\n", ("TDM103",),
                torch="import torch\n\n" + _DV + "\nif x.device.type == device.type != \"cpu\":\n    pass\n"),
        # A stated requirement holds for an object on the chosen device (the CPU included).
        Example("assert x.is_cuda and y.is_cuda\nuse = packed.is_cuda\n",
                "import runtime_shim\n\nassert runtime_shim.on_device(x) and runtime_shim.on_device(y)\n"
                "use = runtime_shim.is_cuda(packed)\n", ("TDM103", "TDM103", "TDM103"),
                torch="import torch\n\n" + _DV + "\nassert x.device.type == device.type and y.device.type == device.type\n"
                      "use = packed.device.type == device.type != \"cpu\"\n"),
        # A project class with its own ``is_cuda`` (maybe no ``.device``): left under --target torch (TDM307).
        Example("class Flag:\n    is_cuda = True\nif x.is_cuda:\n    pass\n",
                "import runtime_shim\n\nclass Flag:\n    is_cuda = True\nif runtime_shim.is_cuda(x):\n    pass\n", ("TDM103",),
                torch="class Flag:\n    is_cuda = True\nif x.is_cuda:\n    pass\n", torch_codes=("TDM307",)),
        Example("same = a.is_cuda == b.is_cuda\n",
                "import runtime_shim\n\nsame = runtime_shim.is_cuda(a) == runtime_shim.is_cuda(b)\n", ("TDM103", "TDM103"),
                torch="import torch\n\n" + _DV + "\nsame = (a.device.type == device.type != \"cpu\") == "
                      "(b.device.type == device.type != \"cpu\")\n"),
        # pin_memory rewrites never make a file ported on their own: here .cuda() (another rule's) does. A
        # receiver that cannot be read twice has no torch spelling (left, TDM307, under --target torch).
        Example("x = x.cuda()\nb = batch.pin_memory()\nc = next(it).pin_memory()\n",
                "import runtime_shim\n\nx = x.cuda()\nb = runtime_shim.pin_memory(batch)\nc = runtime_shim.pin_memory(next(it))\n",
                ("TDM111", "TDM111"),
                torch="import torch\n\nx = x.cuda()\nb = batch.pin_memory() if torch.accelerator.is_available() else batch\n"
                      "c = next(it).pin_memory()\n", torch_codes=("TDM111", "TDM307")),
        # A statement that raises on CPU streams is guarded under --target torch.
        Example("import torch\nout.record_stream(s)\n", "import torch\nimport runtime_shim\n\nruntime_shim.record_stream(out, s)\n",
                ("TDM104",), torch="import torch\nif torch.accelerator.is_available():\n    out.record_stream(s)\n"),
        Example("import torch\nloader = torch.utils.data.DataLoader(ds, batch_size=8, pin_memory=True)\n"
                "other = torch.utils.data.DataLoader(ds, pin_memory=torch.cuda.is_available())\nx = x.cuda()\n",
                "import torch\nimport runtime_shim\n\n"
                "loader = torch.utils.data.DataLoader(ds, batch_size=8, pin_memory=runtime_shim.pin_memory_enabled(True))\n"
                "other = torch.utils.data.DataLoader(ds, pin_memory=runtime_shim.pin_memory_enabled(torch.cuda.is_available()))\n"
                "x = x.cuda()\n", ("TDM111", "TDM111"),
                torch="import torch\nloader = torch.utils.data.DataLoader(ds, batch_size=8, pin_memory=torch.accelerator.is_available())\n"
                      "other = torch.utils.data.DataLoader(ds, pin_memory=torch.accelerator.is_available())\nx = x.cuda()\n"),
    )

    def __init__(self) -> None:
        self._own: Optional[Tuple[Set[str], bool]] = None

    def _own_is_cuda(self, ctx: RuleContext) -> Tuple[Set[str], bool]:
        if self._own is None:
            v = _OwnIsCuda(ctx.module)
            walk(v, ctx.module)
            self._own = (v.receivers, v.defined)
        return self._own

    # -- x.is_cuda ---------------------------------------------------------------------------------
    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute):
        if original.attr.value != "is_cuda" or _torch_receiver(ctx, original.value) or ctx.is_shim_ref(original):
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Call) and parent.func is original:
            return None
        if isinstance(parent, cst.Attribute) and parent.value is original:
            return None  # ``Tensor.is_cuda.__get__``: the property object itself, not a flag read
        if is_store_target(ctx, original):
            return None
        receivers, defined = self._own_is_cuda(ctx)
        receiver = ctx.code(original.value)
        if receiver in receivers or (defined and receiver == "self"):
            return None
        if receiver == "self" and "is_cuda" in _enclosing_class_members(ctx, original):
            return None  # the class's own ``is_cuda`` (defined here or in a base, in any project file)
        # One rule for every receiver (tensor, module, PackedSequence, a project class): a question
        # (``if x.is_cuda``) -> ``runtime_shim.is_cuda(x)``; a stated requirement
        # (``assert x.is_cuda``) -> ``runtime_shim.on_device(x)``. On CUDA both are ``x.is_cuda``.
        asserted = _asserted(ctx, original)
        if ctx.target == "torch":
            return self._is_cuda_torch(ctx, original, updated, asserted)
        name = "on_device" if asserted else "is_cuda"
        value = updated.value
        if len(value.lpar) == 1 and len(value.rpar) == 1 and not isinstance(value, (cst.Tuple, cst.GeneratorExp)):
            value = value.with_changes(lpar=(), rpar=())  # ``(x + 1).is_cuda``: no doubled parentheses
        new = ctx.shim_call(name, value).with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, IS_CUDA, "TDM103")

    def _is_cuda_torch(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute, asserted: bool):
        """``x.device.type == {device_type} != "cpu"`` (a requirement: ``x.device.type == {device_type}``)."""
        spelling = ctx.port(IS_CUDA, "requirement" if asserted else "")
        if _packed_sequence(ctx, original.value):
            # A PackedSequence has ``is_cuda`` but no ``.device``: no torch spelling reads it the same way.
            ctx.report(original, IS_CUDA, FindingStatus.REVIEW, KEPT_CODE,
                       "`.is_cuda` of a PackedSequence, which has no `.device`.",
                       "Read `x.data.device.type` by hand, or port with `--target shim`. " + spelling.note)
            return None
        if project_of(ctx).defines_anywhere("is_cuda"):
            # A project class answers ``is_cuda`` itself (and may have no ``.device``): the receiver may be one.
            ctx.report(original, IS_CUDA, FindingStatus.REVIEW, KEPT_CODE,
                       "`.is_cuda` where a project class defines its own `is_cuda`, which may have no `.device`.",
                       "Port it by hand (`x.device.type == device.type` for a tensor), or with `--target shim`.")
            return None
        kind = cst.Attribute(cst.Attribute(updated.value, cst.Name("device")), cst.Name("type"))
        targets = [cst.ComparisonTarget(cst.Equal(), device_type_expression(ctx, original))]
        if not asserted:
            targets.append(cst.ComparisonTarget(cst.NotEqual(), cpu_string(ctx, original)))
        new = _parenthesized(ctx, original, cst.Comparison(kind, targets), updated)
        return ctx.rewrite(original, new, IS_CUDA, "TDM103")

    # -- x.pin_memory(), t.record_stream(s), DataLoader(pin_memory=...) ----------------------------
    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        func = original.func
        if isinstance(func, cst.Attribute) and isinstance(updated.func, cst.Attribute) and not _torch_receiver(ctx, func.value):
            method = func.attr.value
            if method == "pin_memory" and not original.args and not ctx.is_shim_ref(func):
                if ctx.target == "torch":
                    return self._pin_memory_torch(ctx, original, updated)
                new = ctx.shim_call("pin_memory", updated.func.value).with_changes(lpar=updated.lpar, rpar=updated.rpar)
                # Portable-looking code (``if device.type != 'cpu': x = x.pin_memory()``): only a
                # file with CUDA use makes it one, so it never makes a file ported on its own.
                return ctx.rewrite(original, new, PIN, "TDM111", alone=False)
            if (method == "record_stream" and len(original.args) == 1 and original.args[0].keyword is None
                    and not original.args[0].star and not ctx.is_shim_ref(func)):
                if ctx.target == "torch":
                    # The call itself (a ``torch.Stream`` is device-generic); it raises on CPU streams, so a
                    # statement gets the accelerator guard and a value is reported (TDM115).
                    return rewrite_ported(ctx, original, updated, RECORD, "TDM104",
                                          ctx.port(RECORD))
                new = ctx.shim_call("record_stream", updated.func.value, updated.args[0].value).with_changes(
                    lpar=updated.lpar, rpar=updated.rpar)
                return ctx.rewrite(original, new, RECORD, "TDM104")
        if isinstance(func, (cst.Name, cst.Attribute)) and any(a.keyword is not None and a.keyword.value == "pin_memory"
                                                                for a in original.args):
            qual = ctx.qualname(func) or ""
            if qual in DATALOADERS or (qual.startswith("torch.") and not qual.startswith("torch.cuda.")):
                return self._pin_memory_keyword(ctx, original, updated, qual)
        return None

    def _pin_memory_keyword(self, ctx: RuleContext, original: cst.Call, updated: cst.Call, qual: str):
        new_args = list(updated.args)
        for i, (orig, upd) in enumerate(zip(original.args, updated.args)):
            if orig.keyword is None or orig.keyword.value != "pin_memory":
                continue
            value = orig.value
            literal_true = isinstance(value, cst.Name) and value.value == "True"
            if not (literal_true or "cuda" in ctx.code(value).lower()) or ctx.code(value).startswith(ctx.shim_alias + "."):
                return None
            if (isinstance(value, cst.BooleanOperation) and isinstance(value.operator, cst.And)
                    and _is_accelerator_test(ctx, value.right)):
                return None  # already ``expr and torch.accelerator.is_available()``
            if ctx.target == "torch":
                ctx.port(_DATALOADER_PIN)
                available = torch_expression(ctx, _AVAILABLE)
                if literal_true or is_available_test(ctx, value) is True:
                    new_value = available  # ``pin_memory=torch.cuda.is_available()``: the question itself
                else:
                    left = upd.value
                    if isinstance(left, (cst.BooleanOperation, cst.IfExp, cst.Lambda, cst.NamedExpr)) and not (
                            isinstance(left, cst.BooleanOperation) and isinstance(left.operator, cst.And)) and not left.lpar:
                        left = left.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                    new_value = cst.BooleanOperation(left, cst.And(), available)
            else:
                new_value = ctx.shim_call("pin_memory_enabled", upd.value)
            api = _DATALOADER_PIN if qual in DATALOADERS else PIN
            if ctx.rewrite(value, new_value, api, "TDM111", alone=False) is None:
                return None
            new_args[i] = upd.with_changes(value=new_value)
            return updated.with_changes(args=new_args)
        return None

    def _pin_memory_torch(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        """``x.pin_memory() if torch.accelerator.is_available() else x`` for a receiver that may be read
        twice (a name, an attribute, a subscript of those); any other receiver is left and reported."""
        receiver = updated.func.value  # type: ignore[attr-defined,union-attr]
        spelling = ctx.port(PIN)
        parent = ctx.parent(original)
        if isinstance(parent, cst.IfExp) and parent.body is original and _is_accelerator_test(ctx, parent.test):
            return None  # already ``x.pin_memory() if torch.accelerator.is_available() else x``
        if not _readable_twice(original.func.value):  # type: ignore[attr-defined,union-attr]
            ctx.report(original, PIN, FindingStatus.REVIEW, KEPT_CODE,
                       "`.pin_memory()` raises without an accelerator; its receiver cannot be read twice to keep it "
                       "unpinned there.", "Bind the value to a name first, or port with `--target shim`. " + spelling.note)
            return None
        new: cst.BaseExpression = cst.IfExp(test=torch_expression(ctx, _AVAILABLE), body=updated.with_changes(lpar=[], rpar=[]),
                        orelse=receiver)
        new = _parenthesized(ctx, original, new, updated)
        return ctx.rewrite(original, new, PIN, "TDM111", alone=False)


_RNN = "torch.nn.utils.rnn."


def _packed_sequence(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """A call of a ``torch.nn.utils.rnn`` function or class (a PackedSequence), or a name bound to one."""
    if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
        return (ctx.qualname(node.func) or "").startswith(_RNN)
    if isinstance(node, cst.Name):
        scope = ctx.scope(node)
        if scope is None or node.value not in scope:
            return False
        for a in scope[node.value]:
            target = getattr(a, "node", None)
            at = ctx.parent(target) if isinstance(target, cst.Name) else None
            assign = ctx.parent(at) if isinstance(at, cst.AssignTarget) else None
            if isinstance(assign, cst.Assign) and _packed_sequence(ctx, assign.value):
                return True
    return False


def _is_accelerator_test(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """``torch.accelerator.is_available()`` (the torch target's own test)."""
    return (isinstance(node, cst.Call) and not node.args and isinstance(node.func, (cst.Name, cst.Attribute))
            and ctx.qualname(node.func) == "torch.accelerator.is_available")


def _readable_twice(node: cst.CSTNode) -> bool:
    """A name, an attribute chain or a subscript with a name/literal index: reading it twice reads the same."""
    if isinstance(node, cst.Name):
        return True
    if isinstance(node, cst.Attribute):
        return _readable_twice(node.value)
    if isinstance(node, cst.Subscript) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        index = node.slice[0].slice.value
        return _readable_twice(node.value) and isinstance(index, (cst.Name, cst.Integer, cst.SimpleString))
    return False


# Where a comparison or a conditional expression needs no parentheses: a whole condition, value or argument.
_BARE_PARENTS = (cst.If, cst.While, cst.Assert, cst.Assign, cst.AnnAssign, cst.Return, cst.Arg, cst.Element,
                 cst.DictElement, cst.Expr, cst.FormattedStringExpression)


def _parenthesized(ctx: RuleContext, original: cst.CSTNode, new: cst.BaseExpression, updated) -> cst.BaseExpression:
    """``new`` with the parentheses of ``updated``, adding one pair where its parent would bind tighter."""
    if updated.lpar:
        return new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
    parent = ctx.parent(original)
    bare = isinstance(parent, _BARE_PARENTS) or (
        isinstance(new, cst.Comparison) and (isinstance(parent, cst.BooleanOperation) or (
            isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Not))))
    if isinstance(parent, (cst.GeneratorExp, cst.ListComp, cst.SetComp)) and parent.elt is original:
        bare = True  # ``all(t.device.type == ... for t in ts)``
    if isinstance(parent, cst.IfExp) and parent.test is original:
        bare = isinstance(new, cst.Comparison)
    if bare:
        return new
    return new.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
