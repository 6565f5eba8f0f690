"""References to registry entries: renames into the shim, and reports of what is not ported.

For every name or attribute whose qualified name (aliases resolved: ``import torch as th``,
``from torch import cuda``, ``import torch.cuda as tc``, ``from torch.cuda import Event``) is in
the registry:

* a ``rename`` entry (``torch.cuda.Event`` -> ``runtime_shim.Event``) is rewritten in place, called
  or not; a ``from torch.cuda import X`` that becomes unused is removed;
* an ``UNSUPPORTED`` entry is reported with its reason code, hint and line, and left as is;
* a ``torch.cuda`` / ``torch.backends.cuda`` name that the registry does not know is reported (TDM303).

``torch.cuda.is_available()`` becomes ``runtime_shim.is_available()``: whether there is an
accelerator (false on a CPU-only machine, as the original answered there), so a flag such as
``use_amp = torch.cuda.is_available()`` keeps the original's CPU path. Three exceptions:

* A stated GPU requirement (``assert torch.cuda.is_available(), "..."``, ``if not
  torch.cuda.is_available(): raise ...`` / ``sys.exit(...)``, or the ``else`` branch of the test
  raising) becomes ``runtime_shim.device_usable()``: ``torch.cuda.is_available()`` on CUDA, true
  elsewhere, so the code runs on the chosen device instead of stopping (TDM114, in the report).
* In the test of an ``if``, a ``while`` or a conditional expression (``A if c else B``) one of whose
  branches keeps CUDA code that is not ported (something reported as unsupported or left for
  review, a ``'cuda'`` string not proven a device), it guards CUDA-only code and becomes
  ``runtime_shim.accelerator_type() == "cuda"``: true exactly on CUDA (``is_available()`` is also
  true on XPU and MPS), so the branch that would fail elsewhere stays off there. The same holds for
  the left operand of ``and`` / ``or`` whose right operand keeps such code.

``torch.cuda.device_count()`` becomes ``runtime_shim.device_count()`` (0 on a CPU-only machine, as
the original), except where the count decides how many processes start (``nprocs=``,
``world_size=``, ``range(...)`` of a loop that starts processes, directly or through a name
assigned from it): there it becomes ``runtime_shim.worker_count()``, at least one on the CPU, so
the work the original silently skipped is done.

Answers the shim gives only on CUDA are reported where they are read: an attribute of
``get_device_properties(i)`` outside ``registry.DEVICE_PROPERTY_ATTRIBUTES`` (TDM213), a
``memory_stats()`` key outside ``registry.MEMORY_STATS_KEYS`` read with ``[key]`` or ``.get(key)``
(no default)
(TDM212).
"""

from __future__ import annotations

from typing import Callable, List, Optional, Union

import libcst as cst

from ..findings import FindingStatus
from ..registry import (
    DEVICE_PROPERTY_ATTRIBUTES,
    MEMORY_STATS_KEYS,
    REASONS,
    Api,
    Status,
    entries,
    handled_by,
    is_cuda_namespace,
    lookup,
)
from ..targets import Spelling
from .base import (
    RANK_NAME_RE,
    Example,
    GuardsStatements,
    NodeVisitor,
    Rule,
    RuleContext,
    forget_rewrite,
    free_quote,
    is_reference_site,
    is_store_target,
    report_kept,
    rewrite_ported,
    root_name,
    string_value,
    target_name,
    walk,
)
from .review import has_leftover_device_strings

# The registry entries this rule ports: every pure rename (the UNSUPPORTED ones it reports are looked up by name).
HANDLES = handled_by("registry_renames")
# Review code for a site the torch target leaves in place (no exact torch spelling there).
KEPT_CODE = "TDM307"
_WORKER_MESSAGE = ("The number of worker processes to start: at least one on a machine without an accelerator, "
                   "so the work is done.")


def _is_dotted_name(node: cst.CSTNode) -> bool:
    return root_name(node) is not None


def _port_variant(ctx: RuleContext, api: Api, variant: str) -> Spelling:
    """``ctx.port(api, variant)``, the variant looked up under any registry name of the same rename
    (``torch.cuda.random.device_count`` shares ``torch.cuda.device_count``'s)."""
    names = [api.name] + sorted(a.name for a in entries()
                                if a.rename and a.shim_name == api.shim_name and a.name != api.name)
    for name in names:
        try:
            return ctx.port(name, variant)
        except KeyError:
            continue
    raise KeyError(f"{api.name!r} has no variant {variant!r}")


