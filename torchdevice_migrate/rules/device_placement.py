"""``.cuda()`` on tensors and modules, and ``torch.device(...)`` of a CUDA device.

* The receiver decides how ``x.cuda(...)`` is ported:

  - a receiver proven to be a torch module whose ``cuda``/``to`` are torch's own (``nn.Linear(...)``,
    an instance of a project ``nn.Module`` subclass that overrides neither, in any file of the
    project, or ``super()`` in a class whose bases are such modules) -> ``x.to(device=runtime_shim.device(...))``:
    ``Module.cuda(d)`` and ``Module.to(device=d)`` both move every parameter and buffer in place,
    so nothing changes on CUDA, and a module move never aliased anything;
  - any other receiver (a tensor, a batch container, an EMA helper, a module that overrides
    ``cuda``, anything unknown) -> ``runtime_shim.to_device(x, ...)`` with the original arguments:
    on CUDA exactly ``x.cuda(...)`` (the user's own ``cuda()`` runs), elsewhere a tensor move that
    never aliases its source (``.cuda()`` of a CPU tensor always copied; ``.to()`` would not).
    A project class whose ``to(self, dev)`` takes the device positionally is never called with
    ``device=``: only proven torch modules get ``.to(device=...)``.
  - ``torch.Tensor.cuda`` as a value (``map(torch.Tensor.cuda, batch)``) -> ``runtime_shim.to_device``;
    ``torch.Tensor.cuda(x, ...)`` -> ``runtime_shim.to_device(x, ...)``.
  - Inside TorchScript (see ``base.in_torchscript``) nothing is rewritten into a shim call: the
    site stays and is reported (TDM214).
* ``torch.device('cuda')`` -> ``runtime_shim.device()``; ``torch.device('cuda:1')``,
  ``torch.device('cuda', i)`` and ``torch.device(f'cuda:{r}')`` keep their arguments.
* ``torch.device('cuda' if torch.cuda.is_available() else 'cpu')`` and
  ``torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')`` -> ``runtime_shim.device()``.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from ..findings import FindingStatus
from ..project_index import project_of
from ..registry import entries, handled_by
from ..targets import DEVICE_VALUE, pending_binding
from .base import (
    Example,
    Rule,
    RuleContext,
    assigned_values,
    availability_idiom,
    device_chooser,
    device_expression,
    device_kind_for_name,
    device_type_expression,
    free_quote,
    in_torchscript,
    is_available_test,
    is_cpu_string,
    is_cuda_device_string,
    is_reference_site,
    keyword_arg,
    shim_args_for,
    string_value,
    target_name,
    torch_expression,
)

#: Registry entries this rule ports (issue 13: the registry names what a rule handles).
HANDLES = handled_by("device_placement")
TENSOR_CUDA = next(n for n in HANDLES if n.endswith("Tensor.cuda"))  # ``.cuda()`` of a tensor or an unknown object
MODULE_CUDA = next(n for n in HANDLES if n.endswith("Module.cuda"))  # ``.cuda()`` of a proven torch module
DEVICE_API = next(n for n in HANDLES if n.endswith(".device"))  # ``torch.device``
#: Code of a site left in place under ``--target torch`` (no exact torch spelling there).
KEPT_CODE = "TDM307"
_DV = f"device = {DEVICE_VALUE}\n"  # the torch target's device value, as the examples show it


def _is_torch_device_call(ctx: RuleContext, node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Call) and ctx.qualname(node.func) == DEVICE_API


def _first_arg(call: cst.Call) -> Optional[cst.Arg]:
    for a in call.args:
        if not a.star and (a.keyword is None or a.keyword.value == "type"):
            return a
    return None


class DevicePlacement(Rule):
    name = "device-placement"
    VALID = (
        "x = torch.device('cpu')\n",
        "device = torch.device(args.device)\n",
        "x = y.to(device)\n",
        "s = stream.cuda_stream\n",
        "sd = torch.load(f, map_location=lambda storage, loc: storage)\n",
        "ok = self.cuda_config\n",
    )
    INVALID = (
        # Receivers not proven to be torch modules (tensors, unknown objects): runtime_shim.to_device; with
        # --target torch, ``x.to(device)`` (``cuda(i)``: the index on the chosen device type).
        Example("model = model.cuda()\n", "import runtime_shim\n\nmodel = runtime_shim.to_device(model)\n", ("TDM101",),
                torch="import torch\n\n" + _DV + "\nmodel = model.to(device)\n"),
        Example("x = x.cuda(non_blocking=True)\n", "import runtime_shim\n\nx = runtime_shim.to_device(x, non_blocking=True)\n",
                ("TDM101",), torch="import torch\n\n" + _DV + "\nx = x.to(device, non_blocking=True)\n"),
        Example("x = x.cuda(rank)\n", "import runtime_shim\n\nx = runtime_shim.to_device(x, rank)\n", ("TDM101",),
                torch="import torch\n\n" + _DV + "\nx = x.to(torch.device(device.type, rank))\n"),
        Example("import torch\ny = torch.zeros(3).cuda(device=args.gpu)\n",
                "import torch\nimport runtime_shim\n\ny = runtime_shim.to_device(torch.zeros(3), device=args.gpu)\n", ("TDM101",),
                torch="import torch\n\n" + _DV + "\ny = torch.zeros(3).to(torch.device(device.type, args.gpu))\n"),
        Example("sd = torch.load(f, map_location=lambda s, loc: s.cuda())\n",
                "import runtime_shim\n\nsd = torch.load(f, map_location=lambda s, loc: runtime_shim.to_device(s))\n", ("TDM101",),
                torch="import torch\n\n" + _DV + "\nsd = torch.load(f, map_location=lambda s, loc: s.to(device=device))\n"),
        # The unbound method as a value: torch has no spelling for it (left and reported under --target torch).
        Example("import torch\nys = list(map(torch.Tensor.cuda, xs))\n",
                "import torch\nimport runtime_shim\n\nys = list(map(runtime_shim.to_device, xs))\n", ("TDM101",),
                torch="import torch\nys = list(map(torch.Tensor.cuda, xs))\n", torch_codes=("TDM307",)),
        Example("import torch\nys = torch.Tensor.cuda(x, 1)\n",
                "import torch\nimport runtime_shim\n\nys = runtime_shim.to_device(x, 1)\n", ("TDM101",),
                torch="import torch\n\n" + _DV + "\nys = x.to(torch.device(device.type, 1))\n"),
        # Proven torch modules (torch.nn classes, project nn.Module subclasses without cuda/to overrides)
        Example("import torch.nn as nn\nclass Net(nn.Module):\n    pass\nnet = Net()\nnet = net.cuda(0)\nhead = nn.Linear(2, 3).cuda()\n",
                "import torch.nn as nn\nimport runtime_shim\n\nclass Net(nn.Module):\n    pass\nnet = Net()\n"
                "net = net.to(device=runtime_shim.device(0))\nhead = nn.Linear(2, 3).to(device=runtime_shim.device())\n",
                ("TDM101", "TDM101"),
                torch="import torch.nn as nn\nimport torch\n\n" + _DV + "\nclass Net(nn.Module):\n    pass\nnet = Net()\n"
                      "net = net.to(torch.device(device.type, 0))\nhead = nn.Linear(2, 3).to(device)\n"),
        # A class with its own cuda(): its call sites keep calling it (on CUDA) through to_device;
        # super().cuda() of an nn.Module is Module.to(device=...). With --target torch every one is left
        # and reported: `to()` may not be the class's `cuda()`, and `cuda(None)` is not `to(None)`.
        Example("import torch.nn as nn\nclass Ema(nn.Module):\n    def cuda(self, device=None):\n"
                "        self.shadow = self.shadow.cuda(device)\n        return super().cuda(device)\nema = Ema().cuda()\n",
                "import torch.nn as nn\nimport runtime_shim\n\nclass Ema(nn.Module):\n    def cuda(self, device=None):\n"
                "        self.shadow = runtime_shim.to_device(self.shadow, device)\n"
                "        return super().to(device=runtime_shim.device(device))\nema = runtime_shim.to_device(Ema())\n",
                ("TDM101", "TDM101", "TDM101"),
                torch="import torch.nn as nn\nclass Ema(nn.Module):\n    def cuda(self, device=None):\n"
                      "        self.shadow = self.shadow.cuda(device)\n        return super().cuda(device)\nema = Ema().cuda()\n",
                torch_codes=("TDM307", "TDM307", "TDM307")),
        # A device string argument names its device (the index read from it).
        Example("x = x.cuda('cuda:1')\ny = y.cuda(device='cuda')\n",
                "import runtime_shim\n\nx = runtime_shim.to_device(x, 'cuda:1')\ny = runtime_shim.to_device(y, device='cuda')\n",
                ("TDM101", "TDM101"),
                torch="import torch\n\n" + _DV + "\nx = x.to(torch.device(device.type, 1))\ny = y.to(device)\n"),
        # ``cuda(torch.cuda.current_device())`` is ``cuda()``: one call, no device of the current device.
        Example("import torch\nimport torch.nn as nn\nm = nn.Linear(2, 2).cuda(torch.cuda.current_device())\n"
                "x = x.cuda(torch.cuda.current_device(), True)\n",
                "import torch\nimport torch.nn as nn\nimport runtime_shim\n\nm = nn.Linear(2, 2).to(device=runtime_shim.device())\n"
                "x = runtime_shim.to_device(x, non_blocking=True)\n", ("TDM101", "TDM101"),
                torch="import torch\nimport torch.nn as nn\n\n" + _DV + "\nm = nn.Linear(2, 2).to(device)\n"
                      "x = x.to(device, non_blocking=True)\n"),
        Example("import torch\nd = torch.device('cuda:1')\n", "import torch\nimport runtime_shim\n\nd = runtime_shim.device('cuda:1')\n",
                ("TDM101",), torch="import torch\n\n" + _DV + "\nd = torch.device(device.type, 1)\n"),
        Example("import torch\nd = torch.device('cuda', i)\n", "import torch\nimport runtime_shim\n\nd = runtime_shim.device('cuda', i)\n",
                ("TDM101",), torch="import torch\n\n" + _DV + "\nd = torch.device(device.type, i)\n"),
        # A str index stays a str in the torch spelling (exact on CUDA whatever ``rank`` is).
        Example("import torch\ndef put(x, rank):\n    return x.to(torch.device(f'cuda:{rank}'))\n",
                "import torch\nimport runtime_shim\n\ndef put(x, rank):\n    return x.to(runtime_shim.device(f'cuda:{rank}'))\n",
                ("TDM101",), torch="import torch\n\n" + _DV + "\ndef put(x, rank):\n"
                                  "    return x.to(torch.device(f\"{device.type}:{rank}\"))\n"),
        # The module's own device variable becomes the device value (other sites reuse it).
        Example("import torch as th\nd = th.device('cuda' if th.cuda.is_available() else 'cpu')\n",
                "import torch as th\nimport runtime_shim\n\nd = runtime_shim.device()\n", ("TDM101",),
                torch="import torch as th\nd = th.accelerator.current_accelerator(check_available=True) or th.device(\"cpu\")\n"),
        Example("import torch\nd = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')\n"
                "def f():\n    return torch.device('cuda')\n",
                "import torch\nimport runtime_shim\n\nd = runtime_shim.device()\ndef f():\n    return runtime_shim.device()\n",
                ("TDM101", "TDM101"),
                torch="import torch\nd = torch.accelerator.current_accelerator(check_available=True) or torch.device(\"cpu\")\n"
                      "def f():\n    return d\n"),
    )

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        func = original.func
        if isinstance(func, cst.Attribute) and func.attr.value == "cuda" and isinstance(updated.func, cst.Attribute):
            return self._dot_cuda(ctx, original, updated)
        if _is_torch_device_call(ctx, original):
            return self._torch_device(ctx, original, updated)
        return None

    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute):
        """``map(torch.Tensor.cuda, batch)``: the unbound method as a value -> ``runtime_shim.to_device``."""
        if original.attr.value != "cuda" or ctx.qualname(original) not in UNBOUND_CUDA:
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Call) and parent.func is original:
            return None  # ``torch.Tensor.cuda(x)``: leave_Call
        if not is_reference_site(ctx, original):
            return None
        if ctx.target == "torch":
            # No torch spelling keeps the unbound method's meaning (a user's own cuda()) as a value.
            ctx.report(original, TENSOR_CUDA, FindingStatus.REVIEW, KEPT_CODE,
                       "`torch.Tensor.cuda` passed as a value: no torch spelling does the same on CUDA and elsewhere.",
                       "Write `lambda t: t.to(device)` with the module's device value, or port with `--target shim`.")
            return None
        new = ctx.shim("to_device").with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, TENSOR_CUDA, "TDM101")

    def _dot_cuda(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        value = original.func.value  # type: ignore[attr-defined,union-attr]
        receiver = ctx.qualname(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
        if receiver is not None and (receiver == "torch" or receiver.startswith("torch.")):
            if ctx.qualname(original.func) in UNBOUND_CUDA and original.args and not original.args[0].star \
                    and original.args[0].keyword is None:
                # ``torch.Tensor.cuda(x, ...)``: ``x.cuda(...)`` spelled through the class.
                api = MODULE_CUDA if "Module" in (ctx.qualname(original.func) or "") else TENSOR_CUDA
                if ctx.target == "torch":
                    return self._torch_to(ctx, original, updated.args[0].value, updated.args[1:], updated, api,
                                          [a.value for a in original.args[1:]])
                new = ctx.shim_call("to_device", *updated.args).with_changes(lpar=updated.lpar, rpar=updated.rpar)
                return ctx.rewrite(original, new, api, "TDM101")
            return None  # torch.cuda itself: not a method call on a value
        original, updated = _without_current_device(ctx, original, updated)
        if len(updated.args) > 2 or any(a.star for a in updated.args):
            return None
        if ctx.target == "torch":
            return self._dot_cuda_torch(ctx, original, updated)
        if not proven_torch_module(ctx, value):
            # A tensor, or a receiver the project does not prove to be a torch module: on CUDA the
            # original call (a user's own ``cuda()`` runs), elsewhere a move that never aliases.
            args = []
            for i, a in enumerate(updated.args):
                key = a.keyword.value if a.keyword else None
                value = a.value
                if ((key == "device" or (key is None and i == 0)) and isinstance(value, cst.Call)
                        and ctx.is_shim_ref(value.func) and value.func.attr.value == "device"  # type: ignore[attr-defined,union-attr]
                        and len(value.args) == 1 and value.args[0].keyword is None and not value.args[0].star):
                    # ``.cuda(device=gpu)``, which another rule made a shim device: to_device takes
                    # what ``cuda()`` took, and on CUDA passes it on unchanged.
                    a = a.with_changes(value=value.args[0].value)
                args.append(a)
            new = receiver_first(ctx, "to_device", updated.func.value, args, updated)  # type: ignore[attr-defined,union-attr]
            return ctx.rewrite(original, new, TENSOR_CUDA, "TDM101")
        # Each argument is changed in place, so its comma and the comments around it stay.
        new_args, has_device = [], False
        for i, a in enumerate(updated.args):
            key = a.keyword.value if a.keyword else None
            if key == "device" or (key is None and i == 0):
                if has_device:
                    return None  # ``.cuda(0, device=1)`` fails in the original; leave it as it is
                value = a.value
                if isinstance(value, cst.Call) and ctx.is_shim_ref(value.func) and value.func.attr.value == "device":  # type: ignore[attr-defined,union-attr]
                    # ``.cuda(device=gpu)``: another rule already made the argument a shim device.
                    device_args = [cst.Arg(v.value, keyword=v.keyword, equal=v.equal) for v in value.args]
                else:
                    device_args = [cst.Arg(value)]
                a = a.with_changes(value=ctx.shim_call("device", *device_args))
                has_device = True
            elif key not in ("non_blocking", None):
                return None
            # ``device=`` as a keyword: tensors and modules accept it, and storages accept nothing else.
            if key is None:
                a = keyword_arg("device" if i == 0 else "non_blocking", a.value, like=a)
            new_args.append(a)
        if not has_device:
            device = keyword_arg("device", ctx.shim_call("device"))
            if new_args:
                device = device.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            new_args.insert(0, device)
        new = updated.with_changes(func=updated.func.with_changes(attr=cst.Name("to")), args=new_args)
        return ctx.rewrite(original, new, MODULE_CUDA, "TDM101")

    def _torch_device(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        first = _first_arg(original)
        if first is None:
            return None
        if ctx.target == "torch":
            return self._torch_device_torch(ctx, original, updated, first)
        if isinstance(first.value, cst.IfExp):
            if len(original.args) != 1:
                return None
            if device_chooser(ctx, first.value):  # cuda/mps/xpu/cpu chooser: the chosen device, one call
                new = ctx.shim_call("device")
            else:
                cuda_branch = availability_idiom(ctx, first.value)
                if cuda_branch is None:
                    return None
                new = ctx.shim_call("device", *shim_args_for(cuda_branch))
        elif is_cuda_device_string(first.value):
            args = list(updated.args)
            if len(args) == 1 and args[0].keyword is None and not _has_index(original):
                args = shim_args_for(args[0].value)
            new = ctx.shim_call("device", *[cst.Arg(a.value, comma=a.comma)
                                            if a.keyword is not None and a.keyword.value == "type" else a for a in args])
        else:
            return None
        return ctx.rewrite(original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), DEVICE_API, "TDM101")

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        """``torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')``."""
        cuda_arg = _device_chooser(ctx, original)
        if cuda_arg is None:
            return None
        if ctx.target == "torch":
            if not _is_plain_cuda_arg(cuda_arg.value):
                return None  # ``torch.device('cuda:1') if ...``: its branch was ported on its own
            return self._torch_rewrite(ctx, original, _device_or_binding(ctx, original).with_changes(
                lpar=updated.lpar, rpar=updated.rpar), DEVICE_API)
        new = ctx.shim_call("device", *shim_args_for(cuda_arg.value))
        return ctx.rewrite(original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), DEVICE_API, "TDM101")


    # ---- --target torch (issue 11): torch's own spelling, the module's one device value ----------
    def _torch_rewrite(self, ctx: RuleContext, original: cst.CSTNode, new: cst.CSTNode, api: str):
        if in_torchscript(ctx, original):
            # The device value is a module global that TorchScript cannot read: left, as under the shim target.
            ctx.report(original, api, FindingStatus.UNSUPPORTED, "TDM214")
            return None
        ctx.port(api)  # the torch column has this entry (KeyError otherwise: a test keeps targets.py complete)
        return ctx.rewrite(original, new, api, "TDM101")

    def _dot_cuda_torch(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        """``x.cuda(...)`` -> ``x.to({device})`` / ``x.to(torch.device({device_type}, i))``: what experts
        write. A receiver the project does not prove to be a torch module or tensor is left and
        reported when some project class defines its own ``cuda`` (its ``to`` may not be the same)."""
        receiver = original.func.value  # type: ignore[attr-defined,union-attr]
        if proven_torch_module(ctx, receiver):
            return self._torch_to(ctx, original, updated.func.value, updated.args, updated, MODULE_CUDA,  # type: ignore[attr-defined,union-attr]
                                  _sources(original, updated))
        if not _proven_tensor(ctx, receiver):
            spelling = ctx.port(TENSOR_CUDA, "unknown_receiver")
            if project_of(ctx).defines_anywhere("cuda"):
                ctx.report(original, TENSOR_CUDA, FindingStatus.REVIEW, KEPT_CODE,
                           "`.cuda()` on an object that may be an instance of a project class with its own `cuda()`.",
                           spelling.note)
                return None
        return self._torch_to(ctx, original, updated.func.value, updated.args, updated,  # type: ignore[attr-defined,union-attr]
                              sources=_sources(original, updated))

    def _torch_to(self, ctx: RuleContext, original: cst.Call, receiver: cst.BaseExpression, args, updated: cst.Call,
                  api: str = TENSOR_CUDA, sources: Optional[list] = None):
        """``receiver.to(<device>, non_blocking=..., ...)`` from the arguments of ``cuda(...)``; each argument
        is changed in place, so its comma and the comments around it stay."""
        storage = _maybe_storage(ctx, original, receiver)
        out = []
        has_device = False
        for i, a in enumerate(args):
            key = a.keyword.value if a.keyword else None
            if key == "device" or (key is None and i == 0):
                if has_device:
                    return None  # ``.cuda(0, device=1)`` fails in the original; leave it as it is
                if _may_be_none(ctx, original, a.value):
                    # ``def cuda(self, device=None): ... x.cuda(device)``: cuda(None) is the current device,
                    # to(None) is no move at all; no one torch spelling takes an index, a device and None.
                    ctx.report(original, api, FindingStatus.REVIEW, KEPT_CODE,
                               "`.cuda(d)` where `d` may be None (the current device) or a device or an index.",
                               "Port it by hand (`x.to(d if d is not None else device)`), or with `--target shim`.")
                    return None
                device = _torch_device_of_index(ctx, original, a.value,
                                                sources[i] if sources is not None and i < len(sources) else None)
                if device is None:
                    return None  # a device string whose index cannot be read: left (listed for review)
                has_device = True
                # a storage's ``to()`` takes the device by keyword only
                if key is None and storage:
                    a = keyword_arg("device", device, like=a)
                elif i == 0 and not storage:  # ``.cuda(device=d)`` -> ``.to(d)``, what experts write
                    a = a.with_changes(value=device, keyword=None, equal=cst.MaybeSentinel.DEFAULT)
                else:
                    a = a.with_changes(value=device)
                out.append(a)
                continue
            if key is None:  # the second positional argument of cuda() is non_blocking
                a = keyword_arg("non_blocking", a.value, like=a)
            out.append(a)
        if not has_device:
            device = device_expression(ctx, original)
            first = keyword_arg("device", device) if storage else cst.Arg(device)
            if out:
                first = first.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            out.insert(0, first)
        if isinstance(receiver, (cst.Lambda, cst.IfExp, cst.BinaryOperation, cst.BooleanOperation, cst.UnaryOperation,
                                 cst.Comparison, cst.NamedExpr, cst.Await)) and not receiver.lpar:
            receiver = receiver.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        new = updated.with_changes(func=cst.Attribute(receiver, cst.Name("to")), args=out)
        return self._torch_rewrite(ctx, original, new, api)

    def _torch_device_torch(self, ctx: RuleContext, original: cst.Call, updated: cst.Call, first: cst.Arg):
        """``torch.device('cuda')`` (or the availability idiom) -> ``{device}``; ``torch.device('cuda', i)``
        -> ``torch.device({device_type}, i)``; ``torch.device('cuda:1')`` -> ``torch.device({device_type}, 1)``;
        ``torch.device(f'cuda:{r}')`` -> ``torch.device(f"{{device_type}}:{r}")`` (a str index stays a str)."""
        value = first.value
        if isinstance(value, cst.IfExp):
            if len(original.args) != 1:
                return None
            cuda_branch = availability_idiom(ctx, value)
            if not device_chooser(ctx, value) and (cuda_branch is None or not _is_plain_cuda_arg(cuda_branch)):
                return None
            new: cst.BaseExpression = _device_or_binding(ctx, original)
        elif not is_cuda_device_string(value):
            return None
        elif len(original.args) == 1 and _is_plain_cuda_arg(value):
            chooser = _device_chooser(ctx, ctx.parent(original))  # type: ignore[arg-type]
            if chooser is not None and chooser.value is value:
                return None  # the branch of ``torch.device('cuda') if ... else torch.device('cpu')``: one expression
            new = _device_or_binding(ctx, original)
        elif len(original.args) > 1:
            if not _is_plain_cuda_arg(value):
                return None
            args = [a.with_changes(value=device_type_expression(ctx, original)) if a is _first_arg(updated) else a
                    for a in updated.args]
            new = updated.with_changes(args=args)
        else:
            indexed = _indexed_device(ctx, original, value)
            if indexed is None:
                return None
            new = indexed
        return self._torch_rewrite(ctx, original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), DEVICE_API)


