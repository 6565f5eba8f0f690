"""``.cuda()`` on tensors and modules, and ``torch.device(...)`` of a CUDA device.

* ``x.cuda()`` -> ``x.to(device=runtime_shim.device())``; ``x.cuda(i)`` -> ``x.to(device=runtime_shim.device(i))``;
  ``x.cuda(non_blocking=True)`` keeps ``non_blocking``.
* ``torch.device('cuda')`` -> ``runtime_shim.device()``; ``torch.device('cuda:1')``,
  ``torch.device('cuda', i)`` and ``torch.device(f'cuda:{r}')`` keep their arguments.
* ``torch.device('cuda' if torch.cuda.is_available() else 'cpu')`` and
  ``torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')`` -> ``runtime_shim.device()``.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from .base import Rule, RuleContext, is_cpu_string, is_cuda_device_string, keyword_arg
from .device_strings import availability_idiom, is_available_test, shim_args_for


def _is_torch_device_call(ctx: RuleContext, node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Call) and ctx.qualname(node.func) == "torch.device"


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
        ("model = model.cuda()\n", "import runtime_shim\n\nmodel = model.to(device=runtime_shim.device())\n"),
        ("x = x.cuda(non_blocking=True)\n", "import runtime_shim\n\nx = x.to(device=runtime_shim.device(), non_blocking=True)\n"),
        ("x = x.cuda(rank)\n", "import runtime_shim\n\nx = x.to(device=runtime_shim.device(rank))\n"),
        ("import torch\ny = torch.zeros(3).cuda(device=args.gpu)\n",
         "import torch\nimport runtime_shim\n\ny = torch.zeros(3).to(device=runtime_shim.device(args.gpu))\n"),
        ("sd = torch.load(f, map_location=lambda s, loc: s.cuda())\n",
         "import runtime_shim\n\nsd = torch.load(f, map_location=lambda s, loc: s.to(device=runtime_shim.device()))\n"),
        ("import torch\nd = torch.device('cuda:1')\n", "import torch\nimport runtime_shim\n\nd = runtime_shim.device('cuda:1')\n"),
        ("import torch\nd = torch.device('cuda', i)\n", "import torch\nimport runtime_shim\n\nd = runtime_shim.device('cuda', i)\n"),
        ("import torch as th\nd = th.device('cuda' if th.cuda.is_available() else 'cpu')\n",
         "import torch as th\nimport runtime_shim\n\nd = runtime_shim.device()\n"),
        ("import torch\nd = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')\n",
         "import torch\nimport runtime_shim\n\nd = runtime_shim.device()\n"),
    )

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        func = original.func
        if isinstance(func, cst.Attribute) and func.attr.value == "cuda" and isinstance(updated.func, cst.Attribute):
            return self._dot_cuda(ctx, original, updated)
        if _is_torch_device_call(ctx, original):
            return self._torch_device(ctx, original, updated)
        return None

    def _dot_cuda(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        value = original.func.value  # type: ignore[union-attr]
        receiver = ctx.qualname(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
        if receiver is not None and (receiver == "torch" or receiver.startswith("torch.")):
            return None  # torch.cuda itself, torch.Tensor.cuda(x) etc.: not a method call on a value
        if len(updated.args) > 2 or any(a.star for a in updated.args):
            return None
        # Each argument is changed in place, so its comma and the comments around it stay.
        new_args, has_device = [], False
        for i, a in enumerate(updated.args):
            key = a.keyword.value if a.keyword else None
            if key == "device" or (key is None and i == 0):
                if has_device:
                    return None  # ``.cuda(0, device=1)`` fails in the original; leave it as it is
                value = a.value
                if isinstance(value, cst.Call) and ctx.is_shim_ref(value.func) and value.func.attr.value == "device":  # type: ignore[union-attr]
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
        return ctx.rewrite(original, new, "torch.Tensor.cuda", "TDM101")

    def _torch_device(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        first = _first_arg(original)
        if first is None:
            return None
        if isinstance(first.value, cst.IfExp):
            cuda_branch = availability_idiom(ctx, first.value)
            if cuda_branch is None or len(original.args) != 1:
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
        return ctx.rewrite(original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), "torch.device", "TDM101")

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        """``torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')``."""
        polarity = is_available_test(ctx, original.test)
        if polarity is None:
            return None
        cuda_branch, cpu_branch = (original.body, original.orelse) if polarity else (original.orelse, original.body)
        if not (_is_torch_device_call(ctx, cuda_branch) and _is_torch_device_call(ctx, cpu_branch)):
            return None
        cuda_arg, cpu_arg = _first_arg(cuda_branch), _first_arg(cpu_branch)  # type: ignore[arg-type]
        if (cuda_arg is None or cpu_arg is None or len(cuda_branch.args) != 1 or len(cpu_branch.args) != 1  # type: ignore[union-attr]
                or not is_cuda_device_string(cuda_arg.value) or not is_cpu_string(cpu_arg.value)):
            return None
        new = ctx.shim_call("device", *shim_args_for(cuda_arg.value))
        return ctx.rewrite(original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), "torch.device", "TDM101")


def _has_index(call: cst.Call) -> bool:
    return len(call.args) > 1
