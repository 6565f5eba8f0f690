"""The one registry of CUDA APIs.

Every CUDA API that torchdevice-migrate knows about has exactly one entry here, keyed by its
qualified name (``torch.cuda.Event``). The entry says what happens to it:

* ``REWRITTEN``: ported automatically; ``replacement`` says to what, ``rule`` names the rule
  module that does it (``rename`` entries are pure renames done by ``rules/registry_renames.py``).
* ``HARMLESS``: left as is because it works on every backend; ``reason`` says why.
* ``UNSUPPORTED``: left in place and reported with a stable reason ``code``, a ``reason`` and a ``hint``.

The rules, the report, the statistics and ``docs/api-coverage.md`` all read this module; nothing
else lists CUDA APIs. Entries that are not plain qualified names use a prefix:
``torch.Tensor.cuda`` (a method, matched by attribute name), ``literal:'cuda'`` (a string literal).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, Optional

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

    @property
    def shim_name(self) -> Optional[str]:
        """For a pure rename into the shim, the shim attribute (``Event`` for ``runtime_shim.Event``)."""
        if self.rename and self.replacement.startswith(SHIM + "."):
            return self.replacement[len(SHIM) + 1 :]
        return None


# --------------------------------------------------------------------------------------------
# Reason codes. TDM1xx: rewritten; TDM2xx: unsupported (left in place); TDM3xx: needs review.
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
    # unsupported
    Reason("TDM201", "CUDA graphs", "CUDA graphs capture CUDA kernels; there is no portable equivalent.", "Guard the capture with `runtime_shim.accelerator_type() == 'cuda'` and run the eager path elsewhere."),
    Reason("TDM202", "Custom CUDA extension", "Custom CUDA kernels (`cpp_extension`, `CUDAExtension`, `.cu` sources) only build and run with CUDA.", "Keep a pure-PyTorch fallback and select it when the extension is unavailable."),
    Reason("TDM203", "CUDA_VISIBLE_DEVICES", "Writing `CUDA_VISIBLE_DEVICES` selects CUDA devices only.", "Use TORCHDEVICE_DEVICE to select a device portably."),
    Reason("TDM204", "Raw CUDA handle", "Raw CUDA handles (`cuda_stream`, `cudaStream_t`, pointers) have no meaning on other backends.", "Pass the shim's stream objects instead of raw handles."),
    Reason("TDM205", "External stream", "`ExternalStream` wraps a stream created outside PyTorch by CUDA code.", "Create streams with `runtime_shim.Stream()`."),
    Reason("TDM206", "CUDA IPC", "CUDA inter-process memory sharing has no portable equivalent.", "Share tensors through `torch.multiprocessing` on CPU."),
    Reason("TDM207", "CUDA allocator settings", "CUDA caching-allocator settings do not apply to other backends.", "Keep them behind a CUDA check."),
    Reason("TDM208", "NVML telemetry", "NVML telemetry (utilization, temperature, power, clocks) exists only for NVIDIA GPUs.", "Guard with a CUDA check or use psutil for CPU figures."),
    Reason("TDM209", "Jiterator", "The jiterator compiles CUDA kernels at run time.", "Write the kernel as ordinary PyTorch operations."),
    Reason("TDM210", "CUDA-only package", "This third-party package runs only on NVIDIA GPUs.", "Use a portable alternative or keep a fallback path when the import fails."),
    Reason("TDM211", "CUDA-specific API", "This CUDA API has no portable meaning.", "Keep it behind `runtime_shim.accelerator_type() == 'cuda'`."),
    # review
    Reason("TDM301", "Ambiguous CUDA string", "A `'cuda'` device string in a place where the syntax does not prove it is a device.", "If it is a device, wrap it as `runtime_shim.device_string(...)`; otherwise ignore this finding."),
    Reason("TDM302", "Comparison with an indexed CUDA device", "A comparison with `'cuda:N'` or a collection of device names cannot be ported mechanically.", "Compare `runtime_shim.device_type(x)` with `runtime_shim.accelerator_type()` instead."),
    Reason("TDM303", "Unknown CUDA API", "A `torch.cuda` name that the registry does not classify.", "Report it; port it by hand meanwhile."),
    Reason("TDM304", "Indirect CUDA reference", "A CUDA API is referenced without being called (passed as a value), so its use cannot be ported safely.", "Port the use site by hand."),
]
REASONS: Dict[str, Reason] = {r.code: r for r in _REASONS}


# --------------------------------------------------------------------------------------------
# The entries. Helpers keep each line short; each helper documents the status it creates.
# --------------------------------------------------------------------------------------------
_ENTRIES: list[Api] = []


def _shim(family: str, code: str, *names: str, module: str = "torch.cuda", reason: str = "") -> None:
    """``module.X`` is renamed to ``runtime_shim.X`` (same signature, portable behaviour)."""
    for n in names:
        _ENTRIES.append(Api(f"{module}.{n}", Status.REWRITTEN, family, replacement=f"{SHIM}.{n}",
                            rule="registry_renames", code=code, reason=reason, rename=True))


def _rename(name: str, shim_name: str, family: str, code: str) -> None:
    _ENTRIES.append(Api(name, Status.REWRITTEN, family, replacement=f"{SHIM}.{shim_name}",
                        rule="registry_renames", code=code, rename=True))


def _rule(name: str, family: str, code: str, rule: str, replacement: str, since: str = "") -> None:
    """Rewritten by a dedicated rule module (the call shape changes, not only the name)."""
    _ENTRIES.append(Api(name, Status.REWRITTEN, family, replacement=replacement, rule=rule, code=code, since=since))


def _harmless(family: str, reason: str, *names: str) -> None:
    for n in names:
        _ENTRIES.append(Api(n, Status.HARMLESS, family, reason=reason))


def _unsupported(family: str, code: str, *names: str, reason: str = "", hint: str = "") -> None:
    r = REASONS[code]
    for n in names:
        _ENTRIES.append(Api(n, Status.UNSUPPORTED, family, code=code, reason=reason or r.description, hint=hint or r.hint))


# Device placement and device queries (issue 2).
_rule("torch.Tensor.cuda", "device", "TDM101", "device_placement", "x.to(runtime_shim.device(...))")
_rule("torch.nn.Module.cuda", "device", "TDM101", "device_placement", "m.to(runtime_shim.device(...))")
_rule("torch.device", "device", "TDM101", "device_placement", "runtime_shim.device(...) when the argument is a CUDA device")
_rule("literal:'cuda'", "device", "TDM101", "device_strings", "runtime_shim.device_string('cuda') where the syntax proves a device")
_shim("device", "TDM102", "is_available", "device_count", "current_device", "set_device")
_rename("torch.cuda.device", "device_context", "device", "TDM102")

# Streams and events (issue 3).
_shim("stream", "TDM104", "Stream", "stream", "current_stream", "default_stream", "set_stream", "synchronize")
_shim("event", "TDM104", "Event")
# Memory statistics (issue 3).
_shim("memory", "TDM105", "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
      "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats", "empty_cache",
      "memory_stats", "mem_get_info", "memory_summary")
# RNG (issue 3).
_shim("rng", "TDM106", "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state",
      "get_rng_state_all", "set_rng_state", "set_rng_state_all")
# Device properties (issue 3).
_shim("query", "TDM107", "get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported",
      "OutOfMemoryError")


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


def is_cuda_namespace(qualname: str) -> bool:
    return any(qualname == p or qualname.startswith(p + ".") for p in CUDA_MODULE_PREFIXES)


def register(*entries_: Api) -> None:
    """Add entries from a rule family module (keeps one registry, checked for duplicates)."""
    _index(entries_)
