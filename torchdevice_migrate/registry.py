"""The one registry of CUDA APIs.

Every CUDA API that torchdevice-migrate knows about has exactly one entry here, keyed by its
qualified name (``torch.cuda.Event``). The entry says what happens to it:

* ``REWRITTEN``: ported automatically; ``replacement`` says to what, ``rule`` names the rule
  module that does it (``rename`` entries are pure renames done by ``rules/registry_renames.py``).
* ``HARMLESS``: left as is because it works on every backend; ``reason`` says why.
* ``UNSUPPORTED``: left in place and reported with a stable reason ``code``, a ``reason`` and a ``hint``.

The rules, the report, the statistics and ``docs/api-coverage.md`` all read this module; nothing
else lists CUDA APIs. Every public name of ``torch.cuda`` (and its submodules), ``torch.cuda.amp``,
``torch.cuda.nvtx``, ``torch.backends.cuda`` and ``torch.backends.cudnn`` is classified here
(``tests/test_registry.py`` checks it against the installed torch). Entries that are not plain
qualified names use a prefix: ``torch.Tensor.cuda`` (a method or attribute, matched by attribute
name), ``literal:'cuda'`` (a string literal), ``module:apex`` (a third-party import),
``env:CUDA_VISIBLE_DEVICES`` (an environment variable written by the code).

``python -m torchdevice_migrate.docs_gen`` renders ``docs/api-coverage.md`` and
``docs/reason-codes.md`` from this module. This module never imports torch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

SHIM = "runtime_shim"  # placeholder module name used in replacement texts; the real import name is configurable


class Status(str, enum.Enum):
    REWRITTEN = "rewritten"
    HARMLESS = "harmless"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Reason:
    """A stable diagnostic code (``TDMnnn``) with the text the report, SARIF and the docs show."""

    code: str
    title: str
    description: str
    hint: str = ""

    @property
    def doc_anchor(self) -> str:
        return f"docs/reason-codes.md#{self.code.lower()}"


@dataclass(frozen=True)
class Api:
    name: str
    status: Status
    family: str
    replacement: str = ""
    rule: str = ""
    code: str = ""
    reason: str = ""
    hint: str = ""
    since: str = ""
    rename: bool = False
    #: What a use needs before its rule acts (read by the pre-filter, ``trigger.py``): ``""`` its own
    #: name is enough; ``"cuda"`` only next to other CUDA use (a ``'cuda'`` argument, other CUDA
    #: rewrites in the file); ``"project"`` as ``"cuda"``, or anywhere in a project that uses CUDA.
    evidence: str = ""

    @property
    def shim_name(self) -> Optional[str]:
        """For a pure rename into the shim, the shim attribute (``Event`` for ``runtime_shim.Event``)."""
        if self.rename and self.replacement.startswith(SHIM + "."):
            return self.replacement[len(SHIM) + 1 :]
        return None


# --------------------------------------------------------------------------------------------
# Reason codes. TDM1xx: rewritten; TDM2xx: unsupported (left in place); TDM3xx: needs review.
# Codes are stable: never renumber or reuse one; add new codes at the end of their range.
# --------------------------------------------------------------------------------------------
_REASONS = [
    # rewritten families
    Reason("TDM101", "Device placement", "`.cuda()` / `torch.device('cuda')` / a CUDA device string was ported to the device the runtime shim chooses.", "Nothing to do; set TORCHDEVICE_DEVICE to force a device."),
    Reason("TDM102", "Device query", "A `torch.cuda` device query (availability, count, current device) was ported to the runtime shim.", "Nothing to do."),
    Reason("TDM103", "Device comparison", "A comparison with `'cuda'` was ported so it is true exactly when the chosen device is an accelerator of that type.", "Nothing to do."),
    Reason("TDM104", "Streams and events", "A CUDA stream or event API was ported to the runtime shim, which keeps CUDA semantics and times events on CPU too.", "Nothing to do."),
    Reason("TDM105", "Memory statistics", "A CUDA memory statistic was ported to the runtime shim (psutil figures on CPU).", "Read docs/shim.md for what each figure means per backend."),
    Reason("TDM106", "Random number generator", "A CUDA RNG call was ported to seed or save the generator of the device that replaced CUDA.", "Nothing to do."),
    Reason("TDM107", "Device properties", "A CUDA device property query was ported to the runtime shim.", "Nothing to do."),
    Reason("TDM108", "Automatic mixed precision", "`torch.cuda.amp` was ported to the device-generic `torch.amp` API.", "Nothing to do."),
    Reason("TDM109", "Legacy tensor type", "A legacy `torch.cuda.*Tensor` type was ported to dtype plus device.", "Nothing to do."),
    Reason("TDM110", "Distributed", "A NCCL-only distributed setting was ported to the backend of the chosen device.", "Nothing to do."),
    Reason("TDM111", "Pinned memory", "Pinned memory was made conditional on an accelerator that supports it.", "Nothing to do."),
    Reason("TDM112", "Profiler ranges", "An NVTX range was ported to the runtime shim (NVTX on CUDA, a profiler range elsewhere).", "Nothing to do."),
    Reason("TDM113", "Attention backend", "`torch.backends.cuda.sdp_kernel` was ported to `torch.nn.attention.sdpa_kernel`.", "Nothing to do."),
    Reason("TDM114", "Relaxed GPU requirement", "A stated GPU requirement (`assert torch.cuda.is_available()`, `if not torch.cuda.is_available(): raise ...`) now holds on CUDA exactly as before and is relaxed elsewhere: on a machine without a CUDA GPU the code runs on the chosen device instead of stopping.", "Check that the code is meant to run on the chosen device (a CPU or a Mac); keep the original requirement with `# torchdevice: ignore[TDM114]`."),
    Reason("TDM115", "CPU-unsafe torch spelling", "With `--target torch`, the site was ported to torch's own spelling, which is exact on CUDA but raises on a CPU-only torch (the message says how).", "Guard the statement with `if torch.accelerator.is_available():`, or port with the default `--target shim`."),
    Reason("TDM116", "Checkpoint map location", "`torch.load` without `map_location`, in code that uses CUDA, now maps storages saved on CUDA to the chosen device (unchanged on CUDA, where the saved device is kept).", "Nothing to do; pass `map_location` yourself to choose otherwise."),
    # unsupported
    Reason("TDM201", "CUDA graphs", "CUDA graphs capture CUDA kernels; there is no portable equivalent.", "Guard the capture with `runtime_shim.accelerator_type() == 'cuda'` and run the eager path elsewhere."),
    Reason("TDM202", "Custom CUDA extension", "Custom CUDA kernels (`cpp_extension`, `CUDAExtension`, `.cu` sources) only build and run with CUDA.", "Keep a pure-PyTorch fallback and select it when the extension is unavailable."),
    Reason("TDM203", "CUDA_VISIBLE_DEVICES", "Writing `CUDA_VISIBLE_DEVICES` selects CUDA devices only.", "Use TORCHDEVICE_DEVICE to select a device portably."),
    Reason("TDM204", "Raw CUDA handle", "Raw CUDA handles (`cuda_stream`, `cudaStream_t`, pointers) have no meaning on other backends.", "Pass the shim's stream objects instead of raw handles."),
    Reason("TDM205", "External stream", "`ExternalStream` wraps a stream created outside PyTorch by CUDA code.", "Create streams with `runtime_shim.Stream()`."),
    Reason("TDM206", "CUDA IPC", "CUDA inter-process memory sharing has no portable equivalent.", "Share tensors through `torch.multiprocessing` on CPU."),
    Reason("TDM207", "CUDA allocator settings", "CUDA caching-allocator settings and state (pools, pluggable allocators, memory fraction, snapshots, history) do not apply to other backends.", "Keep them behind a CUDA check."),
    Reason("TDM208", "NVML telemetry", "NVML telemetry (utilization, temperature, power, clocks) exists only for NVIDIA GPUs.", "Guard with a CUDA check or use psutil for CPU figures."),
    Reason("TDM209", "Jiterator", "The jiterator compiles CUDA kernels at run time.", "Write the kernel as ordinary PyTorch operations."),
    Reason("TDM210", "CUDA-only package", "This third-party package runs only on NVIDIA GPUs.", "Use a portable alternative or keep a fallback path when the import fails."),
    Reason("TDM211", "CUDA-specific API", "This CUDA API has no portable meaning.", "Keep it behind `runtime_shim.accelerator_type() == 'cuda'`."),
    Reason("TDM212", "Unported memory statistic", "A CUDA memory statistic that the runtime shim does not provide (nested or pinned-host statistics).", "Use `runtime_shim.memory_stats()` / `runtime_shim.memory_allocated()`, or keep it behind a CUDA check."),
    Reason("TDM213", "Unanswered device property", "An attribute of `get_device_properties(...)` that the runtime shim answers only on CUDA (and XPU where torch has it); elsewhere reading it raises `runtime_shim.UnsupportedOnBackend`.", "Read it only when `runtime_shim.accelerator_type() == 'cuda'`, or use `name`, `major`, `minor`, `total_memory`, `is_integrated`, `is_multi_gpu_board`."),
    Reason("TDM214", "CUDA call in TorchScript", "`.cuda()`, `.is_cuda` or another CUDA use inside TorchScript (a `@torch.jit.script` function, a `@torch.jit.script_method` or `@torch.jit.export` method, or a module class the project passes to `torch.jit.script`): a runtime shim call cannot be scripted, so the site is left as it was.", "Pass the device in as an argument (`x.to(device)`, `x.device.type`), or keep the scripted code CUDA-only."),
    # review
    Reason("TDM301", "Ambiguous CUDA string", "A `'cuda'` device string in a place where the syntax does not prove it is a device.", "If it is a device, wrap it as `runtime_shim.device_string(...)`; otherwise ignore this finding."),
    Reason("TDM302", "Comparison with an indexed CUDA device", "A comparison with `'cuda:N'` or a collection of device names cannot be ported mechanically.", "Compare `runtime_shim.device_type(x)` with `runtime_shim.accelerator_type()` instead."),
    Reason("TDM303", "Unknown CUDA API", "A `torch.cuda` name that the registry does not classify.", "Report it; port it by hand meanwhile."),
    Reason("TDM304", "Indirect CUDA reference", "A CUDA API is referenced without being called (passed as a value), so its use cannot be ported safely.", "Port the use site by hand."),
    Reason("TDM305", "Tensor device index", "`x.get_device()` is the CUDA index of a tensor and -1 for a CPU tensor, so used as a device or an index it breaks off CUDA.", "Use `x.device` where a device is meant; keep `get_device()` only where an integer index is meant."),
    Reason("TDM306", "GPU count requirement", "A stated requirement of several GPUs (`assert torch.cuda.device_count() >= 2`, `if torch.cuda.device_count() < n: raise ...`): the chosen device counts as none on the CPU and one on MPS, so the check still stops the code there, as the original did.", "If the code can run on one device, relax the check by hand (for example with `runtime_shim.worker_count()`); otherwise ignore this finding."),
    Reason("TDM307", "No exact torch spelling", "With `--target torch`, this CUDA use has no torch spelling that is exact on CUDA and works elsewhere (or it states a GPU requirement a person must judge), so it was left in place.", "Port it by hand, or port with the default `--target shim`."),
]
REASONS: Dict[str, Reason] = {r.code: r for r in _REASONS}


# --------------------------------------------------------------------------------------------
# Families: the groups of docs/api-coverage.md, in this order.
# --------------------------------------------------------------------------------------------
FAMILIES: Dict[str, str] = {
    "device": "Device placement and device queries",
    "stream": "Streams",
    "event": "Events",
    "memory": "Memory statistics",
    "rng": "Random number generators",
    "query": "Device properties, build information and errors",
    "nvtx": "NVTX ranges",
    "amp": "Automatic mixed precision",
    "legacy_tensors": "Legacy tensor and storage types",
    "tensor_methods": "Tensor methods",
    "distributed": "Distributed training",
    "attention": "Scaled dot-product attention",
    "cudnn": "cuDNN flags (torch.backends.cudnn)",
    "cuda_backend": "cuBLAS, cuFFT and linear-algebra settings (torch.backends.cuda)",
    "graphs": "CUDA graphs",
    "allocator": "Caching allocator",
    "telemetry": "NVML telemetry",
    "handles": "Raw handles, external streams and IPC",
    "extensions": "Custom CUDA extensions",
    "jiterator": "Jiterator",
    "cuda_specific": "Other CUDA-specific APIs",
    "submodules": "Submodules",
    "environment": "Environment",
    "third_party": "CUDA-only third-party packages",
}


# --------------------------------------------------------------------------------------------
# The entries. Helpers keep each line short; each helper documents the status it creates.
# --------------------------------------------------------------------------------------------
_ENTRIES: List[Api] = []


def _q(module: str, *names: str) -> List[str]:
    """Qualified names ``module.name`` for each name."""
    return [f"{module}.{n}" for n in names]


def _shim(family: str, code: str, *names: str, module: str = "torch.cuda", reason: str = "") -> None:
    """``module.X`` is renamed to ``runtime_shim.X`` (same signature, portable behaviour)."""
    for n in names:
        _ENTRIES.append(Api(f"{module}.{n}", Status.REWRITTEN, family, replacement=f"{SHIM}.{n}",
                            rule="registry_renames", code=code, reason=reason, rename=True))


def _rename(name: str, shim_name: str, family: str, code: str, reason: str = "") -> None:
    """``name`` is renamed to ``runtime_shim.<shim_name>`` (same call signature)."""
    _ENTRIES.append(Api(name, Status.REWRITTEN, family, replacement=f"{SHIM}.{shim_name}",
                        rule="registry_renames", code=code, reason=reason, rename=True))


def _torch_rename(name: str, torch_name: str, family: str, code: str, since: str, reason: str = "") -> None:
    """``name`` is renamed to torch's own ``torch_name``, exact on every backend: the same in every target."""
    _ENTRIES.append(Api(name, Status.REWRITTEN, family, replacement=torch_name, rule="registry_renames", code=code,
                        reason=reason, since=since, rename=True))