#: ``torch.Tensor.cuda`` and ``torch.nn.Module.cuda`` (registry), and Module.cuda under its defining module.
UNBOUND_CUDA = {n for n in HANDLES if n.endswith(".cuda")} | {"torch.nn.modules.module.Module.cuda"}
# torch.nn classes whose instances are tensors, or not modules.
_NOT_MODULES = {"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"}
# Methods of a module that return the module itself.
_RETURNS_SELF = {"cuda", "to", "cpu", "train", "eval", "float", "half", "double", "bfloat16", "requires_grad_",
                 "apply", "share_memory", "to_empty", "type"}


def proven_torch_module(ctx: RuleContext, node: cst.CSTNode, _depth: int = 0) -> bool:
    """Whether ``node`` is, by syntax and the project index, a ``torch.nn.Module`` whose ``cuda``
    and ``to`` are torch's own, so that ``m.cuda(d)`` and ``m.to(device=d)`` do the same, in place:
    a torch module constructor (``nn.Linear(...)``, ``nn.DataParallel(m)``), a project class that
    derives from ``nn.Module`` and overrides none of ``cuda``/``to``/``cpu`` (in any file of the
    project), ``super()`` in such a class, or a name bound only to such values (``model = Net()``;
    ``model = model.cuda()`` keeps what it was)."""
    if isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
        func = node.func
        if isinstance(func, cst.Name) and func.value == "super" and not node.args:
            return _super_is_plain_module(ctx, node)
        q = ctx.qualname(func) or ""
        parts = q.split(".")
        last = parts[-1]
        if q.startswith("torch."):
            return (len(parts) >= 3 and parts[1] == "nn" and last[:1].isupper() and last not in _NOT_MODULES
                    and (len(parts) == 3 or parts[2] in ("modules", "parallel")))
        name = func.value if isinstance(func, cst.Name) else func.attr.value
        return project_of(ctx).is_plain_module_class(name)
    if isinstance(node, cst.Name) and _depth == 0:
        values = assigned_values(ctx, node)
        if values is None:
            return False
        proven = False
        for value in values:
            if (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in _RETURNS_SELF
                    and isinstance(value.func.value, cst.Name) and value.func.value.value == node.value):
                continue  # ``model = model.cuda()``: the same module
            if not proven_torch_module(ctx, value, _depth + 1):
                return False
            proven = True
        return proven
    return False


