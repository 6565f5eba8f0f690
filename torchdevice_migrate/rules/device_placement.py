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

from ..project_index import project_of
from .base import (
    Rule,
    RuleContext,
    availability_idiom,
    is_available_test,
    is_cpu_string,
    is_cuda_device_string,
    is_reference_site,
    keyword_arg,
    shim_args_for,
)


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
        # Receivers not proven to be torch modules (tensors, unknown objects): runtime_shim.to_device
        ("model = model.cuda()\n", "import runtime_shim\n\nmodel = runtime_shim.to_device(model)\n"),
        ("x = x.cuda(non_blocking=True)\n", "import runtime_shim\n\nx = runtime_shim.to_device(x, non_blocking=True)\n"),
        ("x = x.cuda(rank)\n", "import runtime_shim\n\nx = runtime_shim.to_device(x, rank)\n"),
        ("import torch\ny = torch.zeros(3).cuda(device=args.gpu)\n",
         "import torch\nimport runtime_shim\n\ny = runtime_shim.to_device(torch.zeros(3), device=args.gpu)\n"),
        ("sd = torch.load(f, map_location=lambda s, loc: s.cuda())\n",
         "import runtime_shim\n\nsd = torch.load(f, map_location=lambda s, loc: runtime_shim.to_device(s))\n"),
        ("import torch\nys = list(map(torch.Tensor.cuda, xs))\n",
         "import torch\nimport runtime_shim\n\nys = list(map(runtime_shim.to_device, xs))\n"),
        # Proven torch modules (torch.nn classes, project nn.Module subclasses without cuda/to overrides)
        ("import torch.nn as nn\nclass Net(nn.Module):\n    pass\nnet = Net()\nnet = net.cuda(0)\nhead = nn.Linear(2, 3).cuda()\n",
         "import torch.nn as nn\nimport runtime_shim\n\nclass Net(nn.Module):\n    pass\nnet = Net()\n"
         "net = net.to(device=runtime_shim.device(0))\nhead = nn.Linear(2, 3).to(device=runtime_shim.device())\n"),
        # A class with its own cuda(): its call sites keep calling it (on CUDA) through to_device;
        # super().cuda() of an nn.Module is Module.to(device=...)
        ("import torch.nn as nn\nclass Ema(nn.Module):\n    def cuda(self, device=None):\n"
         "        self.shadow = self.shadow.cuda(device)\n        return super().cuda(device)\nema = Ema().cuda()\n",
         "import torch.nn as nn\nimport runtime_shim\n\nclass Ema(nn.Module):\n    def cuda(self, device=None):\n"
         "        self.shadow = runtime_shim.to_device(self.shadow, device)\n"
         "        return super().to(device=runtime_shim.device(device))\nema = runtime_shim.to_device(Ema())\n"),
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

    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute):
        """``map(torch.Tensor.cuda, batch)``: the unbound method as a value -> ``runtime_shim.to_device``."""
        if original.attr.value != "cuda" or ctx.qualname(original) not in UNBOUND_CUDA:
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Call) and parent.func is original:
            return None  # ``torch.Tensor.cuda(x)``: leave_Call
        if not is_reference_site(ctx, original):
            return None
        new = ctx.shim("to_device").with_changes(lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, "torch.Tensor.cuda", "TDM101")

    def _dot_cuda(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        value = original.func.value  # type: ignore[union-attr]
        receiver = ctx.qualname(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
        if receiver is not None and (receiver == "torch" or receiver.startswith("torch.")):
            if ctx.qualname(original.func) in UNBOUND_CUDA and original.args and not original.args[0].star \
                    and original.args[0].keyword is None:
                # ``torch.Tensor.cuda(x, ...)``: ``x.cuda(...)`` spelled through the class.
                new = ctx.shim_call("to_device", *updated.args).with_changes(lpar=updated.lpar, rpar=updated.rpar)
                return ctx.rewrite(original, new, "torch.Tensor.cuda", "TDM101")
            return None  # torch.cuda itself: not a method call on a value
        if len(updated.args) > 2 or any(a.star for a in updated.args):
            return None
        if not proven_torch_module(ctx, value):
            # A tensor, or a receiver the project does not prove to be a torch module: on CUDA the
            # original call (a user's own ``cuda()`` runs), elsewhere a move that never aliases.
            args = []
            for i, a in enumerate(updated.args):
                key = a.keyword.value if a.keyword else None
                value = a.value
                if ((key == "device" or (key is None and i == 0)) and isinstance(value, cst.Call)
                        and ctx.is_shim_ref(value.func) and value.func.attr.value == "device"  # type: ignore[union-attr]
                        and len(value.args) == 1 and value.args[0].keyword is None and not value.args[0].star):
                    # ``.cuda(device=gpu)``, which another rule made a shim device: to_device takes
                    # what ``cuda()`` took, and on CUDA passes it on unchanged.
                    a = a.with_changes(value=value.args[0].value)
                args.append(a)
            new = receiver_first(ctx, "to_device", updated.func.value, args, updated)  # type: ignore[union-attr]
            return ctx.rewrite(original, new, "torch.Tensor.cuda", "TDM101")
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


UNBOUND_CUDA = {"torch.Tensor.cuda", "torch.nn.Module.cuda", "torch.nn.modules.module.Module.cuda"}
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
        scope = ctx.scope(node)
        if scope is None:
            return False
        try:
            assignments = list(scope[node.value])
        except Exception:
            return False
        proven = False
        for a in assignments:
            target = getattr(a, "node", None)
            at = ctx.parent(target) if isinstance(target, cst.Name) else None
            assign = ctx.parent(at) if isinstance(at, cst.AssignTarget) else None
            if not isinstance(assign, cst.Assign) or len(assign.targets) != 1 or assign.targets[0].target is not target:
                return False
            value = assign.value
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