def _called(ctx: RuleContext, ref: cst.CSTNode) -> Optional[cst.Call]:
    call = ctx.parent(ref)
    return call if isinstance(call, cst.Call) and call.func is ref else None


def _is_index_argument(node: cst.BaseExpression) -> bool:
    """An int device index for sure: an int literal, ``None``, or a name that says rank / GPU index."""
    if isinstance(node, cst.Integer) or (isinstance(node, cst.Name) and node.value == "None"):
        return True
    name = target_name(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
    return name is not None and RANK_NAME_RE.fullmatch(name) is not None


def _torch_kept_reason(ctx: RuleContext, ref: cst.CSTNode, shim_name: str, spelling: Spelling) -> Optional[str]:
    """Why the torch spelling is not exact at this site (None: it is)."""
    if spelling.kept:
        return spelling.note
    call = _called(ctx, ref)
    if shim_name == "device_context" and not (
            call is not None and len(call.args) == 1 and call.args[0].keyword is None and not call.args[0].star
            and _is_index_argument(call.args[0].value)):
        return spelling.note
    if (spelling.text.startswith("torch.accelerator.") and call is not None
            and any(a.keyword is not None or a.star == "**" for a in call.args)):
        return (f"`{spelling.text}` takes positional arguments only; this call passes keywords. "
                "Port it by hand (pass them by position), or use the default --target shim.")
    return None


class RegistryRenames(GuardsStatements, Rule):
    name = "registry-renames"
    VALID = (
        "torch.backends.cudnn.benchmark = True\n",
        "import torch\nkey = 'torch.cuda.synchronize'\n",
        "def synchronize():\n    pass\nsynchronize()\n",
        "import runtime_shim\ntotal = runtime_shim.get_device_properties(0).total_memory\n",
        # A guard written by a previous run is left alone (and not listed for review).
        "import runtime_shim\nif runtime_shim.accelerator_type() == 'cuda':\n    import pynvml\n",
        # Attributes answered on every backend are not reported.
        "import runtime_shim\nprops = runtime_shim.get_device_properties(0)\nprint(props.name, props.major)\n",
    )
    INVALID = (
        # --target torch: a statement that raises on a CPU-only torch is guarded, a value is listed (TDM115).
        Example(
            'import torch\n'
            'torch.cuda.synchronize()\n'
            'used = torch.cuda.memory_allocated()\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'runtime_shim.synchronize()\n'
            'used = runtime_shim.memory_allocated()\n',
            ('TDM104', 'TDM105'),
            torch='import torch\n'
                  'if torch.accelerator.is_available():\n'
                  '    torch.accelerator.synchronize()\n'
                  'used = torch.accelerator.memory_allocated()\n',
            torch_codes=('TDM104', 'TDM105', 'TDM115'),
        ),
        # ... but not guarded twice.
        Example(
            'import torch\n'
            'if torch.cuda.is_available():\n'
            '    torch.cuda.empty_cache()\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'if runtime_shim.is_available():\n'
            '    runtime_shim.empty_cache()\n',
            ('TDM102', 'TDM105'),
            torch='import torch\n'
                  'if torch.accelerator.is_available():\n'
                  '    torch.accelerator.empty_cache()\n',
        ),
        # torch's own name, exact everywhere: the same in both targets.
        Example(
            'import torch\n'
            'try:\n'
            '    pass\n'
            'except torch.cuda.OutOfMemoryError:\n'
            '    pass\n',
            'import torch\n'
            'try:\n'
            '    pass\n'
            'except torch.OutOfMemoryError:\n'
            '    pass\n',
            ('TDM107',),
            torch='import torch\n'
                  'try:\n'
                  '    pass\n'
                  'except torch.OutOfMemoryError:\n'
                  '    pass\n',
        ),
        # No torch spelling emits NVTX on CUDA and works elsewhere: --target torch leaves it (TDM307).
        Example(
            'import torch\n'
            "torch.cuda.nvtx.range_push('step')\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "runtime_shim.nvtx_range_push('step')\n",
            ('TDM112',),
            torch='import torch\n'
                  "torch.cuda.nvtx.range_push('step')\n",
            torch_codes=('TDM307',),
        ),
        Example(
            'import torch\n'
            'n = torch.cuda.device_count()\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'n = runtime_shim.device_count()\n',
            ('TDM102',),
            torch='import torch\n'
                  'n = torch.accelerator.device_count()\n',
        ),
        Example(
            'import torch as th\n'
            'th.cuda.synchronize()\n',
            'import torch as th\n'
            'import runtime_shim\n'
            '\n'
            'runtime_shim.synchronize()\n',
            ('TDM104',),
            torch='import torch as th\n'
                  'if th.accelerator.is_available():\n'
                  '    th.accelerator.synchronize()\n',
        ),
        Example(
            'from torch import cuda\n'
            'ok = cuda.is_available()\n',
            'from torch import cuda\n'
            'import runtime_shim\n'
            '\n'
            'ok = runtime_shim.is_available()\n',
            ('TDM102',),
            torch='from torch import cuda\n'
                  'import torch\n'
                  '\n'
                  'ok = torch.accelerator.is_available()\n',
        ),
        Example(
            'import torch.cuda as tc\n'
            'tc.set_device(rank)\n',
            'import torch.cuda as tc\n'
            'import runtime_shim\n'
            '\n'
            'runtime_shim.set_device(rank)\n',
            ('TDM102',),
            torch='import torch.cuda as tc\n'
                  'import torch\n'
                  '\n'
                  'if torch.accelerator.is_available():\n'
                  '    torch.accelerator.set_device_index(rank)\n',
        ),
        Example(
            'from torch.cuda import Event\n'
            'e = Event(enable_timing=True)\n',
            'import runtime_shim\n'
            '\n'
            'e = runtime_shim.Event(enable_timing=True)\n',
            ('TDM104',),
            torch='import torch\n'
                  '\n'
                  'e = torch.Event(enable_timing=True)\n',
            torch_codes=('TDM104', 'TDM115'),
        ),
        # A stated GPU requirement: still checked on CUDA, relaxed elsewhere (TDM114).
        Example(
            'import torch\n'
            "assert torch.cuda.is_available(), 'needs a GPU'\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "assert runtime_shim.device_usable(), 'needs a GPU'\n",
            ('TDM114',),
            torch='import torch\n'
                  "assert torch.cuda.is_available(), 'needs a GPU'\n",
            torch_codes=('TDM307',),
        ),
        Example(
            'import sys, torch\n'
            'if not torch.cuda.is_available():\n'
            "    sys.exit('no GPU')\n",
            'import sys, torch\n'
            'import runtime_shim\n'
            '\n'
            'if not runtime_shim.device_usable():\n'
            "    sys.exit('no GPU')\n",
            ('TDM114',),
            torch='import sys, torch\n'
                  'if not torch.cuda.is_available():\n'
                  "    sys.exit('no GPU')\n",
            torch_codes=('TDM307',),
        ),
        # A count that decides how many processes start: at least one on the CPU.
        Example(
            'import torch\n'
            'import torch.multiprocessing as mp\n'
            'world_size = torch.cuda.device_count()\n'
            'mp.spawn(run, nprocs=world_size)\n',
            'import torch\n'
            'import torch.multiprocessing as mp\n'
            'import runtime_shim\n'
            '\n'
            'world_size = runtime_shim.worker_count()\n'
            'mp.spawn(run, nprocs=world_size)\n',
            ('TDM102',),
            torch='import torch\n'
                  'import torch.multiprocessing as mp\n'
                  'world_size = max(torch.accelerator.device_count(), 1)\n'
                  'mp.spawn(run, nprocs=world_size)\n',
        ),
        Example(
            'import torch\n'
            'with torch.cuda.device(1):\n'
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'with runtime_shim.device_context(1):\n'
            '    pass\n',
            ('TDM102',),
            torch='import torch\n'
                  'with torch.accelerator.device_index(1):\n'
                  '    pass\n',
            torch_codes=('TDM102', 'TDM115'),
        ),
        Example(
            'import torch\n'
            'from torch.utils.cpp_extension import load\n'
            'if torch.cuda.is_available():\n'
            "    ext = load('k', ['k.cu'])\n",
            'import torch\n'
            'from torch.utils.cpp_extension import load\n'
            'import runtime_shim\n'
            '\n'
            'if runtime_shim.accelerator_type() == "cuda":\n'
            "    ext = load('k', ['k.cu'])\n",
            ('TDM102', 'TDM202'),
            torch='import torch\n'
                  'from torch.utils.cpp_extension import load\n'
                  'if torch.cuda.is_available():\n'
                  "    ext = load('k', ['k.cu'])\n",
            torch_codes=('TDM202',),
        ),
        # The CUDA branch keeps an unsupported API (reported): CUDA only.
        Example(
            'import torch\n'
            'g = torch.cuda.default_generators[0] if torch.cuda.is_available() else None\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'g = torch.cuda.default_generators[0] if runtime_shim.accelerator_type() == "cuda" else None\n',
            ('TDM102', 'TDM211'),
            torch='import torch\n'
                  'g = torch.cuda.default_generators[0] if torch.cuda.is_available() else None\n',
            torch_codes=('TDM211',),
        ),
        # The left operand of `and` guards the right one; so does the test of a `while` loop.
        Example(
            'import torch\n'
            'g = torch.cuda.is_available() and torch.cuda.CUDAGraph()\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'g = runtime_shim.accelerator_type() == "cuda" and torch.cuda.CUDAGraph()\n',
            ('TDM102', 'TDM201'),
            torch='import torch\n'
                  'g = torch.cuda.is_available() and torch.cuda.CUDAGraph()\n',
            torch_codes=('TDM201',),
        ),
        # A negated test guarding an unported string in the else branch.
        Example(
            'import torch\n'
            'if not torch.cuda.is_available():\n'
            "    name = 'cpu'\n"
            'else:\n'
            "    name = run('cuda')\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'if not runtime_shim.accelerator_type() == "cuda":\n'
            "    name = 'cpu'\n"
            'else:\n'
            "    name = run('cuda')\n",
            ('TDM102', 'TDM301'),
            torch='import torch\n'
                  'if not torch.cuda.is_available():\n'
                  "    name = 'cpu'\n"
                  'else:\n'
                  "    name = run('cuda')\n",
            torch_codes=('TDM301',),
        ),
    )

    def _leave_ref(self, ctx: RuleContext, original: Union[cst.Name, cst.Attribute], updated):
        if ctx.is_shim_ref(original):
            return None
        if not _is_dotted_name(original):
            if isinstance(original, cst.Attribute):
                self.visit_Attribute_for_property(ctx, original)
            return None  # an attribute of a call result (``get_device_properties(0).total_memory``)
        if isinstance(original, cst.Attribute) and isinstance(original.value, cst.Name):
            self.visit_Attribute_for_property(ctx, original)  # ``props.L2_cache_size``
        qual = ctx.qualname(original)
        if qual is None or not (qual.startswith("torch.") or qual.startswith("literal:")):
            return None
        api = lookup(qual)
        if api is None:
            if is_cuda_namespace(qual) and is_reference_site(ctx, original):
                ctx.report(original, qual, FindingStatus.REVIEW, "TDM303")
            return None
        if not is_reference_site(ctx, original):
            return None
        if api.status is Status.UNSUPPORTED:
            ctx.report_api(original, api)
            return None
        if not api.rename:
            return None
        shim_name = api.shim_name
        worker = shim_name == "device_count" and _is_worker_count(ctx, original)
        spelling = ctx.port(api.name)
        message = ""
        new: cst.BaseExpression
        if shim_name is None:  # torch's own name (torch.OutOfMemoryError): the same in every target
            new = ctx.torch_ref(api.replacement)
        elif ctx.target == "torch":
            if worker:
                return None  # the whole call is ported (leave_Call)
            kept = _torch_kept_reason(ctx, original, shim_name, spelling)
            if kept is not None:
                report_kept(ctx, original, api.name, Spelling("", note=kept), KEPT_CODE)
                return None
            new = ctx.torch_ref(spelling.text)
        else:
            new = ctx.shim("worker_count" if worker else shim_name)
            message = _WORKER_MESSAGE if worker else ""
        if isinstance(updated, (cst.Name, cst.Attribute)):
            new = new.with_changes(lpar=updated.lpar, rpar=updated.rpar)
        result = rewrite_ported(ctx, original, new, api.name, api.code, spelling, message)
        removed = None
        if result is not None and isinstance(original, cst.Name):
            module, _, obj = api.name.rpartition(".")
            removed = (module, obj, original.value if original.value != obj else None)
            ctx.removed_from_imports.add(removed)
        if result is not None and shim_name == "is_available":
            _renamed_availability(ctx)[result] = (original, removed)
        return result

    leave_Name = _leave_ref
    leave_Attribute = _leave_ref

    def leave_If(self, ctx: RuleContext, original: cst.If, updated: cst.If):
        if _stops(ctx, original.body):
            _report_count_requirement(ctx, original.test)
        required = _stated_requirement(ctx, original)
        if required is not None:
            new_test = updated.test.visit(_RequirementReplacer(ctx, required))
            return updated.with_changes(test=new_test) if new_test is not updated.test else None
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_Assert(self, ctx: RuleContext, original: cst.Assert, updated: cst.Assert):
        """``assert torch.cuda.is_available(), "needs a GPU"``: a stated GPU requirement."""
        _report_count_requirement(ctx, original.test)
        if not _is_availability_call(ctx, original.test):
            return None
        new_test = updated.test.visit(_RequirementReplacer(ctx, original.test))  # type: ignore[arg-type]
        return updated.with_changes(test=new_test) if new_test is not updated.test else None

    # -- answers the shim does not give on every backend: reported where they are read ----------
    def leave_Subscript(self, ctx: RuleContext, original: cst.Subscript, updated: cst.Subscript):
        """``torch.cuda.memory_stats()[key]`` with a key the shim does not answer everywhere."""
        if len(original.slice) == 1 and isinstance(original.slice[0].slice, cst.Index):
            key = original.slice[0].slice.value
            _check_memory_key(ctx, original.value, key, original)
        return None

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        """``torch.cuda.memory_stats().get(key)`` (no default: None where the shim has no answer)
        with a key the shim does not answer everywhere; ``.get(key, default)`` never fails."""
        func = original.func
        if ctx.target == "torch" and not original.args and _is_dotted_name(func):
            api = lookup(ctx.qualname(func) or "")
            if (api is not None and api.rename and api.shim_name == "device_count" and is_reference_site(ctx, func)
                    and _is_worker_count(ctx, func)):
                spelling = _port_variant(ctx, api, "worker_count")
                new = ctx.torch_ref(spelling.text).with_changes(lpar=updated.lpar, rpar=updated.rpar)
                return rewrite_ported(ctx, original, new, api.name, api.code, spelling, _WORKER_MESSAGE)
        if (isinstance(func, cst.Attribute) and func.attr.value == "get" and len(original.args) == 1
                and original.args[0].keyword is None):
            _check_memory_key(ctx, func.value, original.args[0].value, original)
        return None

    def visit_Attribute_for_property(self, ctx: RuleContext, original: cst.Attribute) -> None:
        if ctx.target == "torch":
            return  # torch's own get_device_properties: exact on CUDA (the call itself is reported CPU-unsafe)
        if original.attr.value in DEVICE_PROPERTY_ATTRIBUTES or not _comes_from(ctx, original.value, PROPERTIES):
            return
        if is_store_target(ctx, original):
            return
        attr = original.attr.value
        ctx.report(original, _entry_of(ctx, original.value, PROPERTIES), FindingStatus.UNSUPPORTED, "TDM213",
                   f"`.{attr}` of get_device_properties(...): " + REASONS["TDM213"].description)

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_While(self, ctx: RuleContext, original: cst.While, updated: cst.While):
        return self._cuda_only_guard(ctx, original, updated, [original.body, original.orelse])

    def leave_BooleanOperation(self, ctx: RuleContext, original: cst.BooleanOperation, updated: cst.BooleanOperation):
        """``torch.cuda.is_available() and <unported CUDA>``: the left operand guards the right one."""
        return self._cuda_only_guard(ctx, original, updated, [original.right], test="left")

    def _cuda_only_guard(self, ctx: RuleContext, original, updated, branches, test: str = "test"):
        calls = _availability_calls(ctx, getattr(original, test))
        if not calls or not any(b is not None and _keeps_unported_cuda(ctx, b) for b in branches):
            return None
        replacer = _GuardReplacer(ctx, calls)
        new_test = getattr(updated, test).visit(replacer)
        return updated.with_changes(**{test: new_test}) if replacer.done else None


class _CallsFinder(NodeVisitor):
    """The calls under a node (in source order) that ``wanted(call)`` accepts. (A visitor class made
    once, not in each call: a class made in a function is a reference cycle, which would hold the
    file's tree until the cyclic collector runs.)"""

    def __init__(self, wanted: Callable[[cst.Call], bool]) -> None:
        self.wanted = wanted
        self.found: List[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> bool:
        if self.wanted(node):
            self.found.append(node)
        return True


def _calls(node: cst.CSTNode, wanted: Callable[[cst.Call], bool]) -> List[cst.Call]:
    finder = _CallsFinder(wanted)
    walk(finder, node)
    return finder.found


def _availability_calls(ctx: RuleContext, test: cst.BaseExpression) -> List[cst.Call]:
    """``torch.cuda.is_available()`` calls in an ``if`` test, in source order."""
    return _calls(test, lambda node: not node.args and ctx.qualname(node.func) == "torch.cuda.is_available")


def _keeps_unported_cuda(ctx: RuleContext, branch: cst.CSTNode) -> bool:
    """Whether a finished branch holds a site reported as unsupported or for review, or a CUDA
    device string that no rule ported (it will be listed for review after the rules ran)."""
    pos = ctx.position(branch)
    if pos is None:
        return False
    start, end = (pos.start.line, pos.start.column), (pos.end.line, pos.end.column)
    # A CPU-unsafe torch spelling (TDM115, status REWRITTEN) is ported, not left: it does not make the branch CUDA-only.
    if any(start <= (f.line, f.column - 1) < end for f in ctx.other_findings if f.status is not FindingStatus.REWRITTEN):
        return True
    return has_leftover_device_strings(ctx, branch)


class _GuardReplacer(cst.CSTTransformer):
    """Turns the (already renamed) ``runtime_shim.is_available()`` calls into a CUDA check."""

    def __init__(self, ctx: RuleContext, originals: List[cst.Call]) -> None:
        super().__init__()
        self.ctx, self.originals, self.index, self.done = ctx, originals, 0, False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        renamed = _renamed_availability(self.ctx).get(original.func)  # `updated` is a copy
        if renamed is None or updated.args or self.ctx.parent(renamed[0]) not in self.originals:
            return updated
        source = self.ctx.parent(renamed[0])
        assert source is not None
        if self.ctx.target == "torch":  # kept as it is: exact on CUDA, False everywhere else
            self.done = True
            return _undo_availability(self.ctx, updated, renamed)
        quote = free_quote(self.ctx, source)
        if quote is None:
            return updated
        check = cst.Comparison(self.ctx.shim_call("accelerator_type"),
                               [cst.ComparisonTarget(cst.Equal(), cst.SimpleString(f"{quote}cuda{quote}"))],
                               lpar=updated.lpar, rpar=updated.rpar)
        new = self.ctx.rewrite(source, check, "torch.cuda.is_available", "TDM102",
                               "Guards CUDA-only code: true only when the chosen device is a CUDA GPU.")
        if new is None:
            return updated
        self.done = True
        return new  # type: ignore[return-value]


def _renamed_availability(ctx: RuleContext) -> dict:
    """The ``is_available`` references this rule renamed in this file: new node -> (original
    reference, the import entry it scheduled for removal or None)."""
    return ctx.__dict__.setdefault("_renamed_availability", {})


def _undo_availability(ctx: RuleContext, updated: cst.Call, renamed) -> cst.Call:
    """``updated`` with its renamed callee back to the original reference, its rewrite forgotten."""
    original, removed = renamed
    forget_rewrite(ctx, original)
    if removed is not None:
        ctx.removed_from_imports.discard(removed)
    return updated.with_changes(func=original)


# ---- stated GPU requirements --------------------------------------------------------------------
_EXITS = {"sys.exit", "builtins.exit", "builtins.quit", "exit", "quit", "os._exit"}


def _is_availability_call(ctx: RuleContext, node: cst.CSTNode) -> bool:
    return (isinstance(node, cst.Call) and not node.args
            and ctx.qualname(node.func) in ("torch.cuda.is_available",))


def _stops(ctx: RuleContext, block: Optional[cst.CSTNode]) -> bool:
    """Whether a block's own statements raise or exit the program (not inside a nested block)."""
    if isinstance(block, cst.Else):
        block = block.body
    if not isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite)):
        return False
    lines = block.body if isinstance(block, cst.IndentedBlock) else [block]
    for line in lines:
        small = getattr(line, "body", ())
        if not isinstance(line, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            continue
        for stmt in small:
            if isinstance(stmt, cst.Raise):
                return True
            if isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.Call):
                names = ctx.qualnames(stmt.value.func)
                if names & _EXITS:
                    return True
    return False