def _super_is_plain_module(ctx: RuleContext, call: cst.Call) -> bool:
    """``super()`` inside a class whose bases are all torch modules or plain project modules: its
    ``cuda``/``to`` are ``torch.nn.Module``'s, and ``Module.cuda(d)`` is ``Module.to(device=d)``
    (both ``_apply`` a move to every parameter and buffer, in place), whatever the class itself
    overrides."""
    current = ctx.parent(call)
    while current is not None and not isinstance(current, cst.ClassDef):
        current = ctx.parent(current)
    if current is None or not current.bases:
        return False
    project = project_of(ctx)
    for base in current.bases:
        if base.keyword is not None or not isinstance(base.value, (cst.Name, cst.Attribute)):
            return False
        q = ctx.qualname(base.value) or ""
        if q in ("torch.nn.Module", "torch.nn.modules.module.Module"):
            continue
        parts = q.split(".")
        if q.startswith("torch.nn.") and len(parts) == 3 and parts[2][:1].isupper() and parts[2] not in _NOT_MODULES:
            continue
        name = base.value.value if isinstance(base.value, cst.Name) else base.value.attr.value
        if not project.is_plain_module_class(name):
            return False
    return True


def receiver_first(ctx: RuleContext, name: str, receiver: cst.BaseExpression, args, like: cst.Call) -> cst.Call:
    """``runtime_shim.<name>(receiver, *args)`` in the layout of the call ``like``: the receiver
    (without its now needless parentheses) is the first argument, on its own line when the
    arguments were one per line; comments stay with their arguments."""
    if len(receiver.lpar) == 1 and len(receiver.rpar) == 1 and not isinstance(receiver, (cst.Tuple, cst.GeneratorExp)):
        receiver = receiver.with_changes(lpar=(), rpar=())
    first = cst.Arg(receiver)
    if args:
        before = like.whitespace_before_args
        after = before if isinstance(before, cst.ParenthesizedWhitespace) else cst.SimpleWhitespace(" ")
        first = first.with_changes(comma=cst.Comma(whitespace_after=after))
    return cst.Call(ctx.shim(name), [first, *args], whitespace_before_args=like.whitespace_before_args,
                    lpar=like.lpar, rpar=like.rpar)


