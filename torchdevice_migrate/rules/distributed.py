"""``'nccl'`` and DDP device ids -> the backend and ids of the chosen device.

A CPU-only or XPU build has no NCCL, and ``DistributedDataParallel`` refuses ``device_ids`` for a
module that is not on CUDA/XPU. So:

* ``'nccl'`` where the syntax proves it is a process-group backend becomes
  ``runtime_shim.distributed_backend('nccl')`` (``'nccl'`` on CUDA, ``'xccl'`` on XPU, ``'gloo'``
  otherwise): the first argument of ``init_process_group``; a keyword, parameter default, assignment
  target or dict key whose name contains ``backend`` (``backend='nccl'``, ``self.dist_backend = 'nccl'``,
  ``{'backend': 'nccl'}``); ``parser.add_argument('--dist-backend', default='nccl')``; a branch of a
  conditional expression in such a place or next to ``'gloo'`` (``'nccl' if c else 'gloo'``: after the
  port, ``c`` may be true on a CPU machine); an operand of ``==`` / ``!=`` (``dist.get_backend() ==
  'nccl'`` stays true exactly when the process group uses the chosen device's backend).
* ``DistributedDataParallel(m, device_ids=[i], output_device=i)`` (also ``DDP``, ``nn.parallel.``)
  -> ``device_ids=runtime_shim.ddp_device_ids([i]), output_device=runtime_shim.ddp_device_ids(i)``:
  unchanged on CUDA/XPU, ``None`` elsewhere.

``torch.distributed.Backend.NCCL`` in the same places is wrapped the same way, and so is a
device-mapped backend string that gives CUDA to NCCL (``'cpu:gloo,cuda:nccl'``: on CUDA unchanged,
elsewhere the shim maps the CUDA entry to the chosen device's backend).

Any other ``'nccl'`` literal is listed for review (TDM301); a log message that mentions nccl is not a
backend and is never touched.
"""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from ..findings import FindingStatus
from ..registry import handled_by
from ..targets import DEVICE_VALUE
from .base import (
    Example,
    Rule,
    RuleContext,
    device_expression,
    is_available_test,
    string_value,
    target_name,
    torch_expression,
)

#: Registry entries this rule ports (issue 13): ``'nccl'``, ``Backend.NCCL`` and DDP's device arguments.
HANDLES = handled_by("distributed")
API = next(n for n in HANDLES if n.startswith("literal:"))
DDP = {n for n in HANDLES if n.endswith(".DistributedDataParallel")}
DDP_API = min(DDP, key=len)  # ``torch.nn.parallel.DistributedDataParallel``
_ENUM_API = next(n for n in HANDLES if n.endswith(".Backend.NCCL"))
#: ``init_process_group`` where ``torch.distributed`` defines it (the module of ``Backend``), and its public name.
INIT = {f"{m}.init_process_group" for m in ("torch.distributed", "torch.distributed.distributed_c10d")}
DDP_ARGS = {"device_ids": 1, "output_device": 2}  # keyword -> positional index
_BACKEND_OPTION = re.compile(r"--?[\w-]*backend[\w-]*", re.IGNORECASE)
KEPT_CODE = "TDM307"
_BACKEND_FOR = "torch.distributed.get_default_backend_for_device"
_AVAILABLE = "torch.accelerator.is_available()"
_DV = f"device = {DEVICE_VALUE}\n"  # the torch target's device value, as the examples show it
_BACKEND = _BACKEND_FOR + "(device)"


def _review_hint(ctx: RuleContext, literal: str) -> str:
    if ctx.target == "torch":
        return f"If it is a backend, write `{_BACKEND_FOR}(device)`; otherwise ignore this finding."
    return f"If it is a backend, wrap it as `runtime_shim.distributed_backend({literal})`; otherwise ignore this finding."


def _is_backend_name(name: Optional[str]) -> bool:
    return bool(name) and "backend" in name.lower()  # type: ignore[union-attr]