def _stated_requirement(ctx: RuleContext, node: cst.If) -> Optional[cst.Call]:
    """The ``torch.cuda.is_available()`` call of ``if not torch.cuda.is_available(): raise ...``
    (or ``sys.exit``), or of ``if torch.cuda.is_available(): ... else: raise ...``."""
    test = node.test
    if (isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not)
            and _is_availability_call(ctx, test.expression) and _stops(ctx, node.body)):
        return test.expression  # type: ignore[return-value]
    if _is_availability_call(ctx, test) and isinstance(node.orelse, cst.Else) and _stops(ctx, node.orelse):
        return test  # type: ignore[return-value]
    return None


def _report_count_requirement(ctx: RuleContext, test: cst.BaseExpression) -> None:
    """``assert torch.cuda.device_count() >= 2``: a requirement of several GPUs, left and reported."""
    finder = _CountComparisons(ctx)
    walk(finder, test)
    for call in finder.found:
        ctx.report(call, "torch.cuda.device_count", FindingStatus.REVIEW, "TDM306")


class _CountComparisons(NodeVisitor):
    """``torch.cuda.device_count()`` calls compared with something (``>= 2``), in source order."""

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        self.found: List[cst.Call] = []

    def visit_Comparison(self, node: cst.Comparison) -> None:
        for operand in [node.left] + [t.comparator for t in node.comparisons]:
            if (isinstance(operand, cst.Call) and not operand.args
                    and self.ctx.qualname(operand.func) in ("torch.cuda.device_count", "torch.cuda.random.device_count")):
                self.found.append(operand)