def _has_index(call: cst.Call) -> bool:
    return len(call.args) > 1


# ---- --target torch helpers -------------------------------------------------------------------


def _device_chooser(ctx: RuleContext, node: cst.CSTNode) -> Optional[cst.Arg]:
    """For ``torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')`` (either
    polarity, any CUDA device string), the CUDA branch's argument; None for anything else."""
    if not isinstance(node, cst.IfExp):
        return None
    polarity = is_available_test(ctx, node.test)
    if polarity is None:
        return None
    cuda_branch, cpu_branch = (node.body, node.orelse) if polarity else (node.orelse, node.body)
    if not (_is_torch_device_call(ctx, cuda_branch) and _is_torch_device_call(ctx, cpu_branch)):
        return None
    cuda_arg, cpu_arg = _first_arg(cuda_branch), _first_arg(cpu_branch)  # type: ignore[arg-type]
    if (cuda_arg is None or cpu_arg is None or len(cuda_branch.args) != 1 or len(cpu_branch.args) != 1  # type: ignore[attr-defined,union-attr]
            or not is_cuda_device_string(cuda_arg.value) or not is_cpu_string(cpu_arg.value)):
        return None
    return cuda_arg


def _is_plain_cuda_arg(node: cst.CSTNode) -> bool:
    return string_value(node) == "cuda"