def _rule(name: str, family: str, code: str, rule: str, replacement: str, since: str = "", evidence: str = "") -> None:
    """Rewritten by a dedicated rule module (the call shape changes, not only the name)."""
    _ENTRIES.append(Api(name, Status.REWRITTEN, family, replacement=replacement, rule=rule, code=code, since=since,
                        evidence=evidence))


def _harmless(family: str, reason: str, *names: str, hint: str = "") -> None:
    """Left as is: works (or is ignored) on every backend; ``reason`` says why."""
    for n in names:
        _ENTRIES.append(Api(n, Status.HARMLESS, family, reason=reason, hint=hint))


def _unsupported(family: str, code: str, *names: str, reason: str = "", hint: str = "") -> None:
    """Left in place and reported with ``code``; ``reason``/``hint`` default to the code's texts."""
    r = REASONS[code]
    for n in names:
        _ENTRIES.append(Api(n, Status.UNSUPPORTED, family, code=code, reason=reason or r.description, hint=hint or r.hint))


# ---- Device placement and device queries (issue 2) -------------------------------------------
_rule("torch.Tensor.cuda", "device", "TDM101", "device_placement", "x.to(runtime_shim.device(...))")
_rule("torch.nn.Module.cuda", "device", "TDM101", "device_placement", "m.to(runtime_shim.device(...))")
_rule("torch.device", "device", "TDM101", "device_placement", "runtime_shim.device(...) when the argument is a CUDA device",
      evidence="cuda")