class _RequirementReplacer(cst.CSTTransformer):
    """Turns the (already renamed) ``runtime_shim.is_available()`` of a stated GPU requirement into
    ``runtime_shim.device_usable()``: ``torch.cuda.is_available()`` on CUDA, true elsewhere."""

    def __init__(self, ctx: RuleContext, source: cst.Call) -> None:
        super().__init__()
        self.ctx, self.source, self.done = ctx, source, False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        renamed = _renamed_availability(self.ctx).get(original.func)  # `updated` is a copy
        if self.done or updated.args or renamed is None or self.ctx.parent(renamed[0]) is not self.source:
            return updated
        if self.ctx.target == "torch":  # no torch spelling relaxes a requirement: left in place, reported
            self.done = True
            spelling = self.ctx.port("torch.cuda.is_available", "requirement")
            report_kept(self.ctx, self.source, "torch.cuda.is_available", spelling, KEPT_CODE)
            return _undo_availability(self.ctx, updated, renamed)
        new = updated.with_changes(func=self.ctx.shim("device_usable"))
        out = self.ctx.rewrite(self.source, new, "torch.cuda.is_available", "TDM114",
                               "A stated GPU requirement: still checked on CUDA; relaxed where the chosen "
                               "device is not a CUDA GPU, so the code runs there instead of stopping.")
        if out is None:
            return updated
        self.done = True
        return out  # type: ignore[return-value]