_DEVICE_MAP = re.compile(r"\s*\w+\s*:\s*\w+\s*(,\s*\w+\s*:\s*\w+\s*)*")
BACKEND_ENUM = {_ENUM_API, _ENUM_API.replace("torch.distributed.", "torch.distributed.distributed_c10d.")}


def _is_nccl(node: cst.CSTNode) -> bool:
    """``'nccl'``, or a device-mapped backend string that gives CUDA to NCCL (``'cpu:gloo,cuda:nccl'``)."""
    value = string_value(node)
    if value == "nccl":
        return True
    if not value:
        return False
    return _DEVICE_MAP.fullmatch(value) is not None and any(
        part.split(":")[0].strip() == "cuda" and part.split(":")[1].strip() == "nccl" for part in value.split(","))


class Distributed(Rule):
    name = "distributed"
    VALID = (
        "logger.info('using nccl for the all-reduce')\n",
        "import torch.distributed as dist\ndist.init_process_group('gloo')\n",
        "model = DistributedDataParallel(model)\n",
        "import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\nmodel = DDP(model, device_ids=None)\n",
    )
    INVALID = (
        Example("import torch.distributed as dist\ndist.init_process_group('nccl', rank=rank, world_size=ws)\n",
                "import torch.distributed as dist\nimport runtime_shim\n\n"
                "dist.init_process_group(runtime_shim.distributed_backend('nccl'), rank=rank, world_size=ws)\n", ("TDM110",),
                torch="import torch.distributed as dist\nimport torch\n\n" + _DV + "\n"
                      "dist.init_process_group(" + _BACKEND + ", rank=rank, world_size=ws)\n"),
        Example("from torch.distributed import init_process_group\ninit_process_group(backend=\"nccl\")\n",
                "from torch.distributed import init_process_group\nimport runtime_shim\n\n"
                "init_process_group(backend=runtime_shim.distributed_backend(\"nccl\"))\n", ("TDM110",),
                torch="from torch.distributed import init_process_group\nimport torch\n\n" + _DV + "\n"
                      "init_process_group(backend=" + _BACKEND + ")\n"),
        Example("import torch.distributed as dist\ndist.init_process_group(backend=dist.Backend.NCCL)\n",
                "import torch.distributed as dist\nimport runtime_shim\n\n"
                "dist.init_process_group(backend=runtime_shim.distributed_backend(dist.Backend.NCCL))\n", ("TDM110",),
                torch="import torch.distributed as dist\nimport torch\n\n" + _DV + "\n"
                      "dist.init_process_group(backend=" + _BACKEND + ")\n"),
        # A device-mapped backend: the CUDA entry needs NCCL (no torch spelling: left, TDM307, under --target torch).
        Example("import torch.distributed as dist\ndist.init_process_group('cpu:gloo,cuda:nccl')\n",
                "import torch.distributed as dist\nimport runtime_shim\n\n"
                "dist.init_process_group(runtime_shim.distributed_backend('cpu:gloo,cuda:nccl'))\n", ("TDM110",),
                torch="import torch.distributed as dist\ndist.init_process_group('cpu:gloo,cuda:nccl')\n",
                torch_codes=("TDM307",)),
        Example("if dist.get_backend() == 'nccl':\n    pass\n",
                "import runtime_shim\n\nif dist.get_backend() == runtime_shim.distributed_backend('nccl'):\n    pass\n",
                ("TDM110",), torch="import torch\n\n" + _DV + "\nif dist.get_backend() == " + _BACKEND + ":\n    pass\n"),
        # The chooser is one expression: the chosen device's backend is what each branch gave there.
        Example("import torch\nbackend = 'nccl' if torch.cuda.is_available() else 'gloo'\n",
                "import torch\nimport runtime_shim\n\nbackend = runtime_shim.distributed_backend('nccl')\n", ("TDM110",),
                torch="import torch\n\n" + _DV + "\nbackend = " + _BACKEND + "\n"),
        Example("import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\n"
                "model = DDP(model, device_ids=[local_rank], output_device=local_rank)\n",
                "import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\nimport runtime_shim\n\n"
                "model = DDP(model, device_ids=runtime_shim.ddp_device_ids([local_rank]), "
                "output_device=runtime_shim.ddp_device_ids(local_rank))\n", ("TDM110", "TDM110"),
                torch="import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\n"
                      "model = DDP(model, device_ids=[local_rank] if torch.accelerator.is_available() else None, "
                      "output_device=local_rank if torch.accelerator.is_available() else None)\n"),
        Example("import torch\nm = torch.nn.parallel.distributed.DistributedDataParallel(model, [gpu])\n",
                "import torch\nimport runtime_shim\n\n"
                "m = torch.nn.parallel.distributed.DistributedDataParallel(model, runtime_shim.ddp_device_ids([gpu]))\n",
                ("TDM110",),
                torch="import torch\nm = torch.nn.parallel.distributed.DistributedDataParallel(model, [gpu] if "
                      "torch.accelerator.is_available() else None)\n"),
    )
    #: Left in place and reported: a ``'nccl'`` the syntax does not prove to be a backend.
    REPORTS = (
        ("x = 'nccl'\n", ("TDM301",)),
    )

    # -- 'nccl' ------------------------------------------------------------------------------------
    def _leave_string(self, ctx: RuleContext, original, updated):
        if not _is_nccl(original):
            return None
        if self._inside_shim_call(ctx, original):
            return None
        if not self._backend_position(ctx, original):
            ctx.report(original, API, FindingStatus.REVIEW, "TDM301",
                       "A 'nccl' string where the syntax does not prove it is a process-group backend.",
                       _review_hint(ctx, "'nccl'"))
            return None
        return self._backend(ctx, original, updated, API)

    leave_SimpleString = _leave_string
    leave_ConcatenatedString = _leave_string

    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute):
        """``dist.Backend.NCCL`` (a ``str`` equal to ``'nccl'``) in a backend position."""
        if ctx.qualname(original) not in BACKEND_ENUM or self._inside_shim_call(ctx, original):
            return None
        if not self._backend_position(ctx, original):
            ctx.report(original, "torch.distributed.Backend.NCCL", FindingStatus.REVIEW, "TDM301",
                       "Backend.NCCL where the syntax does not prove it is a process-group backend.",
                       _review_hint(ctx, "..."))
            return None
        return self._backend(ctx, original, updated, _ENUM_API)

    def _backend(self, ctx: RuleContext, original, updated, api: str, value=None):
        """``runtime_shim.distributed_backend(<nccl>)``, or the torch target's
        ``torch.distributed.get_default_backend_for_device({device})``."""
        if ctx.target == "torch":
            ctx.port(api)
            if string_value(value if value is not None else original) not in (None, "nccl"):
                # 'cpu:gloo,cuda:nccl': one backend per device type; no torch spelling keeps the CPU entry exact.
                ctx.report(original, api, FindingStatus.REVIEW, KEPT_CODE,
                           "A device-mapped backend string: torch has no spelling that keeps it on CUDA and maps "
                           "the CUDA entry elsewhere.", "Port it by hand with "
                           "`torch.distributed.get_default_backend_for_device(device)`, or with `--target shim`.")
                return None
            new = cst.Call(torch_expression(ctx, _BACKEND_FOR), [cst.Arg(device_expression(ctx, original))],
                           lpar=updated.lpar, rpar=updated.rpar)
            return ctx.rewrite(original, new, api, "TDM110")
        new = ctx.shim_call("distributed_backend", updated.with_changes(lpar=[], rpar=[])).with_changes(
            lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, api, "TDM110")

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        """``'nccl' if torch.cuda.is_available() else 'gloo'``: one expression, the chosen device's backend
        (``nccl`` on CUDA, ``gloo`` on a CPU or MPS, ``xccl`` on XPU: what the two branches give there)."""
        polarity = is_available_test(ctx, original.test)
        if polarity is None:
            return None
        nccl, gloo = (original.body, original.orelse) if polarity else (original.orelse, original.body)
        if string_value(nccl) != "nccl" or string_value(gloo) != "gloo":
            return None
        return self._backend(ctx, original, cst.SimpleString(nccl.value).with_changes(  # type: ignore[attr-defined]
            lpar=updated.lpar, rpar=updated.rpar), API, value=nccl)

    def _inside_shim_call(self, ctx: RuleContext, node: cst.CSTNode) -> bool:
        arg = ctx.parent(node)
        call = ctx.parent(arg) if isinstance(arg, cst.Arg) else None
        return isinstance(call, cst.Call) and ctx.is_shim_ref(call.func)

    def _backend_position(self, ctx: RuleContext, node: cst.CSTNode) -> bool:
        parent = ctx.parent(node)
        if isinstance(parent, cst.Arg) and parent.value is node:
            call = ctx.parent(parent)
            if not isinstance(call, cst.Call):
                return False
            if parent.keyword is not None:
                key = parent.keyword.value
                if _is_backend_name(key):
                    return True
                if key == "default" and isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument":
                    return any(a.keyword is None and _BACKEND_OPTION.fullmatch(string_value(a.value) or "")
                               for a in call.args)
                return False
            positional = [a for a in call.args if a.keyword is None and not a.star]
            return bool(positional) and positional[0] is parent and ctx.qualname(call.func) in INIT
        if isinstance(parent, cst.Param) and parent.default is node:
            return _is_backend_name(parent.name.value)
        if isinstance(parent, cst.Assign) and parent.value is node:
            return any(_is_backend_name(target_name(t.target)) for t in parent.targets)
        if isinstance(parent, cst.AnnAssign) and parent.value is node:
            return _is_backend_name(target_name(parent.target))
        if isinstance(parent, cst.DictElement) and parent.value is node:
            return _is_backend_name(string_value(parent.key))
        if isinstance(parent, cst.IfExp) and node in (parent.body, parent.orelse):
            other = parent.orelse if node is parent.body else parent.body
            return string_value(other) == "gloo" or self._backend_position(ctx, parent)
        if isinstance(parent, cst.ComparisonTarget) and parent.comparator is node:
            return isinstance(parent.operator, (cst.Equal, cst.NotEqual))
        if isinstance(parent, cst.Comparison) and parent.left is node:
            return isinstance(parent.comparisons[0].operator, (cst.Equal, cst.NotEqual))
        return False

    # -- DistributedDataParallel(device_ids=..., output_device=...) -------------------------------
    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        if not isinstance(original.func, (cst.Name, cst.Attribute)) or ctx.qualname(original.func) not in DDP:
            return None
        if any(a.star for a in original.args):
            return None
        positional = [i for i, a in enumerate(original.args) if a.keyword is None]
        new_args = list(updated.args)
        changed = False
        for i, (orig, upd) in enumerate(zip(original.args, updated.args)):
            key = orig.keyword.value if orig.keyword is not None else None
            if key is None:
                index = positional.index(i)
                key = next((k for k, v in DDP_ARGS.items() if v == index), None)
            if key not in DDP_ARGS:
                continue
            value = orig.value
            if (isinstance(value, cst.Name) and value.value == "None") or (
                    isinstance(value, cst.Call) and ctx.is_shim_ref(value.func)) or isinstance(value, cst.IfExp):
                continue
            if ctx.target == "torch":
                # ``[i] if torch.accelerator.is_available() else None``: the ids on an accelerator, None for a CPU module.
                ctx.port(ctx.qualname(original.func) or DDP_API)
                ids = upd.value
                if isinstance(ids, (cst.Lambda, cst.IfExp, cst.NamedExpr)) and not ids.lpar:
                    ids = ids.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                new_value: cst.BaseExpression = cst.IfExp(test=torch_expression(ctx, _AVAILABLE), body=ids,
                                                          orelse=cst.Name("None"))
            else:
                new_value = ctx.shim_call("ddp_device_ids", upd.value)
            if ctx.rewrite(value, new_value, ctx.qualname(original.func) or DDP_API, "TDM110") is None:
                continue
            new_args[i] = upd.with_changes(value=new_value)
            changed = True
        return updated.with_changes(args=new_args) if changed else None