def _device_or_binding(ctx: RuleContext, original: cst.CSTNode) -> cst.BaseExpression:
    """``{device}`` for ``original``; when ``original`` is the whole value of a module-level
    ``name = ...`` (bound once), the device value itself (``name = torch.accelerator...``), so that
    the module's own variable is the device value other sites reuse (``targets.device_value``), unless
    an earlier site already scheduled the module's binding (then that name: one binding per file)."""
    parent = ctx.parent(original)
    line = ctx.parent(parent) if isinstance(parent, cst.Assign) else None
    if (pending_binding(ctx) is None and isinstance(parent, cst.Assign) and parent.value is original
            and len(parent.targets) == 1
            and isinstance(parent.targets[0].target, cst.Name) and isinstance(line, cst.SimpleStatementLine)
            and ctx.parent(line) is ctx.module):
        return torch_expression(ctx, DEVICE_VALUE)
    return device_expression(ctx, original)


def _index_of(node: cst.CSTNode) -> Optional[cst.BaseExpression]:
    """The index of an indexed CUDA device string: ``1`` for ``'cuda:1'``, ``r`` for ``f'cuda:{r}'``,
    ``'cuda:%d' % r`` or ``'cuda:{}'.format(r)``, ``str(r)``'s ``r`` for ``'cuda:' + str(r)``."""
    value = string_value(node)
    if value is not None:
        return cst.Integer(value.split(":", 1)[1]) if ":" in value else None
    if isinstance(node, cst.FormattedString) and len(node.parts) == 2:
        part = node.parts[1]
        if isinstance(part, cst.FormattedStringExpression) and part.conversion is None and part.format_spec is None:
            return part.expression
        return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
        return None if isinstance(node.right, cst.Tuple) else node.right
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        right = node.right
        if (isinstance(right, cst.Call) and isinstance(right.func, cst.Name) and right.func.value == "str"
                and len(right.args) == 1 and right.args[0].keyword is None and not right.args[0].star):
            return right.args[0].value
        return right
    if isinstance(node, cst.Call) and len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
        return node.args[0].value  # ``'cuda:{}'.format(r)``
    return None


