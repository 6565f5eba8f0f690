"""Targets: what a REWRITTEN registry entry becomes, per target. A target is a column, not a second set of rules.

* ``shim`` (the default): the registry's own ``replacement`` (``runtime_shim.synchronize``): portable
  everywhere, CPU included, through the small runtime shim.
* ``torch``: torch's own spelling (``torch.accelerator.synchronize``), for upstream pull requests.
  It needs torch alone (at least ``Spelling.since``), is exact on CUDA, and some calls raise on a
  CPU-only machine (``Spelling.cpu_safe`` is False): those get ``Spelling.guard`` where a statement
  can be guarded, or are listed as CPU-unsafe in the report.

``replacement_for(api_name, target)`` is the one lookup a rule makes. Pure renames are keyed here by
the shim attribute the registry renames to (``torch.cuda.memory.empty_cache`` and
``torch.cuda.empty_cache`` both rename to ``runtime_shim.empty_cache``), so a new alias in the
registry needs no line here; entries done by a rule module are keyed by their registry name.

Templates. A ``text`` that is a dotted name (``torch.accelerator.synchronize``) is a pure rename of
the callee. Otherwise it shows the shape of the port: ``{device}`` is the module's one device value
(``device_value``), ``{device_type}`` is ``{device}.type``; ``x``/``m``/``s``/``i``/``...`` stand for the
site's own operands. An empty ``text`` means torch has no spelling that is exact on CUDA: the torch
target leaves the site in place and reports it.

The device value (issue 11): experts write ``device = torch.accelerator.current_accelerator() or
torch.device("cpu")``. ``current_accelerator()`` without ``check_available=True`` returns "the device of
the accelerator available at compilation time" (its docstring): ``cuda`` on a CUDA build of torch on
a machine without a GPU, where ``torch.zeros(1, device=...)`` then raises. The torch target therefore
uses ``check_available=True`` (torch >= 2.7, pytorch/pytorch#146443).

This module never imports torch (the versions and CPU behaviour below are measured in
``tests/test_targets.py`` against the installed torch).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from .registry import Api, Status, entries, lookup

TARGETS = ("shim", "torch")
DEFAULT_TARGET = "shim"

#: The reusable device value of the torch target, and the minimum torch version it needs.
DEVICE_VALUE = 'torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")'
DEVICE_SINCE = "2.7"
#: The guard a reviewer accepts around a statement-level call that raises on a CPU-only machine.
GUARD = "if torch.accelerator.is_available():"

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

# LibCST is imported inside the functions that build code: config.py and the CLI read TARGETS and
# DEFAULT_TARGET from here without loading LibCST (issue 12: --version and --help stay fast).

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class Spelling:
    """One cell of the target table."""

    text: str  #: replacement template ("" = no exact spelling: left in place and reported)
    since: str = ""  #: minimum torch version of this spelling (device value included); "" for the shim column
    cpu_safe: bool = True  #: runs on a CPU-only torch (measured in tests/test_targets.py)
    note: str = ""
    guard: str = ""  #: for a CPU-unsafe call used as a statement: the line to put it under; "" = report it

    @property
    def is_rename(self) -> bool:
        """True when ``text`` is a dotted name that replaces the callee (``torch.accelerator.synchronize``)."""
        return _DOTTED.fullmatch(self.text) is not None

    @property
    def kept(self) -> bool:
        """True when the torch target leaves the site as it is (no exact spelling)."""
        return not self.text

    @property
    def cpu(self) -> str:
        """``safe``, ``guarded`` (statement-level calls get ``guard``; values are reported) or ``unsafe`` (reported)."""
        return "safe" if self.cpu_safe else "guarded" if self.guard else "unsafe"


def _version(v: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in v.split(".")) if v else ()


def _t(text: str, since: str, cpu_safe: bool = True, note: str = "", guard: str = "") -> Spelling:
    """A torch-column spelling; a template that uses the device value needs torch >= DEVICE_SINCE too."""
    if "{device" in text and _version(since) < _version(DEVICE_SINCE):
        since = DEVICE_SINCE
    return Spelling(text, since, cpu_safe, note, guard)


# Where each minimum version comes from (docs/targets.md prints this table).
SOURCES: Dict[str, str] = {
    "1.0": "`Tensor.device`, `torch.cuda.is_available` (kept as it is).",
    "1.10": "`torch.autocast` (registry entry `since`).",
    "2.3": "`torch.amp.GradScaler(device)`, `torch.nn.attention.sdpa_kernel` (registry `since`); "
           "`torch.get_device_module` (not confirmed in the stored sources: no earlier use seen).",
    "2.4": "`torch.amp.custom_fwd(device_type=)` (registry `since`); device-generic `torch.Stream`/`torch.Event` "
           "(pytorch/pytorch#123611, merged April 2024; from the merge date, not a release's docs).",
    "2.5": "`torch.OutOfMemoryError` (pytorch/pytorch#121702; huggingface/accelerate#3475 uses it \"from PyTorch 2.5.0\").",
    "2.6": "`torch.accelerator` (pytorch/pytorch#132204) with `current_device_index`/`set_device_index` (renamed from "
           "`*_idx` and relanded into release/2.6 by pytorch/pytorch#143186; FIELD_NOTES said 2.7); "
           "`torch.distributed.get_default_backend_for_device` (pytorch/pytorch#140536; sgl-project/sglang#3804: 2.6.0+).",
    "2.7": "`current_accelerator(check_available=True)`, the device value (pytorch/pytorch#146443, Feb 2025).",
    "2.8": "`torch.accelerator.device_index` (pytorch/pytorch#148864; listed in the 2.8 docs, not in 2.7's).",
    "2.9": "`torch.accelerator` memory functions (pytorch/pytorch#152932; in the 2.9 docs, not in 2.8's).",
}

_NO_CPU_ACC = "raises \"Cannot access accelerator device when none is available\" on a CPU-only torch"
_NO_CPU_MOD = "`torch.cpu` has no such function, so it raises AttributeError on a CPU-only torch"

# ---- pure renames, keyed by the shim attribute the registry renames to ------------------------
_RENAMES: Dict[str, Spelling] = {
    "is_available": _t("torch.accelerator.is_available", "2.6",
                       note="Delegates to `torch.cuda.is_available()` on CUDA; True on XPU/MPS too."),
    "device_count": _t("torch.accelerator.device_count", "2.6", note="0 on a CPU-only torch, as the original."),
    "current_device": _t("torch.accelerator.current_device_index", "2.6", False, _NO_CPU_ACC + " (so does the original)."),
    "set_device": _t("torch.accelerator.set_device_index", "2.6", False, _NO_CPU_ACC + " (so does the original).",
                     guard=GUARD),
    "device_context": _t("torch.accelerator.device_index", "2.8", False,
                         "Takes an int or None only: exact for those; a `torch.device`/str argument is left and "
                         "reported. `device_index(0)` " + _NO_CPU_ACC + "."),
    "Stream": _t("torch.Stream", "2.4", note="Not a `torch.cuda.Stream` (no `cuda_stream`); constructs on CPU."),
    "stream": _t("torch.get_device_module().stream", "2.3",
                 note="No `torch.accelerator` form; `torch.cpu.stream` exists, so it runs on CPU."),
    "current_stream": _t("torch.accelerator.current_stream", "2.6", False, _NO_CPU_ACC + "."),
    "default_stream": _t("torch.get_device_module().default_stream", "2.3", False,
                         "No `torch.accelerator` form; " + _NO_CPU_MOD + "."),
    "set_stream": _t("torch.accelerator.set_stream", "2.6", False, _NO_CPU_ACC + ".", guard=GUARD),
    "synchronize": _t("torch.accelerator.synchronize", "2.6", False, _NO_CPU_ACC + ".", guard=GUARD),
    "Event": _t("torch.Event", "2.4", False,
                "Constructs on CPU, but `record()` raises \"cpu backend doesn't support events\": CPU timing "
                "needs the shim. Reported as CPU-unsafe."),
    "ipc_collect": _t("torch.get_device_module().ipc_collect", "2.3", False, _NO_CPU_MOD + ".", guard=GUARD),
    "mem_get_info": _t("torch.get_device_module().mem_get_info", "2.3", False,
                       "What experts write; `torch.accelerator.get_memory_info` needs torch 2.10. " + _NO_CPU_MOD + "."),
    "memory_summary": _t("torch.get_device_module().memory_summary", "2.3", False, _NO_CPU_MOD + "."),
    # torch.cuda.reset_max_memory_allocated itself calls reset_peak_memory_stats (as the registry renames it).
    "reset_max_memory_allocated": _t("torch.accelerator.reset_peak_memory_stats", "2.9", False,
                                     "What `torch.cuda.reset_max_memory_allocated` calls. " + _NO_CPU_ACC + ".",
                                     guard=GUARD),
}
for _name in ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved", "memory_stats"):
    _RENAMES[_name] = _t(f"torch.accelerator.{_name}", "2.9", False,
                         _NO_CPU_ACC + " (the original answers 0 / {} there): reported as CPU-unsafe.")
for _name in ("reset_peak_memory_stats", "reset_accumulated_memory_stats", "empty_cache"):
    _RENAMES[_name] = _t(f"torch.accelerator.{_name}", "2.9", False, _NO_CPU_ACC + ".", guard=GUARD)
for _name in ("manual_seed", "manual_seed_all", "seed", "seed_all", "set_rng_state", "set_rng_state_all"):
    _RENAMES[_name] = _t(f"torch.get_device_module().{_name}", "2.3", False,
                         "No `torch.accelerator` RNG; " + _NO_CPU_MOD + " (the original runs there and does "
                         "nothing): guarded.", guard=GUARD)
for _name in ("initial_seed", "get_rng_state", "get_rng_state_all"):
    _RENAMES[_name] = _t(f"torch.get_device_module().{_name}", "2.3", False,
                         "No `torch.accelerator` RNG; " + _NO_CPU_MOD + ".")
for _name in ("get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported"):
    _RENAMES[_name] = _t(f"torch.get_device_module().{_name}", "2.3", False,
                         _NO_CPU_MOD + (". `torch.accelerator.get_device_capability` answers a dict of dtypes, "
                                        "not (major, minor)" if _name == "get_device_capability" else "") + ".")
for _name in ("nvtx_range_push", "nvtx_range_pop", "nvtx_range", "nvtx_mark"):
    _RENAMES[_name] = Spelling("", "", False,
                               "No torch spelling emits NVTX on CUDA and works elsewhere "
                               "(`torch.autograd.profiler.record_function` is not NVTX): left in place and reported.")

# ---- entries ported by a rule module, keyed by registry name ---------------------------------
_AUTOCAST = _t("torch.autocast({device_type}, ...)", "1.10")
_SCALER = _t("torch.amp.GradScaler({device_type}, ...)", "2.3")
_RULES: Dict[str, Spelling] = {
    "literal:'cuda'": _t("{device} where a device is meant; {device_type} where a device type is meant", "2.7",
                         note="A string that must stay a string (`'cuda' in device`, `.split(':')`) is the "
                              "`string` variant."),
    "literal:'nccl'": _t("torch.distributed.get_default_backend_for_device({device})", "2.6",
                         note="cpu -> gloo, cuda -> nccl, xpu -> xccl."),
    "torch.Tensor.cuda": _t("x.to({device}); x.cuda(i) -> x.to(torch.device({device_type}, i))", "2.7",
                            note="Aliasing: on a machine without an accelerator `x.to(device)` of a CPU tensor is `x` "
                                 "itself, where `.cuda()` always made a copy on CUDA (the shim's `to_device` copies "
                                 "there too): code that then changes the result in place also changes `x`. "
                                 "`x.cuda(d)` with a device-like `d` becomes `x.to(d)`; a `cuda()` argument that may "
                                 "be None, and receivers of a project with its own `cuda()`, are left and reported."),
    "torch.nn.Module.cuda": _t("m.to({device}); m.cuda(i) -> m.to(torch.device({device_type}, i))", "2.7"),
    "torch.device": _t("{device} for 'cuda'; torch.device({device_type}, i) for 'cuda:i'", "2.7"),
    "torch.load": _t('torch.load(..., map_location=None if {device_type} == "cuda" else {device})', "2.7",
                     note="None on CUDA keeps the saved `cuda:N` of each tensor, as the original does."),
    "torch.Tensor.is_cuda": _t('x.device.type == {device_type} != "cpu"', "2.7",
                               note="False for CPU tensors on a CPU-only machine, as the original."),
    "torch.Tensor.pin_memory": _t("x.pin_memory() if torch.accelerator.is_available() else x", "2.6",
                                  note="`x.pin_memory()` " + _NO_CPU_ACC + "."),
    "torch.utils.data.DataLoader.pin_memory": _t("DataLoader(..., pin_memory=torch.accelerator.is_available())", "2.6",
                                                 note="`pin_memory=expr` becomes `expr and torch.accelerator.is_available()`."),
    "torch.Tensor.get_device": _t("x.device where x.get_device() is used as a device", "1.0",
                                  note="Torch's own attribute: the same in both targets."),
    "torch.Tensor.record_stream": _t("x.record_stream(s)", "2.4", False,
                                     "Unchanged call on a `torch.Stream`; raises on CPU streams.", guard=GUARD),
    "torch.backends.cuda.sdp_kernel": _t("torch.nn.attention.sdpa_kernel([SDPBackend...])", "2.3",
                                         note="Already torch-only: the same in both targets."),
    "torch.set_default_tensor_type": _t("torch.set_default_dtype(D) plus torch.set_default_device({device}) for a "
                                        "CUDA type (a statement only)", "2.0"),
    "torch.cuda.amp.autocast": _AUTOCAST, "torch.cuda.amp.autocast_mode.autocast": _AUTOCAST,
    "torch.autocast": _AUTOCAST, "torch.amp.autocast": _AUTOCAST, "torch.amp.autocast_mode.autocast": _AUTOCAST,
    "torch.cuda.amp.GradScaler": _SCALER, "torch.cuda.amp.grad_scaler.GradScaler": _SCALER,
    "torch.amp.GradScaler": _SCALER, "torch.amp.grad_scaler.GradScaler": _SCALER,
}
for _mod in ("torch.cuda.amp", "torch.cuda.amp.autocast_mode"):
    _RULES[f"{_mod}.custom_fwd"] = _t("torch.amp.custom_fwd(device_type={device_type}, ...)", "2.4")
    _RULES[f"{_mod}.custom_bwd"] = _t("torch.amp.custom_bwd(device_type={device_type})", "2.4")
_RULES["torch.distributed.Backend.NCCL"] = _RULES["literal:'nccl'"]
for _name in ("torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel"):
    _RULES[_name] = _t("device_ids=D if torch.accelerator.is_available() else None (output_device likewise)", "2.6",
                       note="None for a CPU module, as DDP requires; the original ids on CUDA.")

# Context variants: the same API ported differently by where it stands (a rule names the variant).
_VARIANTS: Dict[Tuple[str, str], Spelling] = {
    # `if torch.cuda.is_available(): <CUDA-only code>` (shim: accelerator_type() == 'cuda'): the original is
    # already exact on CUDA and False everywhere else, so the torch target keeps it as it is.
    ("torch.cuda.is_available", "cuda_only_guard"): _t(
        "torch.cuda.is_available", "1.0", note="Guards CUDA-only code: kept as it is (exact, False elsewhere)."),
    # A device string that must stay a str (FIELD_NOTES trap 2): 'cuda' -> device.type, 'cuda:N' -> f"{device.type}:N".
    ("literal:'cuda'", "string"): _t("{device_type} for 'cuda'; f\"{device_type}:N\" for 'cuda:N'", "2.7",
                                     note="A str, as the original; 'cpu:N' is a valid device string on CPU."),
    # `x == 'cuda'` / `'cuda' in x` (shim: accelerator_type() / is_accelerator(x), rules/device_comparisons.py): true
    # exactly when x names the chosen accelerator; never on a CPU-only machine, as the original.
    ("literal:'cuda'", "comparison"): _t(
        "x == {device_type} != \"cpu\"; x != 'cuda' -> x != {device_type} or {device_type} == \"cpu\"; "
        "'cuda' in x -> {device_type} != \"cpu\" and {device_type} in x", "2.7",
        note="`!= \"cpu\"` keeps the comparison false on a machine without an accelerator, as the original."),
    # `mp.spawn(main, nprocs=torch.cuda.device_count())` (shim: worker_count()): at least one worker, so the
    # work is done on a machine without an accelerator (FIELD_NOTES trap 4); exact on CUDA with >= 1 GPU.
    ("torch.cuda.device_count", "worker_count"): _t(
        "max(torch.accelerator.device_count(), 1)", "2.6", note="The number of worker processes to start."),
    # `assert torch.cuda.is_available()` / `if not ...: raise` (shim: device_usable()): relaxing the requirement
    # has no torch spelling a reviewer reads as intended; left in place and reported (TDM114 asks a person).
    ("torch.cuda.is_available", "requirement"): Spelling(
        "", "", False, "A stated GPU requirement: left in place and reported; the person decides whether to drop it."),
    # `x.cuda()` on a receiver the project does not prove to be a torch tensor or module (rules/device_placement.py):
    # `x.to({device})`, what experts write, unless some project class defines its own `cuda` (then left and reported:
    # its `to` may not do the same). Unlike the shim's to_device, a CPU tensor's `.to(cpu)` is the tensor itself.
    ("torch.Tensor.cuda", "unknown_receiver"): _t(
        "x.to({device}) unless a project class defines its own cuda()", "2.7",
        note="A project class defines its own `cuda()`, so `.to(device)` may not do what its `cuda()` does: "
             "port this call by hand, or with `--target shim` (runtime_shim.to_device calls the object's own cuda() on CUDA)."),
    # `assert x.is_cuda` (shim: on_device(x)): the requirement holds for an object on the chosen device, CPU included.
    ("torch.Tensor.is_cuda", "requirement"): _t(
        "x.device.type == {device_type}", "2.7",
        note="A stated requirement: true on CUDA exactly when `x.is_cuda`, and for an object on the chosen device elsewhere."),
}

_LEGACY_RE = re.compile(r"torch\.cuda\.[A-Za-z0-9]+Tensor")
_DTYPE_RE = re.compile(r"dtype=(torch\.\w+)")


def _torch_spelling(api: Api) -> Optional[Spelling]:
    shim_name = api.shim_name
    if shim_name is not None:
        return _RENAMES.get(shim_name)
    if api.rename and api.replacement.startswith("torch."):  # torch's own name already: the same in both targets
        return _t(api.replacement, api.since, note=api.reason)
    spelling = _RULES.get(api.name)
    if spelling is None and _LEGACY_RE.fullmatch(api.name):
        m = _DTYPE_RE.search(api.replacement)
        if m:
            spelling = _t(f"torch.tensor(..., dtype={m.group(1)}, device={{device}}) (sizes: torch.empty)", "2.7")
    return spelling


def missing() -> List[str]:
    """REWRITTEN registry entries the torch column lacks (a test keeps this empty)."""
    return [a.name for a in entries() if a.status is Status.REWRITTEN and _torch_spelling(a) is None]


def replacement_for(api_name: str, target: str, variant: str = "") -> Spelling:
    """The ``target`` column of the REWRITTEN registry entry ``api_name`` (``variant``: a context the rule
    recognised, such as ``"cuda_only_guard"``; the torch column may spell it differently). Raises KeyError
    for an unknown target or variant, an entry that is not REWRITTEN, or one the torch column lacks (a
    test checks none does)."""
    if variant and target == "torch":
        if (api_name, variant) not in _VARIANTS:
            raise KeyError(f"{api_name!r} has no variant {variant!r} in targets.py")
        return _VARIANTS[(api_name, variant)]
    if target not in TARGETS:
        raise KeyError(f"unknown target {target!r} (known: {', '.join(TARGETS)})")
    api = lookup(api_name)
    if api is None or api.status is not Status.REWRITTEN:
        raise KeyError(f"{api_name!r} is not a REWRITTEN registry entry")
    if target == "shim":
        return Spelling(api.replacement, api.since, True, api.reason)
    spelling = _torch_spelling(api)
    if spelling is None:
        raise KeyError(f"{api_name!r} has no torch-target spelling in torchdevice_migrate/targets.py")
    return spelling


def table(strict: bool = True) -> Iterator[Tuple[Api, Spelling, Spelling]]:
    """Every REWRITTEN entry with its shim and torch cells (sorted by name); ``strict=False`` skips
    entries the torch column lacks instead of raising (the docs still render)."""
    for api in entries():
        if api.status is Status.REWRITTEN:
            if not strict and _torch_spelling(api) is None:
                continue
            yield api, replacement_for(api.name, "shim"), replacement_for(api.name, "torch")


def minimum_torch() -> str:
    """The highest ``since`` of the torch column: what a port that uses every spelling needs."""
    return max((s.since for _, _, s in table(strict=False) if s.since), key=_version)


# ---- the device value a rule writes under the torch target ------------------------------------

_DEVICE_NAMES = ("device", "DEVICE", "_device")


@dataclass
class DeviceBinding:
    """The module-level ``name = DEVICE_VALUE`` that ``device_value`` scheduled (``torch`` is the
    module's name for torch)."""

    name: str
    torch: str = "torch"

    def statement(self) -> cst.SimpleStatementLine:
        import libcst as cst
        value = DEVICE_VALUE.replace("torch.", f"{self.torch}.")
        return cst.parse_statement(f"{self.name} = {value}\n")  # type: ignore[return-value]


_PENDING: weakref.WeakKeyDictionary[object, DeviceBinding] = weakref.WeakKeyDictionary()


def pending_binding(ctx: object) -> Optional[DeviceBinding]:
    """The binding ``device_value`` scheduled for this file's context, if any (for transform.py)."""
    return _PENDING.get(ctx)


def device_value(ctx, at: cst.CSTNode) -> cst.BaseExpression:
    """The expression a rule writes where the torch target needs the device at ``at`` (an original node).

    Reuses a module-level device variable the file already defines (``device = torch.device("cuda" if
    torch.cuda.is_available() else "cpu")``, or the torch target's own value) when that name reaches
    ``at`` unshadowed and is bound before ``at`` runs; otherwise schedules one binding of
    ``DEVICE_VALUE`` after the imports (see ``insert_binding``) under a name free in the whole file,
    and returns that name. Every call in a file returns the same name."""
    import libcst as cst
    pending = _PENDING.get(ctx)
    if pending is not None:
        return cst.Name(pending.name)
    module: cst.Module = ctx.module
    existing = _existing_device_variable(ctx, module, at)
    if existing is not None:
        return cst.Name(existing)
    name = _free_name(ctx, module)
    torch_alias = _torch_alias(module)
    if torch_alias is None:
        ctx.add_import("torch")
        torch_alias = "torch"
    _PENDING[ctx] = DeviceBinding(name, torch_alias)
    return cst.Name(name)


def device_type_value(ctx, at: cst.CSTNode) -> cst.BaseExpression:
    """``{device}.type``."""
    import libcst as cst
    return cst.Attribute(device_value(ctx, at), cst.Name("type"))


def _is_device_value(node: cst.BaseExpression) -> bool:
    """``torch.device("cuda" if torch.cuda.is_available() else "cpu")`` (any torch alias, either order of
    'cuda'/'cpu') or ``DEVICE_VALUE`` itself."""
    import libcst as cst
    code = cst.Module([]).code_for_node(node)
    compact = re.sub(r"\s+", "", code).replace("'", '"')
    if compact == re.sub(r"\s+", "", DEVICE_VALUE):
        return True
    m = re.fullmatch(r'(\w+)\.device\("cuda"if\1\.cuda\.is_available\(\)else"cpu"\)', compact)
    # ``torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")`` (rules/device_placement.py)
    m = m or re.fullmatch(r'(\w+)\.device\("cuda"\)if\1\.cuda\.is_available\(\)else\1\.device\("cpu"\)', compact)
    return m is not None


def _module_assignments(module: cst.Module) -> Dict[str, List[cst.Assign]]:
    import libcst as cst
    out: Dict[str, List[cst.Assign]] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        if isinstance(t.target, cst.Name):
                            out.setdefault(t.target.value, []).append(small)
    return out


def _existing_device_variable(ctx, module: cst.Module, at: cst.CSTNode) -> Optional[str]:
    from libcst.metadata import ClassScope, GlobalScope

    assigns = _module_assignments(module)
    scope = ctx.scope(at)
    for name, nodes in sorted(assigns.items()):
        if len(nodes) != 1 or not _is_device_value(nodes[0].value):
            continue
        if _bound_elsewhere(ctx, module, name, nodes[0]):
            continue  # rebound at module level or in a function: which value reaches `at` is unclear
        if scope is None or name not in scope:
            continue
        # Bound in the global scope, not shadowed where `at` is (a parameter or local `device`).
        if any(getattr(a, "scope", None) is not scope.globals for a in scope[name]):
            continue
        if isinstance(scope, (GlobalScope, ClassScope)):
            here, there = ctx.position(at), ctx.position(nodes[0])
            if here is None or there is None or there.start.line >= here.start.line:
                continue  # module or class body code that runs before the binding
        return name
    return None


def _bound_elsewhere(ctx, module: cst.Module, name: str, node: cst.Assign) -> bool:
    scope = ctx.scope(node)
    if scope is None:
        return True
    own = {t.target for t in node.targets}  # a scope's Assignment.node is the target Name
    return any(getattr(a, "node", None) not in own for a in scope.globals.assignments[name])


def _all_names(ctx, module: cst.Module) -> set:
    import libcst as cst

    names: set = set()
    for scope in {s for s in getattr(ctx, "_scopes", {}).values() if s is not None}:
        names.update(a.name for a in scope.assignments)
        names.update(a.node.value for a in scope.accesses if isinstance(a.node, cst.Name))
    if not names:  # a context without scopes: fall back on every Name in the module
        names = {n.value for n in _walk_names(module)}
    piece = getattr(ctx, "piece", None)  # a sliced module (slicing.py): the bodies set aside count too
    if piece is not None:
        names |= piece.hidden_names()
    return names


def _walk_names(node: cst.CSTNode) -> Iterator[cst.Name]:
    import libcst as cst
    if isinstance(node, cst.Name):
        yield node
    for child in node.children:
        yield from _walk_names(child)


def _free_name(ctx, module: cst.Module) -> str:
    used = _all_names(ctx, module)
    for n in _DEVICE_NAMES:
        if n not in used:
            return n
    i = 2
    while f"_device{i}" in used:
        i += 1
    return f"_device{i}"


def _torch_alias(module: cst.Module) -> Optional[str]:
    """The name a top-level ``import torch [as t]`` binds, if any."""
    import libcst as cst
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Import):
                    for alias in small.names:
                        if cst.helpers.get_full_name_for_node(alias.name) == "torch":
                            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                                return alias.asname.name.value
                            return "torch"
    return None