_rule("torch.load", "device", "TDM116", "checkpoints", "torch.load(..., map_location=runtime_shim.load_location()) where no map_location is given",
      evidence="project")
_rule("literal:'cuda'", "device", "TDM101", "device_strings", "runtime_shim.device_string('cuda') where the syntax proves a device")
_shim("device", "TDM102", "is_available", "device_count", "current_device", "set_device")
_shim("device", "TDM102", "current_device", "device_count", module="torch.cuda.random")  # re-exported there
_rename("torch.cuda.device", "device_context", "device", "TDM102")
# torch.cuda.device_of(t) selects t's CUDA device; for a tensor not on CUDA it selects nothing.
_harmless("device", "A no-op context manager for tensors that are not on CUDA, so it works on every backend.",
          "torch.cuda.device_of")
# Lazy-initialisation queries answer False without CUDA, which is true.
_harmless("device", "Answers False when CUDA was never initialised (always, without CUDA); never raises.",
          *_q("torch.cuda", "is_initialized"), *_q("torch.cuda.memory", "is_initialized"),
          *_q("torch.cuda.random", "is_initialized"))
# Explicit initialisation fails without CUDA; other backends initialise lazily.
_unsupported("device", "TDM211", "torch.cuda.init", "torch.cuda._lazy_init",
             reason="Forces CUDA initialisation and raises without CUDA; other backends initialise lazily.",
             hint="Remove it: the first use of the chosen device initialises it.")
