"""Report what has no portable spelling and is not a ``torch.cuda`` name; never rewrite.

References to unsupported ``torch.*`` names of the registry (``torch.cuda.CUDAGraph``,
``torch.utils.cpp_extension.load``...) are reported by ``registry_renames.py``; this rule reports
the rest, each with its registry entry (code, reason, hint):

* imports of CUDA-only third-party packages (``module:apex``, ``module:triton``, ``module:pynvml``...),
  unless the import sits in a ``try:`` whose handler catches ``ImportError`` (that is the fallback
  the hint asks for);
* ``.cu`` / ``.cuh`` source paths in string literals (TDM202), except inside a call that is itself
  reported (``load(sources=['k.cu'])`` is one finding, at ``load``);
* writes to ``CUDA_VISIBLE_DEVICES`` (TDM203): ``env['CUDA_VISIBLE_DEVICES'] = ...``,
  ``os.environ.setdefault(...)``, ``os.putenv(...)``, ``os.environ.update(CUDA_VISIBLE_DEVICES=...)``,
  ``{'CUDA_VISIBLE_DEVICES': ...}`` in a dict literal;
* raw handle reads ``x.cuda_stream`` / ``x.cuda_event`` (TDM204), except two compared for identity;
* assignments to an unsupported registry name (``torch.backends.cuda.cufft_plan_cache.max_size = 0``),
  which ``registry_renames.py`` skips because it never looks at assignment targets.

Report-only: ``INVALID`` is empty; ``REPORTS`` lists ``(code, [reason codes])`` pairs, tested in
``tests/test_registry.py``.
"""

from __future__ import annotations

import re
from typing import ClassVar, List, Optional, Sequence, Tuple, Union

import libcst as cst
from libcst.helpers import get_full_name_for_node

from ..registry import API, Status, entries, lookup, module_entry
from .base import Rule, RuleContext, handle_identity_comparison, string_value

CUDA_SOURCE_RE = re.compile(r"[^\s'\"]+\.cuh?")
_ENV_SETTERS = {"setdefault", "putenv", "setenv", "__setitem__"}
#: Registry entries this rule reports (issue 13): CUDA-only packages (``module:``), ``env:`` writes, ``.cu``
#: sources, raw handle attributes; plus assignments to any unsupported registry name.
HANDLES = tuple(a.name for a in entries() if a.status is Status.UNSUPPORTED and (
    a.name.startswith(("module:", "env:", "literal:")) or a.name.endswith((".cuda_stream", ".cuda_event"))))
ENV_VAR = next(n for n in HANDLES if n.startswith("env:"))[len("env:"):]
_CU_SOURCE = next(n for n in HANDLES if n.startswith("literal:"))
#: ``cuda_stream`` -> ``torch.cuda.Stream.cuda_stream`` (attribute name -> registry entry).
_RAW_HANDLES = {n.rpartition(".")[2]: n for n in HANDLES if n.endswith((".cuda_stream", ".cuda_event"))}
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