def _is_head(stmt: cst.CSTNode, first: bool) -> bool:
    import libcst as cst
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, (cst.Import, cst.ImportFrom)):
        return True
    return first and isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString))


def insert_binding(module: cst.Module, binding: DeviceBinding) -> cst.Module:
    """``module`` with ``binding`` as a statement right after its leading docstring and import lines,
    and after the module-level statement that imports torch when that comes later (``sys.path`` set-up
    before ``import torch``), with one empty line before it; unchanged when that exact statement is
    already there."""
    import libcst as cst

    statement = binding.statement()
    code = cst.Module([]).code_for_node(statement)
    body = list(module.body)
    if any(cst.Module([]).code_for_node(s).strip() == code.strip() for s in body):
        return module
    cut = 0
    while cut < len(body) and _is_head(body[cut], cut == 0):
        cut += 1
    for i, stmt in enumerate(body):
        if _torch_alias(module.with_changes(body=[stmt])) == binding.torch:
            cut = max(cut, i + 1)
            break
    statement = statement.with_changes(leading_lines=(cst.EmptyLine(),) if cut else ())
    if cut < len(body) and not body[cut].leading_lines:
        body[cut] = body[cut].with_changes(leading_lines=(cst.EmptyLine(),))
    body.insert(cut, statement)
    return module.with_changes(body=body)