def _indexed_device(ctx: RuleContext, at: cst.CSTNode, value: cst.CSTNode) -> Optional[cst.Call]:
    """``torch.device({device_type}, N)`` for ``'cuda:N'`` / ``'cuda:%d' % i``, ``torch.device(f"{{device_type}}:{r}")``
    for ``f'cuda:{r}'`` and the like (a str index stays a str); None when the index cannot be read."""
    index = _index_of(value)
    if index is None:
        return None
    device = torch_expression(ctx, "torch.device")
    if isinstance(index, cst.Integer) or _percent_d(value):
        return cst.Call(device, [cst.Arg(device_type_expression(ctx, at),
                                         comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(index)])
    fstring = _typed_fstring(ctx, at, index)
    return None if fstring is None else cst.Call(device, [cst.Arg(fstring)])


def _percent_d(node: cst.CSTNode) -> bool:
    """``'cuda:%d' % r`` / ``'cuda:%i' % r``: ``r`` is a number."""
    return (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)
            and string_value(node.left) in ("cuda:%d", "cuda:%i"))


def _typed_fstring(ctx: RuleContext, original: cst.CSTNode, index: cst.BaseExpression) -> Optional[cst.FormattedString]:
    """``f"{device.type}:{index}"`` (a str index stays a str, as in the original)."""
    code = ctx.module.code_for_node(index)
    outer = free_quote(ctx, original)
    quote = next((q for q in ('"', "'") if q not in code and (outer is None or q == outer)), None)
    if quote is None or "\\" in code or "{" in code:
        return None
    return cst.FormattedString(
        parts=[cst.FormattedStringExpression(device_type_expression(ctx, original)), cst.FormattedStringText(":"),
               cst.FormattedStringExpression(index.with_changes(lpar=[], rpar=[]) if isinstance(index, (cst.Name, cst.Attribute)) else index)],
        start=f"f{quote}", end=quote)  # type: ignore[arg-type]