# ---- counts that decide how many workers start ---------------------------------------------------
_WORKER_KEYWORDS = {"nprocs", "world_size", "num_processes", "nproc_per_node", "nproc", "num_procs", "n_procs"}


def _is_worker_count(ctx: RuleContext, ref: cst.CSTNode) -> bool:
    """``torch.cuda.device_count`` whose call decides how many processes start: an argument
    ``nprocs=`` / ``world_size=``, ``range(...)`` of a loop that starts processes, or a name
    assigned from it that is used so."""
    call = ctx.parent(ref)
    if not (isinstance(call, cst.Call) and call.func is ref and not call.args):
        return False
    if _worker_site(ctx, call):
        return True
    assign = ctx.parent(call)
    if not (isinstance(assign, cst.Assign) and assign.value is call and len(assign.targets) == 1
            and isinstance(assign.targets[0].target, cst.Name)):
        return False
    target = assign.targets[0].target
    if target.value in _WORKER_KEYWORDS:  # world_size = torch.cuda.device_count()
        return True
    scope = ctx.scope(target)
    if scope is None:
        return False
    for assignment in scope.assignments[target.value]:
        for access in getattr(assignment, "references", ()):
            if _worker_site(ctx, access.node) or _names_worker_count(ctx, access.node):
                return True
    return False


