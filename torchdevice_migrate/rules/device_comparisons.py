"""Comparisons with ``'cuda'``: true exactly when the chosen device is an accelerator of that type.

Replacing ``'cuda'`` by ``'cpu'`` would flip ``if device_type == 'cuda': x = x.pin_memory()`` into
a crash on CPU, so the literal becomes ``runtime_shim.accelerator_type()`` (``'cuda'`` on CUDA,
``'mps'``/``'xpu'`` there, ``None`` on a CPU-only machine, which equals no string).

* ``x == 'cuda'`` / ``x.type != 'cuda'`` -> ``x == runtime_shim.accelerator_type()`` / ``!=``
* ``'cuda' in x`` -> ``runtime_shim.is_accelerator(x)``; ``'cuda' not in x`` -> ``not runtime_shim.is_accelerator(x)``

``x.type != 'cpu'`` is already portable and stays. Comparisons with ``'cuda:N'`` or with tuples of
names are listed for review (TDM302).

Inside TorchScript (``base.in_torchscript``) a comparison is left as it is, with no finding: a shim
call cannot be scripted, and ``t.device.type == 'cuda'`` is already exact on CUDA and false wherever
the original ran without CUDA.

A name that is also compared with, or offered as a choice next to, a word that names no device
(``impl == 'triton'``, ``choices=['torch', 'triton', 'cuda']``) names an implementation, not a
device: its comparison with ``'cuda'`` is left as it is and listed for review, like its siblings.

Raw stream or event handles compared only for identity (``a.cuda_stream == b.cuda_stream``) are
stream (event) equality: ``a == b``, which holds on every backend.
"""

from __future__ import annotations

import libcst as cst

from .base import (
    Example,
    NodeVisitor,
    Rule,
    RuleContext,
    cpu_string,
    device_kind_for_name,
    device_type_expression,
    handle_identity_comparison,
    in_torchscript,
    is_module_device_value,
    is_plain_cuda,
    string_value,
    target_name,
    walk,
)