def _torch_device_of_index(ctx: RuleContext, original: cst.Call, value: cst.BaseExpression,
                           source: Optional[cst.BaseExpression] = None) -> Optional[cst.BaseExpression]:
    """The ``to()`` argument for ``cuda(value)``: ``{device}`` for ``None``; ``value`` itself when it
    reads as a device (``self.device``, a value another rule already ported); otherwise an index:
    ``torch.device({device_type}, value)`` (``cuda(i)`` means ``cuda:i``, exact on CUDA)."""
    if source is not None and is_cuda_device_string(source):
        # ``.cuda('cuda')``, ``.cuda('cuda:1')``, ``.cuda(f'cuda:{r}')``: the device that string names.
        return device_expression(ctx, original) if _is_plain_cuda_arg(source) else _indexed_device(ctx, original, source)
    if source is not None and not source.deep_equals(value):
        return value  # another rule already made it a device value (``torch.device(device.type, 1)``)
    if isinstance(value, cst.Name) and value.value == "None":
        return device_expression(ctx, original)
    if device_kind_for_name(target_name(value)) == "string" or _is_device_value_node(ctx, value):
        return value
    return _index_device(ctx, original, value)


def _sources(original: cst.Call, updated: cst.Call) -> Optional[list]:
    """The original argument values, aligned with ``updated.args`` (None when an argument was dropped)."""
    return [a.value for a in original.args] if len(original.args) == len(updated.args) else None