def _names_worker_count(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """``world_size = n_gpus``: the count is copied into a name that says it is a number of processes."""
    assign = ctx.parent(node)
    return (isinstance(assign, cst.Assign) and assign.value is node and len(assign.targets) == 1
            and isinstance(assign.targets[0].target, cst.Name) and assign.targets[0].target.value in _WORKER_KEYWORDS)


def _worker_site(ctx: RuleContext, node: cst.CSTNode) -> bool:
    parent = ctx.parent(node)
    if isinstance(parent, cst.Arg) and parent.value is node:
        if parent.keyword is not None and parent.keyword.value in _WORKER_KEYWORDS:
            return True
        call = ctx.parent(parent)
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "range":
            loop = ctx.parent(call)
            return isinstance(loop, cst.For) and loop.iter is call and _starts_processes(loop.body)
    return False


def _starts_processes(block: cst.CSTNode) -> bool:
    return bool(_calls(block, _starts_a_process))


def _starts_a_process(node: cst.Call) -> bool:
    f = node.func
    name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
    return name in ("start", "Process", "spawn", "start_processes", "Popen")


# ---- answers the shim gives only on some backends ----------------------------------------------
PROPERTIES = ("torch.cuda.get_device_properties", "get_device_properties")
MEMORY_STATS = ("torch.cuda.memory_stats", "torch.cuda.memory.memory_stats", "memory_stats")


def _is_call_of(ctx: RuleContext, node: cst.CSTNode, names) -> bool:
    if not isinstance(node, cst.Call):
        return False
    func = node.func
    if ctx.is_shim_ref(func):
        return func.attr.value in names  # type: ignore[attr-defined]
    return ctx.qualname(func) in names


def _comes_from(ctx: RuleContext, node: cst.CSTNode, names) -> bool:
    """``node`` is a call of one of ``names``, or a name whose only assignments in its scope are."""
    if _is_call_of(ctx, node, names):
        return True
    if not isinstance(node, cst.Name):
        return False
    scope = ctx.scope(node)
    if scope is None:
        return False
    accesses = [a for a in scope.accesses[node.value] if a.node is node]
    if len(accesses) != 1:
        return False
    assignments = list(accesses[0].referents)
    if not assignments:
        return False
    for a in assignments:
        target = ctx.parent(a.node) if getattr(a, "node", None) is not None else None
        assign = ctx.parent(target) if target is not None else None
        if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1 and _is_call_of(ctx, assign.value, names)):
            return False
    return True


