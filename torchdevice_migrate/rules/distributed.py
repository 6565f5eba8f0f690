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
from .base import Rule, RuleContext, string_value, target_name

INIT = {"torch.distributed.init_process_group", "torch.distributed.distributed_c10d.init_process_group"}
DDP = {"torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel"}
DDP_ARGS = {"device_ids": 1, "output_device": 2}  # keyword -> positional index
_BACKEND_OPTION = re.compile(r"--?[\w-]*backend[\w-]*", re.IGNORECASE)
API = "literal:'nccl'"
DDP_API = "torch.nn.parallel.DistributedDataParallel"


def _is_backend_name(name: Optional[str]) -> bool:
    return bool(name) and "backend" in name.lower()  # type: ignore[union-attr]


_DEVICE_MAP = re.compile(r"\s*\w+\s*:\s*\w+\s*(,\s*\w+\s*:\s*\w+\s*)*")
BACKEND_ENUM = {f"{m}.Backend.NCCL" for m in ("torch.distributed", "torch.distributed.distributed_c10d")}


def _is_nccl(node: cst.CSTNode) -> bool:
    """``'nccl'``, or a device-mapped backend string that gives CUDA to NCCL (``'cpu:gloo,cuda:nccl'``)."""
    value = string_value(node)
    if value == "nccl":
        return True
    return bool(value) and _DEVICE_MAP.fullmatch(value) is not None and any(
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
        ("import torch.distributed as dist\ndist.init_process_group('nccl', rank=rank, world_size=ws)\n",
         "import torch.distributed as dist\nimport runtime_shim\n\n"
         "dist.init_process_group(runtime_shim.distributed_backend('nccl'), rank=rank, world_size=ws)\n"),
        ("from torch.distributed import init_process_group\ninit_process_group(backend=\"nccl\")\n",
         "from torch.distributed import init_process_group\nimport runtime_shim\n\n"
         "init_process_group(backend=runtime_shim.distributed_backend(\"nccl\"))\n"),
        ("import torch.distributed as dist\ndist.init_process_group(backend=dist.Backend.NCCL)\n",
         "import torch.distributed as dist\nimport runtime_shim\n\ndist.init_process_group(backend=runtime_shim.distributed_backend(dist.Backend.NCCL))\n"),
        # A device-mapped backend: the CUDA entry needs NCCL.
        ("import torch.distributed as dist\ndist.init_process_group('cpu:gloo,cuda:nccl')\n",
         "import torch.distributed as dist\nimport runtime_shim\n\ndist.init_process_group(runtime_shim.distributed_backend('cpu:gloo,cuda:nccl'))\n"),
        ("if dist.get_backend() == 'nccl':\n    pass\n",
         "import runtime_shim\n\nif dist.get_backend() == runtime_shim.distributed_backend('nccl'):\n    pass\n"),
        ("import torch\nbackend = 'nccl' if torch.cuda.is_available() else 'gloo'\n",
         "import torch\nimport runtime_shim\n\nbackend = runtime_shim.distributed_backend('nccl') if runtime_shim.is_available() else 'gloo'\n"),
        ("import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\nmodel = DDP(model, device_ids=[torch.cuda.current_device()], output_device=gpu_id)\n",
         "import torch\nfrom torch.nn.parallel import DistributedDataParallel as DDP\nimport runtime_shim\n\n"
         "model = DDP(model, device_ids=runtime_shim.ddp_device_ids([runtime_shim.current_device()]), output_device=runtime_shim.ddp_device_ids(gpu_id))\n"),
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
                       "If it is a backend, wrap it as `runtime_shim.distributed_backend('nccl')`; otherwise ignore this finding.")
            return None
        new = ctx.shim_call("distributed_backend", updated.with_changes(lpar=[], rpar=[])).with_changes(
            lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, API, "TDM110")

    leave_SimpleString = _leave_string
    leave_ConcatenatedString = _leave_string

    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated: cst.Attribute):
        """``dist.Backend.NCCL`` (a ``str`` equal to ``'nccl'``) in a backend position."""
        if ctx.qualname(original) not in BACKEND_ENUM or self._inside_shim_call(ctx, original):
            return None
        if not self._backend_position(ctx, original):
            ctx.report(original, "torch.distributed.Backend.NCCL", FindingStatus.REVIEW, "TDM301",
                       "Backend.NCCL where the syntax does not prove it is a process-group backend.",
                       "If it is a backend, wrap it as `runtime_shim.distributed_backend(...)`; otherwise ignore this finding.")
            return None
        new = ctx.shim_call("distributed_backend", updated.with_changes(lpar=[], rpar=[])).with_changes(
            lpar=updated.lpar, rpar=updated.rpar)
        return ctx.rewrite(original, new, "torch.distributed.Backend.NCCL", "TDM110")

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
                    isinstance(value, cst.Call) and ctx.is_shim_ref(value.func)):
                continue
            new_value = ctx.shim_call("ddp_device_ids", upd.value)
            if ctx.rewrite(value, new_value, DDP_API, "TDM110") is None:
                continue
            new_args[i] = upd.with_changes(value=new_value)
            changed = True
        return updated.with_changes(args=new_args) if changed else None