_harmless("device", "A type alias (`torch.device | str | int | None`) for annotations; evaluating it needs no GPU.",
          "torch.cuda.Device")

# ---- Streams and events (issue 3) ------------------------------------------------------------
_shim("stream", "TDM104", "Stream", "stream", "current_stream", "default_stream", "set_stream", "synchronize")
_shim("stream", "TDM104", "Stream", module="torch.cuda.streams")
_shim("event", "TDM104", "Event")
_shim("event", "TDM104", "Event", module="torch.cuda.streams")
# StreamContext is a class; renaming it to the shim's stream() function would break isinstance().
_unsupported("stream", "TDM211", "torch.cuda.StreamContext",
             reason="The CUDA stream context class; the shim offers the `stream(s)` function, not a class.",
             hint="Write `with runtime_shim.stream(s):` instead of constructing StreamContext.")
_unsupported("stream", "TDM211", "torch.cuda.set_sync_debug_mode", "torch.cuda.get_sync_debug_mode",
             reason="Warns or errors on synchronising CUDA operations; no other backend has this debug mode.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")

# ---- Memory statistics (issue 3) -------------------------------------------------------------
_MEMORY = ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
           "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats", "empty_cache",
           "memory_stats", "mem_get_info", "memory_summary")
_shim("memory", "TDM105", *_MEMORY)
_shim("memory", "TDM105", *_MEMORY, module="torch.cuda.memory")
# Deprecated "cached" spellings: torch itself forwards them to the "reserved" / "peak" functions.
for _mod in ("torch.cuda", "torch.cuda.memory"):
    _rename(f"{_mod}.memory_cached", "memory_reserved", "memory", "TDM105", reason="Deprecated alias of memory_reserved.")
    _rename(f"{_mod}.max_memory_cached", "max_memory_reserved", "memory", "TDM105", reason="Deprecated alias of max_memory_reserved.")
    _rename(f"{_mod}.reset_max_memory_cached", "reset_peak_memory_stats", "memory", "TDM105",
            reason="Deprecated; torch calls reset_peak_memory_stats.")
_unsupported("memory", "TDM212",
             *_q("torch.cuda", "memory_stats_as_nested_dict", "host_memory_stats", "host_memory_stats_as_nested_dict",
                 "reset_peak_host_memory_stats", "reset_accumulated_host_memory_stats"),
             *_q("torch.cuda.memory", "memory_stats_as_nested_dict", "host_memory_stats", "host_memory_stats_as_nested_dict",
                 "reset_peak_host_memory_stats", "reset_accumulated_host_memory_stats"),
             reason="Nested or pinned-host CUDA allocator statistics; the shim has no such figures (the resets raise without CUDA).")

# ---- RNG (issue 3) ---------------------------------------------------------------------------
_RNG = ("manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state",
        "get_rng_state_all", "set_rng_state", "set_rng_state_all")
_shim("rng", "TDM106", *_RNG)
_shim("rng", "TDM106", *_RNG, module="torch.cuda.random")
_unsupported("rng", "TDM211", "torch.cuda.default_generators",
             reason="The tuple of CUDA generators; it is empty without CUDA, so indexing it raises.",
             hint="Use `runtime_shim.manual_seed()` / `get_rng_state()`, or `torch.Generator(device=runtime_shim.device())`.")

# ---- Device properties, build information and errors (issue 3) --------------------------------
_shim("query", "TDM107", "get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported")
# torch's own name is exact everywhere (the same class), so both targets write it (issue 11 item 2).
_torch_rename("torch.cuda.OutOfMemoryError", "torch.OutOfMemoryError", "query", "TDM107", since="2.5",
              reason="The same class as `torch.cuda.OutOfMemoryError`, under torch's device-generic name (torch >= 2.5).")
_harmless("query", "Answers False without a TF32-capable CUDA device, which is true on every other backend.",
          "torch.cuda.is_tf32_supported")
_harmless("query", "A build flag; reading it works in every build.", "torch.cuda.has_half", "torch.cuda.has_magma")
_harmless("query", "A constant table of CUDA architectures per release; reading it needs no GPU.",
          "torch.cuda.DEVICE_REQUIREMENT", "torch.cuda.PYTORCH_RELEASES_CODE_CC")
_harmless("query", "An exception class that exists in every build; `except` clauses naming it work everywhere.",
          "torch.cuda.AcceleratorError", "torch.cuda.CudaError", "torch.cuda.DeferredCudaCallError")
_harmless("query", "A generic helper (`torch._utils.classproperty`) re-exported by torch.cuda; no CUDA use.",
          "torch.cuda.classproperty")
_unsupported("query", "TDM211", "torch.cuda.get_arch_list", "torch.cuda.get_gencode_flags",
             reason="The CUDA compute capabilities this build was compiled for; meaningless on other backends (empty without CUDA).",
             hint="Use `runtime_shim.get_device_capability()` or keep it behind a CUDA check.")
_unsupported("query", "TDM211", "torch.cuda.can_device_access_peer",
             reason="Peer-to-peer access between two CUDA devices; raises without CUDA.",
             hint="Keep it behind a CUDA check; elsewhere copies go through `.to()`.")

# ---- NVTX ranges (issue 4) -------------------------------------------------------------------
_rename("torch.cuda.nvtx.range_push", "nvtx_range_push", "nvtx", "TDM112")
_rename("torch.cuda.nvtx.range_pop", "nvtx_range_pop", "nvtx", "TDM112")
_rename("torch.cuda.nvtx.range", "nvtx_range", "nvtx", "TDM112")
_rename("torch.cuda.nvtx.mark", "nvtx_mark", "nvtx", "TDM112")
_unsupported("nvtx", "TDM211", "torch.cuda.nvtx.range_start", "torch.cuda.nvtx.range_end",
             reason="Process-wide NVTX ranges identified by a handle; the shim has no equivalent.",
             hint="Use `with runtime_shim.nvtx_range(msg):` (or nvtx_range_push/nvtx_range_pop).")