def _entry_of(ctx: RuleContext, node: cst.CSTNode, names) -> str:
    """The registry entry a finding about what ``node`` answers is filed under: the entry ``node``
    calls (``torch.cuda.memory.memory_stats``), else the first of ``names`` that is one."""
    if isinstance(node, cst.Call) and not ctx.is_shim_ref(node.func):
        qual = ctx.qualname(node.func)
        if qual is not None and lookup(qual) is not None:
            return qual
    return next(n for n in names if lookup(n) is not None)


def _check_memory_key(ctx: RuleContext, value: cst.CSTNode, key: cst.CSTNode, site: cst.CSTNode) -> None:
    text = string_value(key)
    if ctx.target == "torch":
        return  # torch's own memory_stats: exact on CUDA (the call itself is reported CPU-unsafe)
    if text is None or text in MEMORY_STATS_KEYS or not _comes_from(ctx, value, MEMORY_STATS):
        return
    ctx.report(site, _entry_of(ctx, value, MEMORY_STATS), FindingStatus.UNSUPPORTED, "TDM212",
               f"The memory statistic {text!r} is answered only on CUDA and XPU; runtime_shim.memory_stats() "
               "is empty on the CPU (as torch.cuda.memory_stats() was on a CPU-only torch) and has "
               "only the current allocated and reserved bytes on MPS.",
               "Read it only when `runtime_shim.accelerator_type() == 'cuda'`, or use a key answered everywhere.")