def _without_current_device(ctx: RuleContext, original: cst.Call, updated: cst.Call):
    """``x.cuda(torch.cuda.current_device())`` is ``x.cuda()`` (the current device is cuda()'s default):
    the pair of calls without that argument (``non_blocking`` then passed by keyword), so the port is
    one call (``runtime_shim.to_device(x)``, ``x.to(device)``), not a device of the current device."""
    for i, a in enumerate(original.args):
        key = a.keyword.value if a.keyword else None
        if not (key == "device" or (key is None and i == 0)) or a.star:
            continue
        value = a.value
        if not (isinstance(value, cst.Call) and not value.args and isinstance(value.func, (cst.Name, cst.Attribute))
                and ctx.qualname(value.func) in _CURRENT_DEVICE):
            return original, updated
        _forget_reports_in(ctx, value)  # e.g. TDM115 of the dropped current_device() under --target torch
        keep = [j for j in range(len(original.args)) if j != i]
        args = []
        for j in keep:
            arg = updated.args[j]
            if arg.keyword is None and not arg.star and j == 1:
                arg = keyword_arg("non_blocking", arg.value, like=arg)
            args.append(arg)
        if args:
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        # ``original`` keeps its node identity (metadata); only its argument count is read from here on.
        return original, updated.with_changes(args=args)
    return original, updated


def _forget_reports_in(ctx: RuleContext, node: cst.CSTNode) -> None:
    """Drop the findings other rules reported inside ``node`` (an original node this rule removes)."""
    pos = ctx.position(node)
    if pos is None:
        return
    start, end = (pos.start.line, pos.start.column + 1), (pos.end.line, pos.end.column + 1)
    ctx.other_findings = [f for f in ctx.other_findings
                          if not (start <= (f.line, f.column) and (f.end_line, f.end_column) <= end)]


#: ``torch.cuda.current_device`` (registry), also under ``torch.cuda.random``.
_CURRENT_DEVICE = {a.name for a in entries() if a.name.endswith(".current_device") and a.name.startswith("torch.cuda")}


def _maybe_storage(ctx: RuleContext, at: cst.CSTNode, receiver: cst.BaseExpression) -> bool:
    """A receiver that may be a storage (``map_location=lambda storage, loc: storage.cuda()``), whose
    ``to()`` takes ``device=`` by keyword only: a name containing ``storage``, or the first parameter of
    a lambda passed as ``map_location``."""
    if not isinstance(receiver, cst.Name):
        return False
    if "storage" in receiver.value.lower():
        return True
    node = ctx.parent(at)
    while node is not None and not isinstance(node, cst.Lambda):
        node = ctx.parent(node)
    if node is None or not node.params.params or node.params.params[0].name.value != receiver.value:
        return False
    arg = ctx.parent(node)
    return isinstance(arg, cst.Arg) and arg.keyword is not None and arg.keyword.value == "map_location"


def _may_be_none(ctx: RuleContext, at: cst.CSTNode, value: cst.BaseExpression) -> bool:
    """``value`` is a name that is a parameter defaulting to ``None`` where ``at`` is."""
    if not isinstance(value, cst.Name):
        return False
    scope = ctx.scope(at)
    if scope is None or value.value not in scope:
        return False
    for a in scope[value.value]:
        node = getattr(a, "node", None)
        param = node if isinstance(node, cst.Param) else ctx.parent(node) if isinstance(node, cst.Name) else None
        if isinstance(param, cst.Param) and isinstance(param.default, cst.Name) and param.default.value == "None":
            return True
    return False


def _index_device(ctx: RuleContext, original: cst.Call, value: cst.BaseExpression) -> cst.BaseExpression:
    return cst.Call(torch_expression(ctx, "torch.device"),
                    [cst.Arg(device_type_expression(ctx, original),
                             comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), cst.Arg(value)])


def _is_device_value_node(ctx: RuleContext, node: cst.BaseExpression) -> bool:
    """A value a rule of this run already made a device (``device``, ``torch.device(device.type, 0)``)."""
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "device" \
        and isinstance(node.func.value, cst.Name) and node.func.value.value == "torch"


_TENSOR_FACTORIES = frozenset({"tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn",
                               "randint", "randperm", "arange", "linspace", "logspace", "eye", "zeros_like",
                               "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "stack", "cat"})


def _proven_tensor(ctx: RuleContext, node: cst.CSTNode, _depth: int = 0) -> bool:
    """``torch.zeros(3)``, ``torch.tensor(data)``...: a call of a torch tensor factory, or a name bound
    only to such calls (``src = torch.zeros(3)``) in its scope."""
    if isinstance(node, cst.Name) and _depth == 0:
        values = assigned_values(ctx, node)
        return values is not None and bool(values) and all(_proven_tensor(ctx, v, _depth + 1) for v in values)
    if not isinstance(node, cst.Call) or not isinstance(node.func, (cst.Name, cst.Attribute)):
        return False
    q = ctx.qualname(node.func) or ""
    return q.startswith("torch.") and q.count(".") == 1 and q.split(".")[1] in _TENSOR_FACTORIES