# ---- Automatic mixed precision (issue 4, rules/amp.py) ---------------------------------------
for _mod in ("torch.cuda.amp", "torch.cuda.amp.autocast_mode"):
    _rule(f"{_mod}.autocast", "amp", "TDM108", "amp", "torch.autocast(runtime_shim.device_type(), ...)", since="1.10")
    _rule(f"{_mod}.custom_fwd", "amp", "TDM108", "amp", "torch.amp.custom_fwd(device_type=runtime_shim.device_type(), ...)", since="2.4")
    _rule(f"{_mod}.custom_bwd", "amp", "TDM108", "amp", "torch.amp.custom_bwd(device_type=runtime_shim.device_type())", since="2.4")
for _name in ("torch.cuda.amp.GradScaler", "torch.cuda.amp.grad_scaler.GradScaler"):
    _rule(_name, "amp", "TDM108", "amp", "torch.amp.GradScaler(runtime_shim.device_type(), ...)", since="2.3")
for _name in ("torch.amp.GradScaler", "torch.amp.grad_scaler.GradScaler"):  # its default device is 'cuda'
    _rule(_name, "amp", "TDM108", "amp", "torch.amp.GradScaler(runtime_shim.device_type(), ...) when no device is given",
          since="2.3")
for _name in ("torch.autocast", "torch.amp.autocast", "torch.amp.autocast_mode.autocast"):
    _rule(_name, "amp", "TDM108", "amp", "torch.autocast(runtime_shim.device_type(), ...) when the device type is 'cuda'", since="1.10",
          evidence="cuda")
_harmless("amp", "Runs everywhere; answers True without CUDA, so code that checks it disables CUDA AMP as intended.",
          "torch.cuda.amp.amp_definitely_not_available", "torch.cuda.amp.common.amp_definitely_not_available")
_harmless("amp", "The enum `torch.amp.grad_scaler.OptState`, re-exported; no CUDA use.", "torch.cuda.amp.grad_scaler.OptState")

# ---- Legacy tensor and storage types (issue 4, rules/legacy_tensors.py) ----------------------
_LEGACY_DTYPES = {"BFloat16": "bfloat16", "Bool": "bool", "Byte": "uint8", "Char": "int8", "Double": "float64",
                  "Float": "float32", "Half": "float16", "Int": "int32", "Long": "int64", "Short": "int16"}
for _prefix, _dtype in _LEGACY_DTYPES.items():
    _rule(f"torch.cuda.{_prefix}Tensor", "legacy_tensors", "TDM109", "legacy_tensors",
          f"torch.tensor(..., dtype=torch.{_dtype}, device=runtime_shim.device()) (sizes: torch.empty)")
_rule("torch.set_default_tensor_type", "legacy_tensors", "TDM109", "legacy_tensors",
      "runtime_shim.set_default_tensor_type(T) where T is or may be a CUDA type (the original call on CUDA; dtype plus default device elsewhere)")
_unsupported("legacy_tensors", "TDM211",
             *_q("torch.cuda", *(f"{p}Storage" for p in (*_LEGACY_DTYPES, "ComplexDouble", "ComplexFloat"))),
             reason="A deprecated typed CUDA storage class; it raises without CUDA.",
             hint="Allocate a tensor with `device=runtime_shim.device()` (or `torch.UntypedStorage(n, device=runtime_shim.device())`).")
_unsupported("legacy_tensors", "TDM211",
             *_q("torch.cuda.sparse", *(f"{p}Tensor" for p in _LEGACY_DTYPES if p != "Bool")),
             reason="A legacy sparse CUDA tensor type; it raises without CUDA.",
             hint="Use `torch.sparse_coo_tensor(indices, values, size, device=runtime_shim.device())`.")

# ---- Tensor methods (issue 4, rules/tensor_methods.py) ---------------------------------------
_rule("torch.Tensor.is_cuda", "tensor_methods", "TDM103", "tensor_methods",
      "x.device.type == runtime_shim.accelerator_type()")
_rule("torch.Tensor.pin_memory", "tensor_methods", "TDM111", "tensor_methods", "runtime_shim.pin_memory(x)")
_rule("torch.utils.data.DataLoader.pin_memory", "tensor_methods", "TDM111", "tensor_methods",
      "DataLoader(..., pin_memory=runtime_shim.pin_memory_enabled(...))")
_rule("torch.Tensor.record_stream", "tensor_methods", "TDM104", "tensor_methods", "runtime_shim.record_stream(x, stream)")
_rule("torch.Tensor.get_device", "tensor_methods", "TDM101", "device_strings",
      "x.device where x.get_device() (-1 on the CPU) is used as a device; reported (TDM305) elsewhere")

# ---- Distributed training (issue 4, rules/distributed.py) ------------------------------------
_rule("literal:'nccl'", "distributed", "TDM110", "distributed", "runtime_shim.distributed_backend('nccl')")
_rule("torch.distributed.Backend.NCCL", "distributed", "TDM110", "distributed",
      "runtime_shim.distributed_backend(dist.Backend.NCCL) where it is the process-group backend")
for _name in ("torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel"):
    _rule(_name, "distributed", "TDM110", "distributed",
          "device_ids=runtime_shim.ddp_device_ids(...), output_device=runtime_shim.ddp_device_ids(...)")
