"""``torch.load`` without ``map_location`` in code that uses CUDA.

A checkpoint written by a GPU run holds storages tagged ``cuda:N``; ``torch.load(path)`` restores
them there and fails on a machine without CUDA. In a file that uses CUDA, such a call gets
``map_location=runtime_shim.load_location()`` (``--target torch``: ``None if device.type == "cuda" else
device``): ``None`` on CUDA (torch's own default, so nothing
changes there), elsewhere a callable that puts storages saved on CUDA on the chosen device and
leaves the others where they were saved. Calls that pass ``map_location`` (by keyword or as the
second argument), ``*args`` or ``**kwargs`` are left alone.

The file is judged in its project (``project_index.py``): in a project where some file uses CUDA,
a helper module's ``torch.load(path)`` loads the checkpoints its CUDA-using callers saved, so it is
ported even when that file has no other CUDA use. A file ported on its own (no project index), or
a project with no CUDA use, keeps a file whose only change would be this one byte-identical.
"""

from __future__ import annotations

import libcst as cst

from ..project_index import in_project_run, project_of
from ..registry import handled_by
from ..targets import DEVICE_VALUE
from .base import Example, Rule, RuleContext, device_expression, device_type_expression, free_quote, keyword_arg

#: Registry entries this rule ports (issue 13): ``torch.load``.
HANDLES = handled_by("checkpoints")
CODE = "TDM116"
_DV = f"device = {DEVICE_VALUE}\n"  # the torch target's device value, as the examples show it


class Checkpoints(Rule):
    name = "checkpoints"
    VALID = (
        "import torch\nsd = torch.load(path)\n",
        "import pickle\nsd = pickle.load(f)  # from a cuda run\n",
    )
    # The file uses CUDA (``.cuda()``, ``torch.cuda``: ported by other rules, left here), so its checkpoints
    # may hold CUDA storages.
    INVALID = (
        # map_location given (keyword or second argument) or hidden in *args/**kwargs: left as it is.
        Example("import torch\nmodel = model.cuda()\na = torch.load(p, map_location='cpu')\nb = torch.load(p, 'cpu')\n"
                "c = torch.load(*args, **kwargs)\nsd = torch.load(path)\n",
                "import torch\nimport runtime_shim\n\nmodel = model.cuda()\na = torch.load(p, map_location='cpu')\n"
                "b = torch.load(p, 'cpu')\nc = torch.load(*args, **kwargs)\n"
                "sd = torch.load(path, map_location=runtime_shim.load_location())\n", ("TDM116",),
                torch="import torch\n\n" + _DV + "\nmodel = model.cuda()\na = torch.load(p, map_location='cpu')\n"
                      "b = torch.load(p, 'cpu')\nc = torch.load(*args, **kwargs)\n"
                      "sd = torch.load(path, map_location=None if device.type == \"cuda\" else device)\n"),
        Example("import torch as th\nth.cuda.synchronize()\nsd = th.load(path, weights_only=True)\n",
                "import torch as th\nimport runtime_shim\n\nth.cuda.synchronize()\n"
                "sd = th.load(path, weights_only=True, map_location=runtime_shim.load_location())\n", ("TDM116",),
                torch="import torch as th\n\n" + _DV.replace("torch.", "th.") + "\nth.cuda.synchronize()\n"
                      "sd = th.load(path, weights_only=True, map_location=None if device.type == \"cuda\" else device)\n"),
    )

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        api = ctx.qualname(original.func)
        if api not in HANDLES:
            return None
        if any(a.star for a in original.args) or any(a.keyword is not None and a.keyword.value == "map_location"
                                                     for a in original.args):
            return None
        if sum(1 for a in original.args if a.keyword is None) >= 2:
            return None
        args = list(updated.args)
        new_arg = keyword_arg("map_location", self._location(ctx, original, api))  # type: ignore[arg-type]
        if args:
            # The new argument goes last; comments stay where they are, and a call laid out one
            # argument per line stays so (trailing comma kept).
            last = args[-1]
            before = updated.whitespace_before_args
            if isinstance(last.comma, cst.Comma):
                after = last.comma.whitespace_after
                if isinstance(after, cst.ParenthesizedWhitespace) and isinstance(before, cst.ParenthesizedWhitespace):
                    args[-1] = last.with_changes(comma=last.comma.with_changes(
                        whitespace_after=after.with_changes(indent=before.indent, last_line=before.last_line)))
                    new_arg = new_arg.with_changes(comma=cst.Comma(whitespace_after=cst.ParenthesizedWhitespace(
                        indent=after.indent, last_line=after.last_line)))
                else:
                    args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=cst.SimpleWhitespace(" ")))
                    new_arg = new_arg.with_changes(comma=cst.Comma(whitespace_after=after))
            else:
                # ``load(f  # note)``: the comment after the last argument now follows the new one.
                args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                                             whitespace_after_arg=cst.SimpleWhitespace(""))
                new_arg = new_arg.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        args.append(new_arg)
        return ctx.rewrite(original, updated.with_changes(args=args), api, CODE,  # type: ignore[arg-type]
                           "torch.load now maps storages saved on CUDA to the chosen device (unchanged on CUDA).",
                           alone=in_project_run(ctx) and project_of(ctx).uses_cuda)

    @staticmethod
    def _location(ctx: RuleContext, original: cst.Call, api: str) -> cst.BaseExpression:
        """``runtime_shim.load_location()``, or the torch target's ``None if {device_type} == "cuda" else {device}``
        (None on CUDA: each tensor keeps its saved ``cuda:N``, as in the original)."""
        if ctx.target == "torch":
            ctx.port(api)
            quote = free_quote(ctx, original) or '"'
            test = cst.Comparison(device_type_expression(ctx, original),
                                  [cst.ComparisonTarget(cst.Equal(), cst.SimpleString(f"{quote}cuda{quote}"))])
            return cst.IfExp(test=test, body=cst.Name("None"), orelse=device_expression(ctx, original))
        return ctx.shim_call("load_location")