class DeviceComparisons(Rule):
    name = "device-comparisons"
    VALID = (
        "if device.type != 'cpu':\n    pass\n",
        "if name == 'cuda_rng_state':\n    pass\n",
        "ok = 'cudnn' in backend\n",
        "import runtime_shim\non_cuda = runtime_shim.accelerator_type() == 'cuda'\n",
        # TorchScript cannot call the shim; the comparison is already exact there.
        "import torch\n@torch.jit.script\ndef f(x: torch.Tensor) -> bool:\n    return x.device.type == 'cuda'\n",
    )
    REPORTS = (
        # 'cuda' names a kernel implementation next to 'triton': not a device (listed for review).
        ("def run(x, impl):\n    if impl == 'triton':\n        return tri(x)\n    if impl == 'cuda':\n        return cu(x)\n",
         ("TDM302",)),
    )
    INVALID = (
        # ``x.device.type`` is a device type, whatever else an attribute called ``type`` is compared with.
        Example(
            "if layer.type == 'conv':\n"
            '    y = layer(x)\n'
            "elif x.device.type == 'cuda':\n"
            '    y = x.half()\n',
            'import runtime_shim\n'
            '\n'
            "if layer.type == 'conv':\n"
            '    y = layer(x)\n'
            'elif x.device.type == runtime_shim.accelerator_type():\n'
            '    y = x.half()\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "if layer.type == 'conv':\n"
                  '    y = layer(x)\n'
                  'elif x.device.type == device.type != "cpu":\n'
                  '    y = x.half()\n',
        ),
        Example(
            "if device_type == 'cuda':\n"
            '    x = x.half()\n',
            'import runtime_shim\n'
            '\n'
            'if device_type == runtime_shim.accelerator_type():\n'
            '    x = x.half()\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'if device_type == device.type != "cpu":\n'
                  '    x = x.half()\n',
        ),
        Example(
            "use = x.device.type != 'cuda'\n",
            'import runtime_shim\n'
            '\n'
            'use = x.device.type != runtime_shim.accelerator_type()\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'use = x.device.type != device.type or device.type == "cpu"\n',
        ),
        Example(
            "amp = 'cuda' in device\n",
            'import runtime_shim\n'
            '\n'
            'amp = runtime_shim.is_accelerator(device)\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'amp = DEVICE.type != "cpu" and DEVICE.type in device\n',
        ),
        Example(
            "cpu = 'cuda' not in str(device)\n",
            'import runtime_shim\n'
            '\n'
            'cpu = not runtime_shim.is_accelerator(str(device))\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'cpu = DEVICE.type == "cpu" or DEVICE.type not in str(device)\n',
        ),
        Example(
            'import torch\n'
            'if torch.cuda.current_stream().cuda_stream == s.cuda_stream:\n'
            '    pass\n',
            'import torch\n'
            'if torch.cuda.current_stream() == s:\n'
            '    pass\n',
            ('TDM104',),
            torch='import torch\n'
                  'if torch.cuda.current_stream() == s:\n'
                  '    pass\n',
        ),
        Example(
            "ok = flag and x.device.type != 'cuda'\n",
            'import runtime_shim\n'
            '\n'
            'ok = flag and x.device.type != runtime_shim.accelerator_type()\n',
            ('TDM103',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'ok = flag and (x.device.type != device.type or device.type == "cpu")\n',
        ),
    )

    def leave_Comparison(self, ctx: RuleContext, original: cst.Comparison, updated: cst.Comparison):
        if handle_identity_comparison(original):
            same = updated.with_changes(left=updated.left.value, comparisons=[  # type: ignore[attr-defined]
                updated.comparisons[0].with_changes(comparator=updated.comparisons[0].comparator.value)])  # type: ignore[attr-defined]
            return ctx.rewrite(original, same, "torch.cuda.Stream.cuda_stream", "TDM104",
                               "Raw handles compared only for identity: the streams (events) themselves are compared.")
        if not any(map(is_plain_cuda, (original.left, *(t.comparator for t in original.comparisons)))) or in_torchscript(ctx, original) or names_an_implementation(ctx, original):  # every port below needs a 'cuda' operand: that cheap test first (P2-D, speed)
            return None
        if len(original.comparisons) == 1:
            target = original.comparisons[0]
            if isinstance(target.operator, (cst.In, cst.NotIn)) and is_plain_cuda(original.left):
                comparator = target.comparator
                if isinstance(comparator, (cst.Tuple, cst.List, cst.Set, cst.SimpleString, cst.Dict)):
                    return None
                if ctx.target == "torch":
                    membership = _torch_membership(ctx, original, updated.comparisons[0].comparator,
                                                   isinstance(target.operator, cst.NotIn))
                    return ctx.rewrite(original, _parenthesized(ctx, original, updated, membership), API, "TDM103")
                new: cst.BaseExpression = ctx.shim_call("is_accelerator", updated.comparisons[0].comparator)
                if isinstance(target.operator, cst.NotIn):
                    new = cst.UnaryOperation(cst.Not(), new)
                new = new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
                return ctx.rewrite(original, new, "literal:'cuda'", "TDM103")
        if not any(isinstance(t.operator, (cst.Equal, cst.NotEqual)) for t in original.comparisons):
            return None
        operands = [original.left] + [t.comparator for t in original.comparisons]
        if not any(is_plain_cuda(o) for o in operands):
            return None
        if any(isinstance(o, cst.Call) and ctx.is_shim_ref(o.func) for o in operands):
            return None  # ``runtime_shim.accelerator_type() == "cuda"`` is already the ported form
        if ctx.target == "torch":
            return self._torch_equality(ctx, original, updated)
        # Replace each 'cuda' operand that sits next to an == / != operator.
        accel = ctx.shim_call("accelerator_type")
        left = updated.left
        if is_plain_cuda(original.left) and isinstance(original.comparisons[0].operator, (cst.Equal, cst.NotEqual)):
            left = accel.with_changes(lpar=updated.left.lpar, rpar=updated.left.rpar)
        targets = []
        for orig_t, upd_t in zip(original.comparisons, updated.comparisons):
            if is_plain_cuda(orig_t.comparator) and isinstance(orig_t.operator, (cst.Equal, cst.NotEqual)):
                upd_t = upd_t.with_changes(comparator=accel)
            targets.append(upd_t)
        new = updated.with_changes(left=left, comparisons=targets)
        if new.deep_equals(updated):
            return None
        return ctx.rewrite(original, new, "literal:'cuda'", "TDM103")


    @staticmethod
    def _torch_equality(ctx: RuleContext, original: cst.Comparison, updated: cst.Comparison):
        """``x == 'cuda'`` -> ``x == device.type != "cpu"``; ``x != 'cuda'`` -> ``(x != device.type or
        device.type == "cpu")`` (``--target torch``; one comparison only, else left for review)."""
        if len(original.comparisons) != 1:
            return None  # a chain (a == 'cuda' == b): no readable exact spelling; listed for review
        op = original.comparisons[0].operator
        left, right = original.left, original.comparisons[0].comparator
        if is_plain_cuda(left) == is_plain_cuda(right):
            return None
        if _is_module_device_type(ctx, right if is_plain_cuda(left) else left):
            return None  # device.type == 'cuda' of the module's device value: already true exactly on CUDA
        other = updated.comparisons[0].comparator if is_plain_cuda(left) else updated.left
        other = other.with_changes(lpar=(), rpar=()) if isinstance(other, (cst.Name, cst.Attribute)) else other
        device_type = device_type_expression(ctx, original)
        cpu = cpu_string(ctx, original)
        if isinstance(op, cst.Equal):
            new: cst.BaseExpression = cst.Comparison(other, [
                cst.ComparisonTarget(cst.Equal(), device_type), cst.ComparisonTarget(cst.NotEqual(), cpu)])
        else:
            new = cst.BooleanOperation(
                cst.Comparison(other, [cst.ComparisonTarget(cst.NotEqual(), device_type)]), cst.Or(),
                cst.Comparison(device_type, [cst.ComparisonTarget(cst.Equal(), cpu)]))
        new = _parenthesized(ctx, original, updated, new)
        ctx.port(API, "comparison")
        return ctx.rewrite(original, new, API, "TDM103")


API = "literal:'cuda'"
HANDLES = (API, "torch.cuda.Stream.cuda_stream")


def _is_module_device_type(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """``device.type`` where ``device`` is a module-level device value (the torch target's own,
    ``torch.accelerator.current_accelerator(...) or torch.device("cpu")``, or ``torch.device("cuda" if
    torch.cuda.is_available() else "cpu")``): its comparison with ``'cuda'`` is exact as it is."""
    if not (isinstance(node, cst.Attribute) and node.attr.value == "type" and isinstance(node.value, cst.Name)):
        return False
    return is_module_device_value(ctx, node.value)


def _parenthesized(ctx: RuleContext, original: cst.Comparison, updated: cst.Comparison,
                   new: cst.BaseExpression) -> cst.BaseExpression:
    """``new`` with the parentheses of ``updated``; a boolean operation that stands inside another
    expression gets its own."""
    if updated.lpar:
        return new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
    if isinstance(new, cst.BooleanOperation) and _needs_parens(ctx, original):
        return new.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return new


def _needs_parens(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether a boolean operation written in place of ``node`` needs parentheses (it is an operand
    of something other than a statement, an argument, an ``if`` test or a ``return``)."""
    parent = ctx.parent(node)
    return not isinstance(parent, (cst.If, cst.While, cst.Assign, cst.AnnAssign, cst.Return, cst.Arg, cst.Expr,
                                   cst.Assert, cst.Element, cst.DictElement))


def _torch_membership(ctx: RuleContext, original: cst.Comparison, container: cst.BaseExpression,
                      negated: bool) -> cst.BaseExpression:
    """``'cuda' in x`` -> ``device.type != "cpu" and device.type in x``; ``not in`` -> ``device.type == "cpu"
    or device.type not in x``."""
    ctx.port(API, "comparison")
    device_type = device_type_expression(ctx, original)
    cpu = cpu_string(ctx, original)
    if negated:
        return cst.BooleanOperation(cst.Comparison(device_type, [cst.ComparisonTarget(cst.Equal(), cpu)]), cst.Or(),
                                    cst.Comparison(device_type, [cst.ComparisonTarget(cst.NotIn(), container)]))
    return cst.BooleanOperation(cst.Comparison(device_type, [cst.ComparisonTarget(cst.NotEqual(), cpu)]), cst.And(),
                                cst.Comparison(device_type, [cst.ComparisonTarget(cst.In(), container)]))


# ---- 'cuda' as the name of an implementation -----------------------------------------------------
DEVICE_WORDS = frozenset({"cpu", "cuda", "mps", "xpu", "meta", "hpu", "npu", "xla", "ipu", "mtia", "vulkan",
                          "opengl", "opencl", "ideep", "mkldnn", "fpga", "maia", "ve", "lazy", "privateuseone",
                          "gpu", "auto", "tpu"})


def _is_device_word(value: str) -> bool:
    return value.split(":")[0].strip().lower() in DEVICE_WORDS


class _Siblings(NodeVisitor):
    """For each name (``impl``, ``args.impl``), the string literals it is compared with or offered
    as ``choices=[...]`` of the argparse option of that name."""

    def __init__(self) -> None:
        self.words: dict = {}

    def _add(self, name, value) -> None:
        if name and value is not None:
            self.words.setdefault(name, set()).add(value)

    def visit_Comparison(self, node: cst.Comparison) -> None:
        operands = [node.left] + [t.comparator for t in node.comparisons]
        for t, (a, b) in zip(node.comparisons, zip(operands, operands[1:])):
            if isinstance(t.operator, (cst.Equal, cst.NotEqual)):
                self._add(target_name(a), string_value(b))
                self._add(target_name(b), string_value(a))
            elif isinstance(t.operator, (cst.In, cst.NotIn)) and isinstance(b, (cst.Tuple, cst.List, cst.Set)):
                for e in b.elements:
                    self._add(target_name(a), string_value(e.value))

    def visit_Call(self, node: cst.Call) -> None:
        if not (isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_argument"):
            return
        options = [string_value(a.value) for a in node.args if a.keyword is None]
        choices = next((a.value for a in node.args if a.keyword is not None and a.keyword.value == "choices"), None)
        if not isinstance(choices, (cst.List, cst.Tuple, cst.Set)):
            return
        for option in options:
            if option:
                for e in choices.elements:
                    self._add(option.lstrip("-").replace("-", "_"), string_value(e.value))


def names_an_implementation(ctx: RuleContext, comparison: cst.Comparison) -> bool:
    """``impl == 'cuda'`` where ``impl`` (not a device-like name) is also compared with, or offered
    as a choice next to, a word that names no device (``'triton'``, ``'torch'``)."""
    operands = [comparison.left] + [t.comparator for t in comparison.comparisons]
    if any(is_device_type_attribute(o) for o in operands):
        return False  # ``x.device.type == 'cuda'``: a device type whatever else ``.type`` is compared with
    names = {target_name(o) for o in operands if not is_plain_cuda(o)}
    names.discard(None)
    if not names or any(device_kind_for_name(n) for n in names):
        return False
    siblings = getattr(ctx, "_h3_siblings", None)
    if siblings is None:
        visitor = _Siblings()
        walk(visitor, ctx.module)
        siblings = ctx._h3_siblings = visitor.words  # type: ignore[attr-defined]
    return any(not _is_device_word(w) for n in names for w in siblings.get(n, ()))


def is_device_type_attribute(node: cst.CSTNode) -> bool:
    """``x.device.type``, ``self.dev.type``: the ``type`` of something a device-like name holds."""
    return (isinstance(node, cst.Attribute) and node.attr.value == "type"
            and device_kind_for_name(target_name(node.value)) == "string")