_unsupported("distributed", "TDM211",
             *_q("torch.cuda.nccl", "all_gather", "all_reduce", "broadcast", "init_rank", "is_available", "reduce",
                 "reduce_scatter", "unique_id", "version", "SUM"),
             reason="Direct NCCL collectives on CUDA tensors, outside torch.distributed.",
             hint="Use torch.distributed collectives with `runtime_shim.distributed_backend()`.")
_unsupported("distributed", "TDM211",
             *_q("torch.cuda.comm", "broadcast", "broadcast_coalesced", "gather", "reduce_add", "reduce_add_coalesced",
                 "scatter"),
             reason="Copies between several CUDA devices of one process (the DataParallel primitives).",
             hint="Use torch.distributed with `runtime_shim.distributed_backend()`, or plain `.to()` copies.")

# ---- Scaled dot-product attention (issue 4, rules/attention.py) ------------------------------
_rule("torch.backends.cuda.sdp_kernel", "attention", "TDM113", "attention",
      "torch.nn.attention.sdpa_kernel([SDPBackend...])", since="2.3")
_harmless("attention", "The `torch.nn.attention.SDPBackend` enum (and the `SDPAParams` record for the can_use_* checks); they exist in every build.",
          "torch.backends.cuda.SDPBackend", "torch.backends.cuda.SDPAParams")
_harmless("attention", "Global SDPA backend switches; settable in every build, and the CPU kernels honour them too.",
          *_q("torch.backends.cuda", "enable_flash_sdp", "enable_mem_efficient_sdp", "enable_math_sdp", "enable_cudnn_sdp",
              "flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled",
              "allow_fp16_bf16_reduction_math_sdp", "fp16_bf16_reduction_math_sdp_allowed"))
_harmless("attention", "Kernel availability queries; they answer False when the CUDA kernel cannot run, and never raise.",
          *_q("torch.backends.cuda", "is_flash_attention_available", "can_use_flash_attention",
              "can_use_efficient_attention", "can_use_cudnn_attention", "is_ck_sdpa_available"))

# ---- cuDNN flags: settings, ignored where cuDNN is absent ------------------------------------
_CUDNN_FLAG = "A cuDNN setting; settable in every build and ignored where cuDNN is absent (MIOpen honours it on ROCm)."
_harmless("cudnn", _CUDNN_FLAG, *_q("torch.backends.cudnn", "enabled", "benchmark", "benchmark_limit", "allow_tf32",
                                     "fp32_precision", "depthwise_kernel", "conv", "flags", "set_flags"),
          "torch.backends.cudnn.conv.fp32_precision", "torch.backends.cudnn.rnn.fp32_precision")
_harmless("cudnn", _CUDNN_FLAG, "torch.backends.cudnn.deterministic",
          hint="For determinism on every backend also call `torch.use_deterministic_algorithms(True)`.")
_harmless("cudnn", "A query; answers False / None without cuDNN and never raises.",
          *_q("torch.backends.cudnn", "is_available", "version", "is_acceptable"))
_harmless("cudnn", "Module machinery or a constant of torch.backends.cudnn; no CUDA use.",
          *_q("torch.backends.cudnn", "CUDNN_TENSOR_DTYPES", "CudnnModule", "ContextProp", "PropModule"),
          *_q("torch.backends.cudnn.rnn", "ContextProp", "PropModule", "CudnnRNNModule", "Unserializable"))
_unsupported("cudnn", "TDM211", "torch.backends.cudnn.rnn.get_cudnn_mode", "torch.backends.cudnn.rnn.init_dropout_state",
             reason="Internal cuDNN RNN helpers of torch.nn; they raise without cuDNN.",
             hint="Use torch.nn.LSTM/GRU/RNN, which use cuDNN when it is there.")

# ---- cuBLAS, cuFFT and linear-algebra settings (torch.backends.cuda) --------------------------
_CUBLAS_FLAG = "A cuBLAS math setting; settable in every build and ignored without CUDA."
_harmless("cuda_backend", _CUBLAS_FLAG, "torch.backends.cuda.matmul", "torch.backends.cuda.cuBLASModule",
          *_q("torch.backends.cuda.matmul", "allow_tf32", "allow_fp16_reduced_precision_reduction",
              "allow_fp16_reduced_precision_reduction_split_k", "allow_bf16_reduced_precision_reduction",
              "allow_bf16_reduced_precision_reduction_split_k", "allow_fp16_accumulation", "fp32_precision"))
_harmless("cuda_backend", "Selects the CUDA/ROCm library for linear algebra, BLAS or flash attention; works in every build and is ignored without CUDA.",
          *_q("torch.backends.cuda", "preferred_linalg_library", "preferred_blas_library", "preferred_rocm_fa_library"))
_harmless("cuda_backend", "Answers whether torch was built with CUDA (False otherwise); never raises.",
          "torch.backends.cuda.is_built")
_unsupported("cuda_backend", "TDM211",
             *_q("torch.backends.cuda", "cublas_workspace_size", "cublaslt_workspace_size", "blas_workspace_size"),
             reason="The cuBLAS workspace size; raises without CUDA.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")
_unsupported("cuda_backend", "TDM211",
             *_q("torch.backends.cuda", "cufft_plan_cache", "cuFFTPlanCache", "cuFFTPlanCacheManager",
                 "cuFFTPlanCacheAttrContextProp"),
             *_q("torch.backends.cuda.cufft_plan_cache", "max_size", "size", "clear"),
             reason="The cuFFT plan cache of a CUDA device; raises without CUDA.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")

# ---- CUDA graphs -----------------------------------------------------------------------------
_GRAPHS = ("CUDAGraph", "graph", "graph_pool_handle", "make_graphed_callables", "is_current_stream_capturing")
_unsupported("graphs", "TDM201", "torch.cuda.graphs", *_q("torch.cuda", *_GRAPHS), *_q("torch.cuda.graphs", *_GRAPHS))