class Unsupported(Rule):
    name = "unsupported"
    VALID = (
        # A fallback for a missing package is what the hint asks for: not reported.
        "try:\n    import apex\nexcept ImportError:\n    apex = None\n",
        "import torch\nfrom . import cuda_utils\nimport mytriton\n",
        # Reading the variable, and docstrings or plain words, are not writes or sources.
        "import os\nvisible = os.environ.get('CUDA_VISIBLE_DEVICES', '')\n",
        'def build():\n    """Compiles kernels/fused.cu."""\n    return "see kernels.cu for details"\n',
        "if path.endswith('.cu'):\n    pass\n",
        "x = self.cuda_streams\n",
    )
    INVALID: ClassVar[Sequence[Tuple[str, str]]] = ()
    #: Report-only examples: code that must stay byte-identical and yield exactly these codes.
    REPORTS: ClassVar[Sequence[Tuple[str, List[str]]]] = (
        ("import apex\nfrom apex.optimizers import FusedAdam\n", ["TDM210", "TDM210"]),
        ("import triton.language as tl\n", ["TDM210"]),
        ("from numba import cuda\n", ["TDM210"]),
        ("import pynvml\n", ["TDM208"]),
        ("from setuptools import Extension\next = Extension('fused_cuda', ['fused.cpp', 'kernels/fused.cu'])\n", ["TDM202"]),
        ("import os\nos.environ['CUDA_VISIBLE_DEVICES'] = '0'\n", ["TDM203"]),
        ("import os\nos.environ.setdefault('CUDA_VISIBLE_DEVICES', '0,1')\n", ["TDM203"]),
        ("import os\nos.putenv('CUDA_VISIBLE_DEVICES', str(rank))\n", ["TDM203"]),
        ("import subprocess\nsubprocess.run(cmd, env={'CUDA_VISIBLE_DEVICES': '1'})\n", ["TDM203"]),
        ("ptr = stream.cuda_stream\n", ["TDM204"]),
        ("import torch\ntorch.backends.cuda.cufft_plan_cache.max_size = 32\n", ["TDM211"]),
    )

    # ---- imports of CUDA-only packages ---------------------------------------------------------
    def leave_Import(self, ctx: RuleContext, original: cst.Import, updated):
        if _guarded_import(ctx, original):
            return None
        for alias in original.names:
            dotted = get_full_name_for_node(alias.name)
            api = module_entry(dotted) if dotted else None
            if api is not None:
                ctx.report_api(alias, api)
        return None

    def leave_ImportFrom(self, ctx: RuleContext, original: cst.ImportFrom, updated):
        if original.relative or original.module is None or _guarded_import(ctx, original):
            return None
        module = get_full_name_for_node(original.module)
        if not module:
            return None
        api = module_entry(module)
        if api is not None:
            ctx.report_api(original.module, api)
            return None
        if isinstance(original.names, cst.ImportStar):
            return None
        for alias in original.names:  # ``from numba import cuda``
            api = API.get(f"module:{module}.{alias.name.value}") if isinstance(alias.name, cst.Name) else None
            if api is not None:
                ctx.report_api(alias, api)
        return None

    # ---- .cu sources -----------------------------------------------------------------------------
    def leave_SimpleString(self, ctx: RuleContext, original: cst.SimpleString, updated):
        value = string_value(original)
        if value is None or not CUDA_SOURCE_RE.fullmatch(value):
            return None
        if _is_docstring(ctx, original) or _inside_reported_call(ctx, original):
            return None
        ctx.report_api(original, API[_CU_SOURCE])
        return None

    # ---- CUDA_VISIBLE_DEVICES writes -------------------------------------------------------------
    def leave_Assign(self, ctx: RuleContext, original: cst.Assign, updated):
        for target in original.targets:
            self._check_target(ctx, target.target)
        return None

    def leave_AugAssign(self, ctx: RuleContext, original: cst.AugAssign, updated):
        self._check_target(ctx, original.target)
        return None

    def leave_AnnAssign(self, ctx: RuleContext, original: cst.AnnAssign, updated):
        if original.value is not None:
            self._check_target(ctx, original.target)
        return None

    def _check_target(self, ctx: RuleContext, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._check_target(ctx, el.value)
            return
        if isinstance(target, cst.StarredElement):
            self._check_target(ctx, target.value)
            return
        if isinstance(target, cst.Subscript) and _subscript_key(target) == ENV_VAR:
            ctx.report_api(target, API["env:" + ENV_VAR])
            return
        if isinstance(target, cst.Attribute):  # a write to a module attribute, not a local rebinding
            qual = ctx.qualname(target)
            api = lookup(qual) if qual else None
            if api is not None and api.status is Status.UNSUPPORTED:
                ctx.report_api(target, api)

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated):
        func = original.func
        attr = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else None
        if attr in _ENV_SETTERS and original.args and string_value(original.args[0].value) == ENV_VAR \
                and original.args[0].keyword is None:
            ctx.report_api(original, API["env:" + ENV_VAR])
        elif attr == "update":
            for arg in original.args:
                if arg.keyword is not None and arg.keyword.value == ENV_VAR:
                    ctx.report_api(arg, API["env:" + ENV_VAR])
        return None

    def leave_DictElement(self, ctx: RuleContext, original: cst.DictElement, updated):
        if string_value(original.key) == ENV_VAR:
            ctx.report_api(original, API["env:" + ENV_VAR])
        return None

    # ---- raw handles -----------------------------------------------------------------------------
    def leave_Attribute(self, ctx: RuleContext, original: cst.Attribute, updated):
        api_name = _RAW_HANDLES.get(original.attr.value)
        if api_name is None:
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.AssignTarget) or (isinstance(parent, (cst.AugAssign, cst.AnnAssign)) and parent.target is original):
            return None
        comparison = ctx.parent(parent) if isinstance(parent, cst.ComparisonTarget) else parent
        if handle_identity_comparison(comparison):
            return None  # ``a.cuda_stream == b.cuda_stream``: ported to ``a == b`` (device_comparisons)
        ctx.report_api(original, API[api_name])
        return None


# ---- helpers ------------------------------------------------------------------------------------

def _subscript_key(node: cst.Subscript) -> Optional[str]:
    if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
        return string_value(node.slice[0].slice.value)
    return None


def _handler_catches_import_error(handler: cst.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elements if isinstance(handler.type, cst.Tuple) else [handler.type]
    for t in types:
        expr = t.value if isinstance(t, cst.Element) else t
        name = get_full_name_for_node(expr) or ""
        if name.rpartition(".")[2] in _IMPORT_ERRORS:
            return True
    return False


def _guarded_import(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """True inside the body of a ``try:`` that catches ImportError (or broader)."""
    child, p = node, ctx.parent(node)
    while p is not None and not isinstance(p, (cst.FunctionDef, cst.ClassDef, cst.Module)):
        if isinstance(p, cst.Try) and p.body is child:
            if any(_handler_catches_import_error(h) for h in p.handlers):
                return True
        child, p = p, ctx.parent(p)
    return False


def _is_docstring(ctx: RuleContext, node: cst.CSTNode) -> bool:
    parent = ctx.parent(node)
    while isinstance(parent, cst.ConcatenatedString):
        parent = ctx.parent(parent)
    return isinstance(parent, cst.Expr)


def _inside_reported_call(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """True inside the arguments of a call to an unsupported registry API (reported at the callee)."""
    p: Union[cst.CSTNode, None] = ctx.parent(node)
    while p is not None and not isinstance(p, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
        if isinstance(p, cst.Call):
            qual = ctx.qualname(p.func)
            api = lookup(qual) if qual else None
            if api is not None and api.status is Status.UNSUPPORTED:
                return True
        p = ctx.parent(p)
    return False
