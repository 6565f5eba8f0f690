"""Comparisons with ``'cuda'``: true exactly when the chosen device is an accelerator of that type.

Replacing ``'cuda'`` by ``'cpu'`` would flip ``if device_type == 'cuda': x = x.pin_memory()`` into
a crash on CPU, so the literal becomes ``runtime_shim.accelerator_type()`` (``'cuda'`` on CUDA,
``'mps'``/``'xpu'`` there, ``None`` on a CPU-only machine, which equals no string).

* ``x == 'cuda'`` / ``x.type != 'cuda'`` -> ``x == runtime_shim.accelerator_type()`` / ``!=``
* ``'cuda' in x`` -> ``runtime_shim.is_accelerator(x)``; ``'cuda' not in x`` -> ``not runtime_shim.is_accelerator(x)``

``x.type != 'cpu'`` is already portable and stays. Comparisons with ``'cuda:N'`` or with tuples of
names are listed for review (TDM302).
"""

from __future__ import annotations

import libcst as cst

from .base import Rule, RuleContext, is_plain_cuda


class DeviceComparisons(Rule):
    name = "device-comparisons"
    VALID = (
        "if device.type != 'cpu':\n    pass\n",
        "if name == 'cuda_rng_state':\n    pass\n",
        "ok = 'cudnn' in backend\n",
        "import runtime_shim\non_cuda = runtime_shim.accelerator_type() == 'cuda'\n",
    )
    INVALID = (
        ("if device_type == 'cuda':\n    x = x.half()\n",
         "import runtime_shim\n\nif device_type == runtime_shim.accelerator_type():\n    x = x.half()\n"),
        ("use = x.device.type != 'cuda'\n", "import runtime_shim\n\nuse = x.device.type != runtime_shim.accelerator_type()\n"),
        ("amp = 'cuda' in device\n", "import runtime_shim\n\namp = runtime_shim.is_accelerator(device)\n"),
        ("cpu = 'cuda' not in str(device)\n", "import runtime_shim\n\ncpu = not runtime_shim.is_accelerator(str(device))\n"),
    )

    def leave_Comparison(self, ctx: RuleContext, original: cst.Comparison, updated: cst.Comparison):
        if len(original.comparisons) == 1:
            target = original.comparisons[0]
            if isinstance(target.operator, (cst.In, cst.NotIn)) and is_plain_cuda(original.left):
                comparator = target.comparator
                if isinstance(comparator, (cst.Tuple, cst.List, cst.Set, cst.SimpleString, cst.Dict)):
                    return None
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