# ---- Caching allocator -----------------------------------------------------------------------
_ALLOCATOR = ("CUDAPluggableAllocator", "MemPool", "use_mem_pool", "change_current_allocator", "get_allocator_backend",
              "caching_allocator_alloc", "caching_allocator_delete", "caching_allocator_enable",
              "caching_allocator_disabled", "get_per_process_memory_fraction", "set_per_process_memory_fraction",
              "memory_snapshot")
_unsupported("allocator", "TDM207", *_q("torch.cuda", *_ALLOCATOR), *_q("torch.cuda.memory", *_ALLOCATOR),
             *_q("torch.cuda.memory", "_record_memory_history", "_snapshot", "_dump_snapshot", "_set_allocator_settings"))

# ---- NVML telemetry --------------------------------------------------------------------------
_unsupported("telemetry", "TDM208",
             *_q("torch.cuda", "utilization", "temperature", "power_draw", "clock_rate", "device_memory_used",
                 "memory_usage", "list_gpu_processes"),
             "torch.cuda.memory.list_gpu_processes")

# ---- Raw handles, external streams and IPC ---------------------------------------------------
_unsupported("handles", "TDM204", "torch.cuda.current_blas_handle", "torch.cuda.current_solver_handle",
             reason="Returns a raw cuBLAS / cuSOLVER handle for passing to CUDA libraries.")
_unsupported("handles", "TDM204", "torch.cuda.Stream.cuda_stream", "torch.cuda.Event.cuda_event",
             reason="A raw `cudaStream_t` / `cudaEvent_t` pointer for passing to CUDA code.")
_unsupported("handles", "TDM205", "torch.cuda.ExternalStream", "torch.cuda.streams.ExternalStream",
             "torch.cuda.get_stream_from_external")
_unsupported("handles", "TDM206", "torch.cuda.Event.from_ipc_handle",
             reason="Opens an event another process shared through a CUDA IPC handle.")
# ipc_collect frees CUDA memory that other processes released; elsewhere there is nothing to collect.
_shim("handles", "TDM104", "ipc_collect", reason="Housekeeping: the real call on CUDA, nothing to do on another backend.")

# ---- Custom CUDA extensions ------------------------------------------------------------------
_unsupported("extensions", "TDM202", "torch.utils.cpp_extension.CUDAExtension",
             reason="A setuptools extension compiled with nvcc; it builds only with a CUDA toolkit.")
_unsupported("extensions", "TDM202", "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
             reason="JIT-builds a C++/CUDA extension; CUDA sources (`.cu`, `cuda_sources=`) build only with CUDA.",
             hint="Keep a pure-PyTorch fallback; if the sources are C++ only, add `# torchdevice: ignore[TDM202]`.")
_unsupported("extensions", "TDM202", "literal:'*.cu'",
             reason="A `.cu` / `.cuh` CUDA source file; it compiles only with nvcc.")
_harmless("extensions", "Builds a C++ extension for the CPU; works without CUDA.", "torch.utils.cpp_extension.CppExtension")
_harmless("extensions", "The setuptools build_ext command for C++ and CUDA extensions; it runs without CUDA "
          "(a CUDAExtension it builds is reported at that name).", "torch.utils.cpp_extension.BuildExtension")
_harmless("extensions", "None without a CUDA toolkit; code uses it as a guard (`if CUDA_HOME is not None:`).",
          "torch.utils.cpp_extension.CUDA_HOME")

# ---- Jiterator -------------------------------------------------------------------------------
_unsupported("jiterator", "TDM209", "torch.cuda.jiterator",
             *_q("torch.cuda.jiterator", "_create_jit_fn", "_create_multi_output_jit_fn"))

# ---- Other CUDA-specific APIs, each with its own reason ---------------------------------------
_unsupported("cuda_specific", "TDM211", "torch.cuda.cudart", "torch.cuda.check_error", "torch.cuda.cudaStatus",
             reason="Raw CUDA runtime bindings and status codes.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")
_unsupported("cuda_specific", "TDM211", "torch.cuda.profiler",
             *_q("torch.cuda.profiler", "start", "stop", "profile", "cudart", "check_error", "DEFAULT_FLAGS"),
             reason="Starts and stops the CUDA profiler (cudaProfilerStart/Stop for nvprof / Nsight).",
             hint="Use torch.profiler, which profiles every backend.")
_unsupported("cuda_specific", "TDM211", "torch.cuda.tunable",
             *_q("torch.cuda.tunable", "enable", "is_enabled", "tuning_enable", "tuning_is_enabled",
                 "record_untuned_enable", "record_untuned_is_enabled", "set_max_tuning_duration",
                 "get_max_tuning_duration", "set_max_tuning_iterations", "get_max_tuning_iterations",
                 "set_filename", "get_filename", "get_results", "get_validators", "read_file", "tune_gemm_in_file",
                 "mgpu_tune_gemm_in_file", "set_rotating_buffer_size", "get_rotating_buffer_size",
                 "set_numerical_check_tolerances"),
             reason="TunableOp: GEMM kernel tuning for CUDA/ROCm.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")
_unsupported("cuda_specific", "TDM211", "torch.cuda.gds",
             *_q("torch.cuda.gds", "GdsFile", "gds_register_buffer", "gds_deregister_buffer"),
             reason="GPUDirect Storage: file I/O straight into CUDA memory.",
             hint="Load to CPU and move with `.to(runtime_shim.device())`.")
_unsupported("cuda_specific", "TDM211", "torch.cuda.GreenContext", "torch.cuda.green_contexts",
             *_q("torch.cuda.green_contexts", "GreenContext", "SUPPORTED"),
             reason="CUDA green contexts partition the streaming multiprocessors of a GPU.",
             hint="Keep it behind `runtime_shim.accelerator_type() == 'cuda'`.")
