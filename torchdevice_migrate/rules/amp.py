"""``torch.cuda.amp`` -> the device-generic ``torch.amp`` API, with the device type from the shim.

* ``torch.cuda.amp.autocast(...)`` -> ``torch.autocast(runtime_shim.device_type(), ...)``. Positional
  arguments become keywords (``autocast(True)`` -> ``enabled=True``): the old signature is
  ``(enabled, dtype, cache_enabled)``, ``torch.autocast``'s is ``(device_type, dtype, enabled, cache_enabled)``.
  No ``dtype`` is added: ``torch.autocast('cuda')`` uses ``torch.get_autocast_dtype('cuda')``, which is
  ``float16`` (what ``torch.cuda.amp.autocast`` passes) unless the program changed it; on CPU the
  device's own default (``bfloat16``) applies, where ``float16`` would be slow.
* ``torch.cuda.amp.GradScaler(...)`` -> ``torch.amp.GradScaler(runtime_shim.device_type(), ...)`` (the
  old class passes ``'cuda'`` first and keeps the order of the other parameters).
* ``@torch.cuda.amp.custom_fwd`` / ``custom_bwd``, bare or called (``@custom_fwd(cast_inputs=...)``)
  -> ``@torch.amp.custom_fwd(device_type=runtime_shim.device_type(), ...)`` (exactly what the old
  function does with ``'cuda'``). Decorators run at import time; ``device_type()`` resolves the
  device there, which the shim allows.
* A name assigned from ``torch.autocast`` (``precision_scope = autocast``, also
  ``autocast if c else nullcontext``), called with ``'cuda'``: the string is a device type and becomes
  ``runtime_shim.device_type('cuda')``, as ``torch.autocast('cuda')`` does in rules/device_strings.py.

Aliases are resolved (``from torch.cuda import amp``, ``import torch.cuda.amp as amp``,
``from torch.cuda.amp import autocast``); a ``from`` import left unused is removed. The new code
needs the ``torch`` module: it is taken from the reference itself (``th.cuda.amp.autocast`` ->
``th.autocast``) or from an ``import torch`` in scope; without one, ``import torch`` is added (unless
the name ``torch`` is bound to something else: then the site is left for review).
A ``torch.cuda.amp`` name used as a value (``ctx = autocast if amp else nullcontext``) cannot be
ported safely and is left for review (TDM304).
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from ..findings import FindingStatus
from ..registry import Status, entries, is_cuda_namespace
from .base import (
    REVIEW_CODE,
    Example,
    Rule,
    RuleContext,
    device_type_expression,
    dotted,
    forget_import,
    is_reference_site,
    keyword_arg,
    root_name,
    scope_of,
    split_args,
    string_value,
    torch_name_or_import,
    with_commas,
)

# The registry entries this rule ports (issue 13: the registry is the one list of names), sorted by
# what they are: the CUDA-only torch.cuda.amp API, and the device-generic API whose default device is CUDA.
_AMP = sorted(a.name for a in entries() if a.rule == "amp" and a.status is Status.REWRITTEN)
HANDLES = tuple(_AMP)


def _last(name: str) -> str:
    return name.rpartition(".")[2]


def _cuda(name: str) -> bool:
    return is_cuda_namespace(name)


AUTOCAST = {n for n in _AMP if _cuda(n) and _last(n) == "autocast"}
GRAD_SCALER = {n for n in _AMP if _cuda(n) and _last(n) == "GradScaler"}
CUSTOM_FN = {n: _last(n) for n in _AMP if _cuda(n) and _last(n) in ("custom_fwd", "custom_bwd")}
AMP_NAMES = AUTOCAST | GRAD_SCALER | set(CUSTOM_FN)
# torch.amp.GradScaler(device="cuda", ...): the device-generic class, whose default device is CUDA.
GENERIC_GRAD_SCALER = {n for n in _AMP if not _cuda(n) and _last(n) == "GradScaler"}
# The device-generic autocast (its first argument is a device type).
GENERIC_AUTOCAST = {n for n in _AMP if not _cuda(n) and _last(n) == "autocast"}
# Findings are filed under the registry entry that was used (each name here is one).
API_NAME = {n: n for n in AMP_NAMES}
AUTOCAST_PARAMS = ("enabled", "dtype", "cache_enabled")


# ---- the rule ------------------------------------------------------------------------------------

class Amp(Rule):
    name = "amp"
    VALID = (
        "def autocast(enabled=True):\n    pass\nwith autocast(True):\n    pass\n",
        "import torch\nwith torch.autocast('cpu'):\n    pass\n",
        "import torch\nscaler = torch.amp.GradScaler('cpu')\n",
        "from mylib import custom_fwd\n@custom_fwd\ndef f(x):\n    return x\n",
    )
    INVALID = (
        # The submodule spellings of the same APIs.
        Example(
            'import torch\n'
            'from torch.cuda.amp.autocast_mode import autocast, custom_fwd, custom_bwd\n'
            'from torch.cuda.amp.grad_scaler import GradScaler\n'
            'scaler = GradScaler()\n'
            '@custom_fwd\n'
            'def f(ctx, x):\n'
            '    with autocast():\n'
            '        return x\n'
            '@custom_bwd\n'
            'def b(ctx, g):\n'
            '    return g\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'scaler = torch.amp.GradScaler(runtime_shim.device_type())\n'
            '@torch.amp.custom_fwd(device_type=runtime_shim.device_type())\n'
            'def f(ctx, x):\n'
            '    with torch.autocast(runtime_shim.device_type()):\n'
            '        return x\n'
            '@torch.amp.custom_bwd(device_type=runtime_shim.device_type())\n'
            'def b(ctx, g):\n'
            '    return g\n',
            ('TDM108', 'TDM108', 'TDM108', 'TDM108'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'scaler = torch.amp.GradScaler(device.type)\n'
                  '@torch.amp.custom_fwd(device_type=device.type)\n'
                  'def f(ctx, x):\n'
                  '    with torch.autocast(device.type):\n'
                  '        return x\n'
                  '@torch.amp.custom_bwd(device_type=device.type)\n'
                  'def b(ctx, g):\n'
                  '    return g\n',
        ),
        # torch.amp's GradScaler defaults to 'cuda'; an alias of the generic autocast called with 'cuda'.
        Example(
            'import torch\n'
            'from torch.amp.grad_scaler import GradScaler\n'
            'scaler = GradScaler()\n'
            'ac = torch.amp.autocast\n'
            "with ac('cuda'):\n"
            '    pass\n',
            'import torch\n'
            'from torch.amp.grad_scaler import GradScaler\n'
            'import runtime_shim\n'
            '\n'
            'scaler = GradScaler(runtime_shim.device_type())\n'
            'ac = torch.amp.autocast\n'
            "with ac(runtime_shim.device_type('cuda')):\n"
            '    pass\n',
            ('TDM101', 'TDM108'),
            torch='import torch\n'
                  'from torch.amp.grad_scaler import GradScaler\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'scaler = GradScaler(device.type)\n'
                  'ac = torch.amp.autocast\n'
                  'with ac(device.type):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            'with torch.cuda.amp.autocast():\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'with torch.autocast(runtime_shim.device_type()):\n'
            '    pass\n',
            ('TDM108',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'with torch.autocast(device.type):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            'scaler = torch.amp.GradScaler(enabled=True)\n'
            "other = torch.amp.GradScaler('cpu')\n"
            'with torch.cuda.amp.autocast():\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'scaler = torch.amp.GradScaler(runtime_shim.device_type(), enabled=True)\n'
            "other = torch.amp.GradScaler('cpu')\n"
            'with torch.autocast(runtime_shim.device_type()):\n'
            '    pass\n',
            ('TDM108', 'TDM108'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'scaler = torch.amp.GradScaler(device.type, enabled=True)\n'
                  "other = torch.amp.GradScaler('cpu')\n"
                  'with torch.autocast(device.type):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            'with torch.cuda.amp.autocast(True, torch.bfloat16):\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'with torch.autocast(runtime_shim.device_type(), enabled=True, dtype=torch.bfloat16):\n'
            '    pass\n',
            ('TDM108',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'with torch.autocast(device.type, enabled=True, dtype=torch.bfloat16):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            'from torch.cuda.amp import autocast, GradScaler\n'
            'scaler = GradScaler(enabled=use_amp)\n'
            'with autocast(dtype=torch.float16):\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'scaler = torch.amp.GradScaler(runtime_shim.device_type(), enabled=use_amp)\n'
            'with torch.autocast(runtime_shim.device_type(), dtype=torch.float16):\n'
            '    pass\n',
            ('TDM108', 'TDM108'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'scaler = torch.amp.GradScaler(device.type, enabled=use_amp)\n'
                  'with torch.autocast(device.type, dtype=torch.float16):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            'from torch.cuda import amp\n'
            'with amp.autocast(enabled=False):\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'with torch.autocast(runtime_shim.device_type(), enabled=False):\n'
            '    pass\n',
            ('TDM108',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'with torch.autocast(device.type, enabled=False):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            '@torch.cuda.amp.custom_fwd(cast_inputs=torch.float32)\n'
            'def forward(ctx, x):\n'
            '    return x\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            '@torch.amp.custom_fwd(device_type=runtime_shim.device_type(), cast_inputs=torch.float32)\n'
            'def forward(ctx, x):\n'
            '    return x\n',
            ('TDM108',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  '@torch.amp.custom_fwd(device_type=device.type, cast_inputs=torch.float32)\n'
                  'def forward(ctx, x):\n'
                  '    return x\n',
        ),
        Example(
            'import torch\n'
            '@torch.cuda.amp.custom_bwd\n'
            'def backward(ctx, g):\n'
            '    return g\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            '@torch.amp.custom_bwd(device_type=runtime_shim.device_type())\n'
            'def backward(ctx, g):\n'
            '    return g\n',
            ('TDM108',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  '@torch.amp.custom_bwd(device_type=device.type)\n'
                  'def backward(ctx, g):\n'
                  '    return g\n',
        ),
        Example(
            'from torch import autocast\n'
            'precision_scope = autocast\n'
            "with precision_scope('cuda'):\n"
            '    pass\n',
            'from torch import autocast\n'
            'import runtime_shim\n'
            '\n'
            'precision_scope = autocast\n'
            "with precision_scope(runtime_shim.device_type('cuda')):\n"
            '    pass\n',
            ('TDM101',),
            torch='from torch import autocast\n'
                  'import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'precision_scope = autocast\n'
                  'with precision_scope(device.type):\n'
                  '    pass\n',
        ),
    )

    @staticmethod
    def _device_type(ctx: RuleContext, original: cst.CSTNode, api: str, given: Optional[cst.BaseExpression] = None):
        """The chosen device type: ``runtime_shim.device_type(given)``, or under ``--target torch``
        ``{device_type}`` (``ctx.port(api)`` says the spelling, e.g. ``torch.autocast({device_type}, ...)``)."""
        ctx.port(api)  # every replacement goes through the target table (raises for a missing cell)
        if ctx.target == "torch":
            return device_type_expression(ctx, original)
        return ctx.shim_call("device_type", *([given] if given is not None else []))

    # -- calls: autocast(...), GradScaler(...), custom_fwd(...), aliases of torch.autocast ----------
    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        if ctx.is_shim_ref(original.func):
            return None
        qual = ctx.qualname(original.func)
        if qual in AMP_NAMES:
            return self._amp_call(ctx, original, updated, qual)
        if qual in GENERIC_GRAD_SCALER:
            return self._generic_scaler(ctx, original, updated)
        if isinstance(original.func, cst.Name) and qual not in GENERIC_AUTOCAST:
            alias_of = self._generic_autocast_alias(ctx, original.func)
            if alias_of is not None:
                return self._alias_call(ctx, original, updated, alias_of)
        return None

    def _generic_scaler(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        """``torch.amp.GradScaler()`` defaults its device to ``'cuda'``: name the chosen device type."""
        if any(a.star or a.keyword is None or a.keyword.value == "device" for a in original.args):
            return None  # a device is given (positionally or by keyword), or hidden in *args/**kwargs
        api = ctx.qualname(original.func) or sorted(GENERIC_GRAD_SCALER)[0]
        args = [cst.Arg(self._device_type(ctx, original, api))] + list(updated.args)
        return ctx.rewrite(original, updated.with_changes(args=with_commas(args)), api, "TDM108",
                           "torch.amp.GradScaler() defaults to 'cuda'; it now names the chosen device type.")

    def _new_func(self, ctx: RuleContext, original: cst.CSTNode, ref: cst.CSTNode, qual: str) -> Optional[cst.BaseExpression]:
        th = torch_name_or_import(ctx, original, ref)
        if th is None:
            ctx.report(original, API_NAME[qual], FindingStatus.REVIEW, REVIEW_CODE,
                       "torch.cuda.amp is used where the name `torch` means something else, so torch.amp cannot be written here.",
                       "Port this call by hand.")
            return None
        if qual in AUTOCAST:
            return dotted(th, "autocast")
        if qual in GRAD_SCALER:
            return dotted(th, "amp", "GradScaler")
        return dotted(th, "amp", CUSTOM_FN[qual])

    def _record(self, ctx: RuleContext, original: cst.CSTNode, ref: cst.BaseExpression, new_func: cst.BaseExpression, qual: str) -> bool:
        if ctx.rewrite(ref, new_func, API_NAME[qual], "TDM108") is None:
            return False
        root = root_name(ref)
        if isinstance(ref, cst.Name) or (isinstance(ref, cst.Attribute) and (root is None or ctx.qualname(root) != "torch")):
            forget_import(ctx, ref, qual)
        return True

    def _amp_call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call, qual: str):
        shape = split_args(updated)
        if shape is None:
            ctx.report(original, API_NAME[qual], FindingStatus.REVIEW, REVIEW_CODE,
                       "`*args`/`**kwargs` hide which torch.cuda.amp arguments are passed.", "Port this call by hand.")
            return None
        positional, keywords = shape
        if qual in AUTOCAST and len(positional) > len(AUTOCAST_PARAMS):
            return None
        new_func = self._new_func(ctx, original, original.func, qual)
        if new_func is None:
            return None
        device = self._device_type(ctx, original, qual)
        if qual in AUTOCAST:
            args = [cst.Arg(device)] + [keyword_arg(AUTOCAST_PARAMS[i], a.value, a) for i, a in enumerate(positional)]
            args += [a for a in updated.args if a.keyword is not None]
        elif qual in GRAD_SCALER:
            args = [cst.Arg(device)] + list(updated.args)
        else:  # custom_fwd / custom_bwd: (fn=None, *, cast_inputs=None) -> (fn=None, *, device_type, cast_inputs=None)
            args = list(positional) + [keyword_arg("device_type", device)] + [a for a in updated.args if a.keyword is not None]
        if not self._record(ctx, original, original.func, new_func, qual):
            return None
        return updated.with_changes(func=new_func, args=with_commas(args))

    # -- bare decorators: @torch.cuda.amp.custom_fwd ------------------------------------------------
    def leave_Decorator(self, ctx: RuleContext, original: cst.Decorator, updated: cst.Decorator):
        ref = original.decorator
        if not isinstance(ref, (cst.Name, cst.Attribute)):
            return None
        qual = ctx.qualname(ref)
        if qual not in CUSTOM_FN:
            return None
        new_func = self._new_func(ctx, original, ref, qual)
        if new_func is None or not self._record(ctx, original, ref, new_func, qual):
            return None
        call = cst.Call(new_func, [keyword_arg("device_type", self._device_type(ctx, original, qual))])
        return updated.with_changes(decorator=call)

    # -- references used as values -------------------------------------------------------------------
    def _leave_ref(self, ctx: RuleContext, original, updated):
        qual = ctx.qualname(original)
        if qual not in AMP_NAMES or not is_reference_site(ctx, original):
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Call) and parent.func is original:
            return None
        if isinstance(parent, cst.Decorator) and qual in CUSTOM_FN:
            return None
        ctx.report(original, API_NAME[qual], FindingStatus.REVIEW, REVIEW_CODE)
        return None

    leave_Name = _leave_ref
    leave_Attribute = _leave_ref

    # -- precision_scope = autocast; precision_scope('cuda') -------------------------------------------
    def _generic_autocast_alias(self, ctx: RuleContext, func: cst.Name) -> Optional[str]:
        """The registry name of the device-generic autocast when every assignment of ``func``'s name in
        its scope is ``name = <torch.autocast>`` (or a conditional expression with it as a branch), else None."""
        scope = scope_of(ctx, func)
        if scope is None:
            return None
        assignments = scope[func.value]
        if not assignments:
            return None
        found = None
        for a in assignments:
            target = getattr(a, "node", None)
            assign_target = ctx.parent(target) if target is not None else None
            assign = ctx.parent(assign_target) if assign_target is not None else None
            if not (isinstance(assign_target, cst.AssignTarget) and isinstance(assign, cst.Assign)
                    and assign_target.target is target):
                return None
            value = assign.value
            branches = [value.body, value.orelse] if isinstance(value, cst.IfExp) else [value]
            names = [ctx.qualname(b) for b in branches if isinstance(b, (cst.Name, cst.Attribute))]
            found = next((n for n in names if n in GENERIC_AUTOCAST), None)
            if found is None:
                return None
        return found

    def _alias_call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call, api: str):
        if not original.args or original.args[0].keyword is not None or original.args[0].star:
            return None
        if string_value(original.args[0].value) != "cuda":
            return None
        new_value = self._device_type(ctx, original.args[0].value, api, updated.args[0].value)
        if ctx.rewrite(original.args[0].value, new_value, api, "TDM101") is None:
            return None
        return updated.with_changes(args=[updated.args[0].with_changes(value=new_value)] + list(updated.args[1:]))
