"""``torch.backends.cuda.sdp_kernel(...)`` -> ``torch.nn.attention.sdpa_kernel([...])``.

``sdp_kernel`` is deprecated and CUDA-namespaced; torch implements it as ``sdpa_kernel`` over the list
of backends whose flags are true, in the order flash, memory-efficient, math, cuDNN. The port writes
that list out: ``sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)`` ->
``sdpa_kernel([torch.nn.attention.SDPBackend.FLASH_ATTENTION, torch.nn.attention.SDPBackend.CUDNN_ATTENTION])``
(omitted flags default to True, as in ``sdp_kernel``). The same context manager results on CUDA;
``sdpa_kernel`` works on every device.

Flags that are not the literals ``True``/``False`` (``enable_flash=use_flash``), ``*args``/``**kwargs``,
and ``sdp_kernel`` used as a value are left for review (TDM304): the list would depend on run-time values.
"""

from __future__ import annotations

import libcst as cst

from ..findings import FindingStatus
from ..registry import Status, entries
from .base import (
    REVIEW_CODE,
    Rule,
    RuleContext,
    dotted,
    forget_import,
    is_reference_site,
    rewrite_ported,
    root_name,
    split_args,
    with_commas,
)
from .base import torch_name_or_import as torch_name

# The registry entries this rule ports (issue 13: the registry is the one list of names).
HANDLES = tuple(sorted(a.name for a in entries() if a.rule == "attention" and a.status is Status.REWRITTEN))
SDP_KERNEL = set(HANDLES)
(API,) = sorted(SDP_KERNEL)
PARAMS = ("enable_flash", "enable_math", "enable_mem_efficient", "enable_cudnn")
# The order torch's own sdp_kernel builds its list in.
BACKENDS = (("enable_flash", "FLASH_ATTENTION"), ("enable_mem_efficient", "EFFICIENT_ATTENTION"),
            ("enable_math", "MATH"), ("enable_cudnn", "CUDNN_ATTENTION"))


def _literal_bool(node: cst.CSTNode):
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    return None


class Attention(Rule):
    name = "attention"
    VALID = (
        "from torch.nn.attention import sdpa_kernel, SDPBackend\nwith sdpa_kernel([SDPBackend.MATH]):\n    pass\n",
        "def sdp_kernel(**kw):\n    pass\nwith sdp_kernel(enable_flash=False):\n    pass\n",
    )
    INVALID = (
        ("import torch\nwith torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False):\n    pass\n",
         "import torch\nwith torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.FLASH_ATTENTION, "
         "torch.nn.attention.SDPBackend.CUDNN_ATTENTION]):\n    pass\n", ("TDM113",)),
        ("import torch\nfrom torch.backends.cuda import sdp_kernel\nwith sdp_kernel(False, True, False, False):\n    pass\n",
         "import torch\nwith torch.nn.attention.sdpa_kernel([torch.nn.attention.SDPBackend.MATH]):\n    pass\n", ("TDM113",)),
    )
    REPORTS = (
        ("import torch\nwith torch.backends.cuda.sdp_kernel(enable_flash=use_flash):\n    pass\n", ("TDM304",)),
        ("import torch\nctx = torch.backends.cuda.sdp_kernel\n", ("TDM304",)),
    )

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        if not isinstance(original.func, (cst.Name, cst.Attribute)) or ctx.qualname(original.func) not in SDP_KERNEL:
            return None
        shape = split_args(original)
        flags = dict.fromkeys(PARAMS, True)
        ok = shape is not None and len(shape[0]) <= len(PARAMS) and not set(shape[1]) - set(PARAMS)
        if ok:
            positional, keywords = shape  # type: ignore[misc]
            given = {PARAMS[i]: a.value for i, a in enumerate(positional)}
            given.update({k: a.value for k, a in keywords.items()})
            for k, v in given.items():
                b = _literal_bool(v)
                if b is None:
                    ok = False
                    break
                flags[k] = b
        if not ok:
            ctx.report(original, API, FindingStatus.REVIEW, REVIEW_CODE,
                       "sdp_kernel flags that are not literal True/False cannot be turned into a list of backends here.",
                       "Use torch.nn.attention.sdpa_kernel with the list of SDPBackend members you want.")
            return None
        th = torch_name(ctx, original, original.func)
        if th is None:
            ctx.report(original, API, FindingStatus.REVIEW, REVIEW_CODE,
                       "The module does not import torch, so torch.nn.attention cannot be named here.",
                       "Add `import torch` and run the migration again.")
            return None
        elements = with_commas(cst.Arg(dotted(th, "nn", "attention", "SDPBackend", member))
                               for flag, member in BACKENDS if flags[flag])
        backend_list = cst.List([cst.Element(a.value, comma=a.comma) for a in elements])
        new = updated.with_changes(func=dotted(th, "nn", "attention", "sdpa_kernel"), args=[cst.Arg(backend_list)])
        # Already torch's own spelling: the same in both targets (ctx.port says so).
        result = rewrite_ported(ctx, original, new, API, "TDM113", ctx.port(API))
        root = root_name(original.func)
        if result is not None and not (isinstance(original.func, cst.Attribute) and root is not None
                                       and ctx.qualname(root) == "torch"):
            forget_import(ctx, original.func, API)
        return result

    def _leave_ref(self, ctx: RuleContext, original, updated):
        if ctx.qualname(original) not in SDP_KERNEL or not is_reference_site(ctx, original):
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Call) and parent.func is original:
            return None
        ctx.report(original, API, FindingStatus.REVIEW, REVIEW_CODE)
        return None

    leave_Name = _leave_ref
    leave_Attribute = _leave_ref