_unsupported("cuda_specific", "TDM211", "torch.cuda.nccl", "torch.cuda.comm", "torch.cuda.sparse",
             reason="A torch.cuda submodule whose every function is CUDA-only (NCCL, multi-GPU copies, legacy sparse types).",
             hint="See the entries of its functions.")
_unsupported("cuda_specific", "TDM211", "torch.cuda._sleep",
             reason="Spins a CUDA kernel for a number of cycles (used to test streams).",
             hint="Use `time.sleep` or real work on the chosen device.")

# ---- Submodules whose names are classified one by one ----------------------------------------
_harmless("submodules", "A submodule: importing it works in every build; each of its names has its own entry.",
          *_q("torch.cuda", "amp", "memory", "random", "streams", "nvtx"),
          *_q("torch.cuda.amp", "autocast_mode", "common", "grad_scaler"), "torch.backends.cudnn.rnn")

# ---- Environment (reported by rules/unsupported.py) -------------------------------------------
_unsupported("environment", "TDM203", "env:CUDA_VISIBLE_DEVICES")

# ---- CUDA-only third-party packages (imports reported by rules/unsupported.py) ---------------
_unsupported("third_party", "TDM210", "module:apex", "module:amp_C",
             reason="NVIDIA Apex (fused optimizers, apex.amp) builds CUDA kernels.",
             hint="Use torch.amp and the fused optimizers of torch.optim (`fused=True` where supported).")
_unsupported("third_party", "TDM210", "module:cupy", "module:cupyx", "module:pycuda", "module:numba.cuda",
             reason="A CUDA array / kernel library; it needs an NVIDIA GPU.",
             hint="Use torch operations on `runtime_shim.device()`, or keep a NumPy fallback.")
_unsupported("third_party", "TDM210", "module:triton",
             reason="Triton kernels need a GPU backend (CUDA, ROCm or XPU); they do not run on CPU or MPS.",
             hint="Keep a pure-PyTorch path for when `runtime_shim.accelerator_type()` is not a Triton backend.")
_unsupported("third_party", "TDM210", "module:flash_attn", "module:xformers",
             reason="Fused attention kernels built for NVIDIA GPUs.",
             hint="Use `torch.nn.functional.scaled_dot_product_attention`, which picks the best kernel per backend.")
_unsupported("third_party", "TDM210", "module:bitsandbytes",
             reason="Quantised optimizers and layers with CUDA kernels.",
             hint="Keep a fallback to torch.optim / torch.nn layers when the import fails.")
_unsupported("third_party", "TDM210", "module:tensorrt", "module:torch_tensorrt", "module:transformer_engine",
             reason="An NVIDIA inference or training engine; it needs an NVIDIA GPU.",
             hint="Keep a plain PyTorch path for other backends.")
_unsupported("third_party", "TDM208", "module:pynvml", "module:nvidia_smi", "module:GPUtil",
             reason="NVML bindings (GPU utilisation, temperature, power); only for NVIDIA GPUs.")


API: Dict[str, Api] = {}


def _index(entries: Iterable[Api]) -> None:
    for e in entries:
        if e.name in API:
            raise ValueError(f"registry lists {e.name} twice")
        API[e.name] = e


_index(_ENTRIES)

# Modules whose public names are all expected to be classified here.
CUDA_MODULE_PREFIXES = ("torch.cuda", "torch.backends.cuda", "torch.backends.cudnn")


def lookup(qualname: str) -> Optional[Api]:
    return API.get(qualname)


def entries() -> Iterator[Api]:
    return iter(sorted(API.values(), key=lambda a: a.name))


def handled_by(rule: str) -> Tuple[str, ...]:
    """The names of the entries that rule module ``rule`` ports (``Api.rule``), sorted: its ``HANDLES``."""
    return tuple(a.name for a in entries() if a.rule == rule)


def by_family() -> Dict[str, List[Api]]:
    """Entries grouped by family, families in ``FAMILIES`` order, entries sorted by name."""
    out: Dict[str, List[Api]] = {f: [] for f in FAMILIES}
    for api in entries():
        out.setdefault(api.family, []).append(api)
    return {f: apis for f, apis in out.items() if apis}


def module_entry(dotted: str) -> Optional[Api]:
    """The ``module:`` entry for an imported module or any of its parents (``apex.optimizers`` -> ``module:apex``)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        api = API.get("module:" + ".".join(parts[:i]))
        if api is not None:
            return api
    return None


def is_cuda_namespace(qualname: str) -> bool:
    return any(qualname == p or qualname.startswith(p + ".") for p in CUDA_MODULE_PREFIXES)


def register(*entries_: Api) -> None:
    """Add entries from a rule family module (keeps one registry, checked for duplicates)."""
    _index(entries_)


# --------------------------------------------------------------------------------------------
# What the runtime shim answers on every backend (a literal copy: this module never imports the
# shim; tests/test_registry.py compares them with ``runtime_shim``'s own lists).
# --------------------------------------------------------------------------------------------
#: Attributes of ``runtime_shim.get_device_properties(i)`` answered on every backend. Reading any
#: other attribute (``L2_cache_size``, ``warp_size``, ...) is reported at the use site (TDM213).
DEVICE_PROPERTY_ATTRIBUTES = frozenset({"name", "major", "minor", "total_memory", "is_integrated", "is_multi_gpu_board"})
#: Keys of ``runtime_shim.memory_stats()`` answered on every backend: none (on the CPU it is empty,
#: as ``torch.cuda.memory_stats()`` was on a CPU-only torch). A key read with ``[key]`` or
#: ``.get(key)`` (no default) is reported at the use site (TDM212).
MEMORY_STATS_KEYS: frozenset = frozenset()
