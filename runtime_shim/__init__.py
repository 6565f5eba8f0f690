"""runtime_shim: the small runtime that code migrated by torchdevice-migrate calls.

One flat module, vendored by copying this single file. It imports only torch, the
standard library and (lazily, on the CPU paths that need a figure) psutil, and it never
assigns anything into torch's namespace.

The backend is chosen once, on first use, and cached:
``TORCHDEVICE_DEVICE`` if set (``cpu``, ``mps``, ``xpu``, ``xpu:1``, ``cuda``, ``cuda:1``),
else CUDA if available, else XPU, else MPS, else the CPU. ``TORCHDEVICE_LOG_LEVEL``
(``DEBUG``, ``INFO``, ...; default ``WARNING``) makes the choice visible through
``logging.getLogger("runtime_shim")``.

On a CUDA machine every public function returns exactly what the ``torch.cuda`` call it
replaces returns: the shim binds the ``torch.cuda`` functions and classes themselves.
Where a backend cannot answer a question, the shim raises :class:`UnsupportedOnBackend`
instead of inventing a value. See docs/shim.md and docs/device-policy.md.
"""

import contextlib
import logging
import os
import platform
import subprocess
import sys
import threading
import time

import torch

__all__ = [
    # device choice
    "device", "device_string", "device_type", "accelerator_type", "is_accelerator",
    "is_available", "device_count", "current_device", "set_device", "device_context",
    # streams and events
    "Stream", "Event", "stream", "current_stream", "default_stream", "set_stream",
    "synchronize", "record_stream",
    # memory
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
    "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats",
    "empty_cache", "memory_stats", "mem_get_info", "memory_summary",
    # random numbers
    "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state",
    "get_rng_state_all", "set_rng_state", "set_rng_state_all",
    # device queries
    "get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported",
    # errors
    "OutOfMemoryError", "UnsupportedOnBackend",
    # beyond torch.cuda
    "distributed_backend", "ddp_device_ids", "pin_memory_enabled", "pin_memory", "load_location",
    "nvtx_range_push", "nvtx_range_pop", "nvtx_range", "nvtx_mark",
]

ENV_DEVICE = "TORCHDEVICE_DEVICE"
ENV_LOG_LEVEL = "TORCHDEVICE_LOG_LEVEL"

_log = logging.getLogger("runtime_shim")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

#: ``torch.cuda.OutOfMemoryError`` is ``torch.OutOfMemoryError``; it exists in every build,
#: so ``except runtime_shim.OutOfMemoryError`` works on every backend. Note that the CPU
#: allocator reports exhaustion as a plain ``RuntimeError``, which this does not catch.
OutOfMemoryError = torch.OutOfMemoryError


class UnsupportedOnBackend(RuntimeError):
    """The chosen backend cannot answer this call; the message says what to do instead."""

    def __init__(self, api, backend, advice):
        self.api = api
        self.backend = backend
        super().__init__(
            f"runtime_shim.{api} is not supported on the {backend} backend: {advice}"
        )


class _EventError(RuntimeError, ValueError):
    """Misuse of a CPU event. A RuntimeError, and a ValueError like torch's own events."""


# ---------------------------------------------------------------------------
# Backend choice (resolved once, cached in _S)
# ---------------------------------------------------------------------------

_S = None  # the chosen backend object; None until first use
_LOCK = threading.Lock()
_FORCE_HELP = "expected one of: cpu, mps, xpu, xpu:N, cuda, cuda:N"


def _resolve():
    """Choose the backend (once), log the choice, and cache it in ``_S``."""
    global _S
    with _LOCK:
        if _S is None:
            _configure_logging()
            backend_type, index, reason = _choose()
            backend = _BACKENDS[backend_type](index, reason)
            _log.info("runtime_shim: using %s (%s)", backend.map_device(None), reason)
            _log.debug("runtime_shim: torch %s, python %s", torch.__version__,
                       platform.python_version())
            _S = backend
            globals().update({name: getattr(backend, name) for name in _BOUND_NAMES})
    return _S


def _reset():
    """Forget the chosen backend so that the next call resolves again (for tests)."""
    global _S
    with _LOCK:
        _S = None
        for name in _LAZY_NAMES:
            globals().pop(name, None)
        globals().update(_DISPATCHERS)


def _configure_logging():
    level = os.environ.get(ENV_LOG_LEVEL, "").strip().upper()
    if not level:
        if _log.level == logging.NOTSET:
            _log.setLevel(logging.WARNING)
        return
    if level.isdigit():
        level = int(level)
    elif not isinstance(logging.getLevelName(level), int):
        raise ValueError(
            f"{ENV_LOG_LEVEL}={level!r} is not a logging level; "
            "expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    _log.setLevel(level)
    if not _log.handlers:
        _log.addHandler(logging.StreamHandler())


def _xpu_available():
    xpu = getattr(torch, "xpu", None)
    return xpu is not None and xpu.is_available()


def _choose():
    """Return (backend type, forced index or None, reason)."""
    forced = os.environ.get(ENV_DEVICE, "").strip()
    if forced:
        backend_type, index = _parse_forced(forced)
        return backend_type, index, f"forced by {ENV_DEVICE}={forced}"
    if torch.cuda.is_available():
        return "cuda", None, "CUDA is available"
    if _xpu_available():
        return "xpu", None, "no CUDA; XPU is available"
    if torch.backends.mps.is_available():
        return "mps", None, "no CUDA or XPU; MPS is available"
    return "cpu", None, "no CUDA, XPU or MPS device is available"


def _parse_forced(value):
    backend_type, _, index_text = value.lower().partition(":")
    if backend_type not in _BACKENDS or (index_text and not index_text.isdigit()):
        raise ValueError(f"{ENV_DEVICE}={value!r} is not a device runtime_shim can use; {_FORCE_HELP}")
    index = int(index_text) if index_text else None
    if backend_type in ("mps", "cpu") and index not in (None, 0):
        raise ValueError(f"{ENV_DEVICE}={value!r}: {backend_type} has only index 0; {_FORCE_HELP}")
    if backend_type == "cpu":
        return "cpu", None
    available = {"cuda": torch.cuda.is_available, "xpu": _xpu_available,
                 "mps": torch.backends.mps.is_available}[backend_type]()
    if not available:
        raise RuntimeError(
            f"{ENV_DEVICE}={value!r} asks for {backend_type}, but it is not available here "
            f"(torch {torch.__version__}); unset {ENV_DEVICE} or set it to cpu"
        )
    if backend_type == "mps":
        return "mps", None
    count = torch.get_device_module(backend_type).device_count()
    if index is not None and index >= count:
        raise ValueError(f"{ENV_DEVICE}={value!r}: only {count} {backend_type} device(s) are visible")
    return backend_type, index


# ---------------------------------------------------------------------------
# Backends: shared device mapping
# ---------------------------------------------------------------------------

class _ThreadState(threading.local):
    """Per-thread state: the current CPU stream and its context stack, open NVTX ranges."""

    stream = None
    stream_stack = None
    nvtx = None


class _Backend:
    """What every backend shares: its name and the device mapping of docs/device-policy.md.

    Subclasses provide one attribute per public function of this module (a method, or on
    CUDA the ``torch.cuda`` function itself); the public functions only dispatch to them.
    """

    type = ""            # 'cuda', 'xpu', 'mps' or 'cpu'
    accelerator = None   # the same, or None for the CPU
    keeps_index = False  # whether 'cuda:N' keeps its N (CUDA, XPU) or drops it (MPS, CPU)

    def __init__(self, index, reason):
        self.index = index    # index forced by TORCHDEVICE_DEVICE, else None
        self.reason = reason
        self.devices = {}     # device() cache: spec -> torch.device
        self.strings = {}     # device_string() cache: spec -> str
        self._local = _ThreadState()

    def map_device(self, spec, index=None):
        """Map a spec to a torch.device (see device()); caches index-less answers."""
        if spec is None:
            result = self._target(index)
        elif isinstance(spec, int) and not isinstance(spec, bool):
            result = self._target(torch.device("cuda", spec).index)  # validates like torch
        else:
            result = torch.device(spec) if index is None else torch.device(spec, index)
            if result.type == "cuda":
                result = self._target(result.index)
        if index is None:
            self.devices[spec] = result
        return result

    def _target(self, cuda_index):
        """What CUDA device ``cuda_index`` (None: no index) becomes on this backend."""
        if self.keeps_index and cuda_index is not None:
            return torch.device(self.type, cuda_index)
        return torch.device(self.type)

    def device_arg(self, device):
        """Map a device argument of a torch.cuda-style function to this backend's device."""
        if device is None or isinstance(device, int):
            return device
        return self.map_device(device)

    # Helpers of the "beyond torch.cuda" group shared by the non-CUDA backends.
    def load_location(self):
        """A ``torch.load`` map_location that moves storages saved on CUDA to this backend's
        device and leaves every other storage where it was saved."""
        target = self._target(None)
        if target.type == "cpu":
            return _restore_cuda_to_cpu

        def restore(storage, location):
            return storage.to(device=target) if str(location).startswith("cuda") else None

        return restore

    def distributed_backend(self, requested="nccl"):
        if str(requested).lower() != "nccl":
            return requested
        if not torch.distributed.is_available():
            raise UnsupportedOnBackend(
                "distributed_backend", self.type,
                "this torch build has no torch.distributed; install a build with distributed support")
        return torch.distributed.get_default_backend_for_device(self.type)

    def _nvtx_stack(self):
        stack = self._local.nvtx
        if stack is None:
            stack = self._local.nvtx = []
        return stack

    def nvtx_range_push(self, msg):
        rf = torch.autograd.profiler.record_function(msg)
        rf.__enter__()
        stack = self._nvtx_stack()
        stack.append(rf)
        return len(stack) - 1

    def nvtx_range_pop(self):
        stack = self._nvtx_stack()
        if not stack:
            return -1
        stack.pop().__exit__(None, None, None)
        return len(stack)

    def nvtx_range(self, msg, *args, **kwargs):
        return torch.autograd.profiler.record_function(msg.format(*args, **kwargs))

    def nvtx_mark(self, msg):
        with torch.autograd.profiler.record_function(msg):
            pass


# ---------------------------------------------------------------------------
# CUDA backend: torch.cuda itself
# ---------------------------------------------------------------------------

# Public names whose CUDA implementation is the torch.cuda attribute of the same name.
_SAME_AS_TORCH_CUDA = (
    "is_available", "device_count", "current_device", "set_device",
    "Stream", "Event", "stream", "current_stream", "default_stream", "set_stream", "synchronize",
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
    "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats",
    "empty_cache", "memory_stats", "mem_get_info", "memory_summary",
    "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed",
    "get_rng_state", "get_rng_state_all", "set_rng_state", "set_rng_state_all",
    "get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported",
)


class _CudaBackend(_Backend):
    """CUDA: bind the torch.cuda functions and classes, so each call is the real one."""

    type = accelerator = "cuda"
    keeps_index = True

    def __init__(self, index, reason):
        super().__init__(index, reason)
        for name in _SAME_AS_TORCH_CUDA:
            setattr(self, name, getattr(torch.cuda, name))
        self.device_context = torch.cuda.device
        nvtx = torch.cuda.nvtx
        self.nvtx_range_push = nvtx.range_push
        self.nvtx_range_pop = nvtx.range_pop
        self.nvtx_range = nvtx.range
        self.nvtx_mark = nvtx.mark
        if index is not None:
            torch.cuda.set_device(index)

    def distributed_backend(self, requested="nccl"):
        return requested

    @staticmethod
    def load_location():
        return None  # torch.load's own default: restore each storage where it was saved

    @staticmethod
    def record_stream(tensor, stream):
        tensor.record_stream(stream)

    @staticmethod
    def ddp_device_ids(ids):
        return ids

    @staticmethod
    def pin_memory_enabled(requested=True):
        return requested

    @staticmethod
    def pin_memory(tensor):
        return tensor.pin_memory()


# ---------------------------------------------------------------------------
# XPU and MPS backends: torch.accelerator, torch.Stream/torch.Event, torch.xpu/torch.mps
# ---------------------------------------------------------------------------

class _AcceleratorStream(torch.Stream):
    """``Stream(device=None, priority=0)`` on XPU/MPS: a ``torch.Stream`` of the chosen device.

    CUDA-style device arguments ('cuda:1', 1) are mapped like device().
    """

    def __new__(cls, device=None, priority=0, **kwargs):
        s = _S or _resolve()
        return super().__new__(cls, device=s.map_device(device), priority=priority, **kwargs)


class _AcceleratorEvent(torch.Event):
    """``Event(enable_timing=False, blocking=False, interprocess=False)`` on XPU/MPS:
    a ``torch.Event`` of the chosen device (``elapsed_time`` in milliseconds)."""

    def __new__(cls, enable_timing=False, blocking=False, interprocess=False):
        s = _S or _resolve()
        return super().__new__(cls, device=s.map_device(None), enable_timing=enable_timing,
                               blocking=blocking, interprocess=interprocess)


class _AcceleratorBackend(_Backend):
    """What XPU and MPS share: generic streams and events through torch.accelerator."""

    Stream = _AcceleratorStream
    Event = _AcceleratorEvent

    def __init__(self, index, reason):
        super().__init__(index, reason)
        self.module = torch.get_device_module(self.type)

    def stream(self, stream):
        return stream if stream is not None else contextlib.nullcontext()

    def current_stream(self, device=None):
        return torch.accelerator.current_stream(self.device_arg(device))

    def default_stream(self, device=None):
        default = getattr(self.module, "default_stream", None)
        if default is None:
            raise UnsupportedOnBackend(
                "default_stream", self.type,
                f"torch.{self.type} exposes no default stream; use current_stream() outside any "
                "stream context, which is the default stream unless set_stream() changed it")
        return default(self.device_arg(device))

    def set_stream(self, stream):
        torch.accelerator.set_stream(stream)

    def synchronize(self, device=None):
        torch.accelerator.synchronize(self.device_arg(device))

    def memory_summary(self, device=None, abbreviated=False):
        return _format_summary(self.type, self.memory_stats(device), self._summary_notes())

    def _summary_notes(self):
        return []


class _XpuBackend(_AcceleratorBackend):
    """Intel XPU: torch.xpu, with CUDA-style device arguments mapped to XPU ones."""

    type = accelerator = "xpu"
    keeps_index = True

    def __init__(self, index, reason):
        super().__init__(index, reason)
        if index is not None:
            torch.xpu.set_device(index)

    def is_available(self):
        return torch.xpu.is_available()

    def device_count(self):
        return torch.xpu.device_count()

    def current_device(self):
        return torch.xpu.current_device()

    def set_device(self, device):
        torch.xpu.set_device(self.device_arg(device))

    def device_context(self, device):
        return torch.xpu.device(self.device_arg(device))

    def record_stream(self, tensor, stream):
        tensor.record_stream(stream)

    # memory: torch.xpu's own figures
    def memory_allocated(self, device=None):
        return torch.xpu.memory_allocated(self.device_arg(device))

    def max_memory_allocated(self, device=None):
        return torch.xpu.max_memory_allocated(self.device_arg(device))

    def memory_reserved(self, device=None):
        return torch.xpu.memory_reserved(self.device_arg(device))

    def max_memory_reserved(self, device=None):
        return torch.xpu.max_memory_reserved(self.device_arg(device))

    def reset_peak_memory_stats(self, device=None):
        torch.xpu.reset_peak_memory_stats(self.device_arg(device))

    # torch.cuda.reset_max_memory_allocated is itself reset_peak_memory_stats
    reset_max_memory_allocated = reset_peak_memory_stats

    def reset_accumulated_memory_stats(self, device=None):
        torch.xpu.reset_accumulated_memory_stats(self.device_arg(device))

    def empty_cache(self):
        torch.xpu.empty_cache()

    def memory_stats(self, device=None):
        return torch.xpu.memory_stats(self.device_arg(device))

    def mem_get_info(self, device=None):
        return torch.xpu.mem_get_info(self.device_arg(device))

    # random numbers: torch.xpu's generators
    def manual_seed(self, seed):
        torch.xpu.manual_seed(seed)

    def manual_seed_all(self, seed):
        torch.xpu.manual_seed_all(seed)

    def seed(self):
        torch.xpu.seed()

    def seed_all(self):
        torch.xpu.seed_all()

    def initial_seed(self):
        return torch.xpu.initial_seed()

    def get_rng_state(self, device="cuda"):
        return torch.xpu.get_rng_state(self.device_arg(device))

    def get_rng_state_all(self):
        return torch.xpu.get_rng_state_all()

    def set_rng_state(self, new_state, device="cuda"):
        torch.xpu.set_rng_state(new_state, self.device_arg(device))

    def set_rng_state_all(self, new_states):
        torch.xpu.set_rng_state_all(new_states)

    # device queries
    def get_device_name(self, device=None):
        return torch.xpu.get_device_name(self.device_arg(device))

    def get_device_properties(self, device=None):
        props = torch.xpu.get_device_properties(self.device_arg(device))
        return _DeviceProperties(
            "xpu", props.name, props.total_memory, props.max_compute_units,
            backend_properties=props)

    def get_device_capability(self, device=None):
        return (0, 0)

    def is_bf16_supported(self, including_emulation=True):
        return torch.xpu.is_bf16_supported(including_emulation)

    # beyond torch.cuda
    @staticmethod
    def ddp_device_ids(ids):
        return ids

    @staticmethod
    def pin_memory_enabled(requested=True):
        return requested

    @staticmethod
    def pin_memory(tensor):
        return tensor.pin_memory()


class _SingleDevice:
    """A backend with exactly one device (MPS, CPU): always available, index 0, nothing to select."""

    def is_available(self):
        return True

    def device_count(self):
        return 1

    def current_device(self):
        return 0

    def set_device(self, device):
        pass

    def device_context(self, device):
        return contextlib.nullcontext()


class _MpsBackend(_SingleDevice, _AcceleratorBackend):
    """Apple MPS: one device; torch.mps for memory and random numbers."""

    type = accelerator = "mps"

    def record_stream(self, tensor, stream):
        pass  # one in-order command queue: memory is never reused ahead of pending work

    # memory: torch.mps figures; MPS keeps no peak
    def memory_allocated(self, device=None):
        return torch.mps.current_allocated_memory()

    def _no_peak(self, api):
        return UnsupportedOnBackend(
            api, "mps",
            "the MPS allocator keeps no peak figure; sample memory_allocated() or "
            "memory_reserved() at the points you care about")

    def max_memory_allocated(self, device=None):
        raise self._no_peak("max_memory_allocated")

    def memory_reserved(self, device=None):
        return torch.mps.driver_allocated_memory()

    def max_memory_reserved(self, device=None):
        raise self._no_peak("max_memory_reserved")

    def reset_peak_memory_stats(self, device=None):
        pass  # no peak counter to reset

    reset_max_memory_allocated = reset_peak_memory_stats
    reset_accumulated_memory_stats = reset_peak_memory_stats

    def empty_cache(self):
        torch.mps.empty_cache()

    def memory_stats(self, device=None):
        return {
            "allocated_bytes.all.current": torch.mps.current_allocated_memory(),
            "reserved_bytes.all.current": torch.mps.driver_allocated_memory(),
        }

    def mem_get_info(self, device=None):
        total = torch.mps.recommended_max_memory()
        return max(0, total - torch.mps.driver_allocated_memory()), total

    def _summary_notes(self):
        return ["reserved = memory the Metal driver holds for this process; MPS keeps no peak."]

    # random numbers: the MPS generator
    def manual_seed(self, seed):
        torch.mps.manual_seed(seed)

    manual_seed_all = manual_seed

    def seed(self):
        torch.mps.seed()

    seed_all = seed

    def initial_seed(self):
        return torch.mps._get_default_mps_generator().initial_seed()

    def get_rng_state(self, device="cuda"):
        return torch.mps.get_rng_state()

    def get_rng_state_all(self):
        return [torch.mps.get_rng_state()]

    def set_rng_state(self, new_state, device="cuda"):
        torch.mps.set_rng_state(new_state)

    def set_rng_state_all(self, new_states):
        _set_single_state_all(self, new_states)

    # device queries
    def get_device_name(self, device=None):
        return _cpu_model_name()  # the Apple chip ("Apple M2 Pro"), whose GPU MPS drives

    def get_device_properties(self, device=None):
        return _DeviceProperties(
            "mps", self.get_device_name(), torch.mps.recommended_max_memory(),
            multi_processor_count=None, unavailable=("multi_processor_count",))

    def get_device_capability(self, device=None):
        return (0, 0)

    def is_bf16_supported(self, including_emulation=True):
        return torch.backends.mps.is_macos_or_newer(14, 0)

    # beyond torch.cuda
    @staticmethod
    def ddp_device_ids(ids):
        return None

    @staticmethod
    def pin_memory_enabled(requested=True):
        return False

    @staticmethod
    def pin_memory(tensor):
        return tensor


# ---------------------------------------------------------------------------
# CPU backend: in-order streams, perf_counter events, psutil memory figures
# ---------------------------------------------------------------------------

_CPU = torch.device("cpu")


class _CpuStream:
    """A CPU "stream": work runs in order on the calling thread, so waits and
    ``synchronize()`` return at once and ``query()`` is True. ``with s:`` makes it the
    current stream of the thread, like ``torch.cuda.stream(s)``."""

    __slots__ = ("device", "priority")

    def __init__(self, device=None, priority=0, **kwargs):
        self.device = _CPU
        self.priority = priority

    def synchronize(self):
        pass

    def query(self):
        return True

    def wait_stream(self, stream):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        if event is None:
            event = _CpuEvent()
        event.record(self)
        return event

    def __enter__(self):
        local = (_S or _resolve())._local
        stack = local.stream_stack
        if stack is None:
            stack = local.stream_stack = []
        stack.append(local.stream)
        local.stream = self
        return self

    def __exit__(self, *exc):
        local = (_S or _resolve())._local
        local.stream = local.stream_stack.pop()
        return False

    def __repr__(self):
        return f"<runtime_shim cpu Stream priority={self.priority} at {id(self):#x}>"


class _CpuEvent:
    """A CPU event: ``record()`` takes ``time.perf_counter_ns()``; ``elapsed_time`` is in
    milliseconds. Waits and ``synchronize()`` return at once; ``query()`` is True."""

    __slots__ = ("enable_timing", "blocking", "interprocess", "_ns")

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        self.enable_timing = enable_timing
        self.blocking = blocking
        self.interprocess = interprocess
        self._ns = None

    def record(self, stream=None):
        self._ns = time.perf_counter_ns()

    def wait(self, stream=None):
        pass

    def query(self):
        return True

    def synchronize(self):
        pass

    def elapsed_time(self, end_event):
        if not (self.enable_timing and end_event.enable_timing):
            raise _EventError("Both events must be created with argument 'enable_timing=True'. "
                              "(runtime_shim, cpu backend)")
        if self._ns is None or end_event._ns is None:
            raise _EventError("Both events must be recorded before calculating elapsed time. "
                              "(runtime_shim, cpu backend)")
        return (end_event._ns - self._ns) / 1e6

    def ipc_handle(self):
        raise UnsupportedOnBackend("Event.ipc_handle", "cpu",
                                   "interprocess events exist only on CUDA; share results another way")

    def __repr__(self):
        state = "unrecorded" if self._ns is None else f"recorded at {self._ns} ns"
        return f"<runtime_shim cpu Event timing={self.enable_timing} {state}>"


def _psutil():
    """psutil, imported on first use by the CPU paths that need a memory figure."""
    try:
        import psutil
    except ImportError:
        raise UnsupportedOnBackend(
            "memory and device queries", "cpu",
            "CPU memory figures come from psutil; pip install psutil") from None
    return psutil


def _read_vm_hwm():
    """Peak resident set size from /proc/self/status (Linux), in bytes; None elsewhere."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _clear_os_peak():
    """Reset the kernel's peak RSS (Linux: write 5 to /proc/self/clear_refs). True if done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _CpuBackend(_SingleDevice, _Backend):
    """CPU: one device; the process's memory figures from psutil and the kernel."""

    type = "cpu"
    Stream = _CpuStream
    Event = _CpuEvent

    def __init__(self, index, reason):
        super().__init__(index, reason)
        self._proc = None           # psutil.Process, created on first memory call
        self._observed_peak = None  # set when the OS peak could not be reset
        self._default_stream = _CpuStream()

    # streams
    def stream(self, stream):
        return stream if stream is not None else contextlib.nullcontext()

    def current_stream(self, device=None):
        return self._local.stream or self._default_stream

    def default_stream(self, device=None):
        return self._default_stream

    def set_stream(self, stream):
        if stream is not None:
            self._local.stream = stream

    def synchronize(self, device=None):
        pass  # eager CPU kernels have finished when they return

    def record_stream(self, tensor, stream):
        pass  # in-order execution: memory is never reused ahead of pending work

    # memory: the process's resident set
    def _process(self):
        if self._proc is None:
            self._proc = _psutil().Process()
        return self._proc

    def _rss(self):
        rss = (self._proc or self._process()).memory_info().rss
        if self._observed_peak is not None and rss > self._observed_peak:
            self._observed_peak = rss
        return rss

    def _peak(self):
        if self._observed_peak is not None:
            return max(self._observed_peak, self._rss())
        hwm = _read_vm_hwm()
        if hwm is not None:
            return hwm
        info = (self._proc or self._process()).memory_info()
        if hasattr(info, "peak_wset"):  # Windows
            return info.peak_wset
        import resource
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024

    def peak_source(self):
        if self._observed_peak is not None:
            return "largest RSS seen by runtime_shim calls since the last reset"
        if _read_vm_hwm() is not None:
            return "kernel VmHWM (peak RSS) since process start or the last reset"
        return "OS peak RSS since process start"

    def memory_allocated(self, device=None):
        return self._rss()

    memory_reserved = memory_allocated

    def max_memory_allocated(self, device=None):
        return self._peak()

    max_memory_reserved = max_memory_allocated

    def reset_peak_memory_stats(self, device=None):
        if _clear_os_peak():
            self._observed_peak = None
        else:
            self._observed_peak = 0
            self._rss()

    reset_max_memory_allocated = reset_peak_memory_stats

    def reset_accumulated_memory_stats(self, device=None):
        pass  # the CPU figures have no accumulated counters

    def empty_cache(self):
        pass  # torch's CPU allocator keeps no cache

    def memory_stats(self, device=None):
        rss, peak = self._rss(), self._peak()
        return {
            "allocated_bytes.all.current": rss,
            "allocated_bytes.all.peak": peak,
            "reserved_bytes.all.current": rss,
            "reserved_bytes.all.peak": peak,
        }

    def mem_get_info(self, device=None):
        vm = _psutil().virtual_memory()
        return vm.available, vm.total

    def memory_summary(self, device=None, abbreviated=False):
        notes = ["allocated = reserved = resident set size (RSS) of this process.",
                 f"peak = {self.peak_source()}."]
        return _format_summary("cpu", self.memory_stats(), notes)

    # random numbers: torch.default_generator
    def manual_seed(self, seed):
        torch.default_generator.manual_seed(int(seed))

    manual_seed_all = manual_seed

    def seed(self):
        torch.default_generator.seed()

    seed_all = seed

    def initial_seed(self):
        return torch.default_generator.initial_seed()

    def get_rng_state(self, device="cuda"):
        return torch.default_generator.get_state()

    def get_rng_state_all(self):
        return [torch.default_generator.get_state()]

    def set_rng_state(self, new_state, device="cuda"):
        torch.default_generator.set_state(new_state)

    def set_rng_state_all(self, new_states):
        _set_single_state_all(self, new_states)

    # device queries
    def get_device_name(self, device=None):
        return _cpu_model_name()

    def get_device_properties(self, device=None):
        return _DeviceProperties("cpu", _cpu_model_name(), _psutil().virtual_memory().total,
                                 os.cpu_count())

    def get_device_capability(self, device=None):
        return (0, 0)

    def is_bf16_supported(self, including_emulation=True):
        if including_emulation:
            return True  # torch ships bfloat16 kernels for the CPU
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
            return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        raise UnsupportedOnBackend(
            "is_bf16_supported(including_emulation=False)", "cpu",
            f"torch has no check for native bfloat16 instructions on {platform.machine()}; "
            "call is_bf16_supported() (bfloat16 works on every CPU torch supports)")

    # beyond torch.cuda
    @staticmethod
    def ddp_device_ids(ids):
        return None

    @staticmethod
    def pin_memory_enabled(requested=True):
        return False

    @staticmethod
    def pin_memory(tensor):
        return tensor


_BACKENDS = {"cuda": _CudaBackend, "xpu": _XpuBackend, "mps": _MpsBackend, "cpu": _CpuBackend}


# ---------------------------------------------------------------------------
# Shared helpers of the non-CUDA backends
# ---------------------------------------------------------------------------

class _DeviceProperties:
    """``get_device_properties()`` where torch has no CUDA-shaped object (XPU, MPS, CPU).

    Attributes: ``type``, ``name``, ``total_memory`` (bytes), ``multi_processor_count``,
    ``major``, ``minor`` (0, 0: no CUDA compute capability). An attribute the backend cannot
    provide raises UnsupportedOnBackend; on XPU other attributes come from torch.xpu's object.
    """

    def __init__(self, type, name, total_memory, multi_processor_count, major=0, minor=0,
                 backend_properties=None, unavailable=()):
        self.type = type
        self.name = name
        self.total_memory = total_memory
        if multi_processor_count is not None:
            self.multi_processor_count = multi_processor_count
        self.major = major
        self.minor = minor
        self._backend_properties = backend_properties
        self._unavailable = unavailable

    def __getattr__(self, attr):  # only called for attributes not set above
        if attr in self.__dict__.get("_unavailable", ()):
            raise UnsupportedOnBackend(
                f"get_device_properties().{attr}", self.__dict__["type"],
                "torch does not report it for this device")
        props = self.__dict__.get("_backend_properties")
        if props is not None:
            return getattr(props, attr)
        raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")

    def __repr__(self):
        mpc = self.__dict__.get("multi_processor_count", "unknown")
        return (f"_DeviceProperties(type={self.type!r}, name={self.name!r}, major={self.major}, "
                f"minor={self.minor}, total_memory={self.total_memory // 2**20}MB, "
                f"multi_processor_count={mpc})")


_cpu_name_cache = []


def _cpu_model_name():
    """The processor's model name: /proc/cpuinfo, sysctl on macOS, else platform."""
    if _cpu_name_cache:
        return _cpu_name_cache[0]
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not name and sys.platform == "darwin":
        try:
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    _cpu_name_cache.append(name)
    return name


def _set_single_state_all(backend, new_states):
    """set_rng_state_all on a one-generator backend: at most one state."""
    new_states = list(new_states)
    if len(new_states) > 1:
        raise ValueError(
            f"runtime_shim.set_rng_state_all: got {len(new_states)} states, but the "
            f"{backend.type} backend has one generator; pass [get_rng_state()] or one state")
    for state in new_states:
        backend.set_rng_state(state)


def _format_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def _format_summary(backend, stats, notes):
    lines = [f"runtime_shim memory summary ({backend} backend)"]
    for key in sorted(stats):
        if "bytes" in key and key.endswith((".all.current", ".all.peak")):
            lines.append(f"  {key:<32} {_format_bytes(stats[key]):>12}")
    lines.extend(f"  {note}" for note in notes)
    return "\n".join(lines) + "\n"


if hasattr(os, "register_at_fork"):
    def _after_fork_in_child():
        # psutil.Process caches the pid: a forked child must not report its parent.
        if isinstance(_S, _CpuBackend):
            _S._proc = None

    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------
# Public API: device choice
# ---------------------------------------------------------------------------

def device(spec=None, index=None):
    """The device a CUDA-ish spec stands for on this machine (docs/device-policy.md).

    ``None``, ``'cuda'``, ``'cuda:N'``, an int N and ``torch.device('cuda', N)`` become the
    chosen device: identity on CUDA; ``xpu``/``xpu:N`` on XPU (index kept); ``mps`` or
    ``cpu`` (index dropped). Any other spec (``'cpu'``, ``'meta'``, ``'mps'``) is returned
    unchanged as ``torch.device(spec)``. ``device('cuda', 1)`` mirrors ``torch.device('cuda', 1)``.
    """
    s = _S or _resolve()
    if index is None:
        d = s.devices.get(spec)
        if d is not None:
            return d
    return s.map_device(spec, index)


def device_string(spec=None):
    """``str(device(spec))``: ``'cuda'``, ``'cuda:1'``, ``'xpu:1'``, ``'mps'``, ``'cpu'``."""
    s = _S or _resolve()
    text = s.strings.get(spec)
    if text is None:
        text = s.strings[spec] = str(device(spec))
    return text


def device_type(spec=None):
    """The type of ``device(spec)``: ``'cuda'``, ``'xpu'``, ``'mps'``, ``'cpu'`` (or ``'meta'``...)."""
    return device(spec).type


def accelerator_type():
    """``'cuda'``, ``'xpu'`` or ``'mps'``; ``None`` when the chosen device is the CPU."""
    return (_S or _resolve()).accelerator


def is_accelerator(value):
    """``'cuda' in value``, ported: True when an accelerator was chosen and ``accelerator_type()
    in value``, where a torch.device counts as its ``str()``. Always False on the CPU. A collection
    (``'cuda' in device_types``, ``'cuda' in sys.argv``) is a membership test, as in the original:
    on CUDA the answer is exactly the original's."""
    accelerator = (_S or _resolve()).accelerator
    if accelerator is None:
        return False
    if isinstance(value, torch.device):
        return accelerator in str(value)
    try:
        return accelerator in value
    except TypeError:  # not a container (``x.is_cuda`` of an object whose ``.device`` is no string)
        return accelerator in str(value)


def is_available():
    """CUDA: ``torch.cuda.is_available()``. Elsewhere True: the chosen device (the CPU
    included) can be used. Agrees with ``device_count() >= 1``."""
    return (_S or _resolve()).is_available()


def device_count():
    """CUDA/XPU: the device count of torch.cuda/torch.xpu. MPS and CPU: 1."""
    return (_S or _resolve()).device_count()


def current_device():
    """CUDA/XPU: the current device index. MPS and CPU: 0."""
    return (_S or _resolve()).current_device()


def set_device(device):
    """CUDA: ``torch.cuda.set_device``; XPU: ``torch.xpu.set_device`` (CUDA specs mapped).
    MPS and CPU: accepts any int/str/device and does nothing (there is one device)."""
    return (_S or _resolve()).set_device(device)


def device_context(device):
    """``with torch.cuda.device(i):`` ported: ``torch.cuda.device``/``torch.xpu.device``
    on CUDA/XPU, a no-op context manager on MPS and CPU."""
    return (_S or _resolve()).device_context(device)


# ---------------------------------------------------------------------------
# Public API: streams and events
# ---------------------------------------------------------------------------

# ``Stream`` and ``Event`` are classes that depend on the backend, so they are looked up
# on first access through the module __getattr__ below (which resolves the backend, and
# resolution makes them module globals).
#   CUDA: torch.cuda.Stream / torch.cuda.Event.
#   XPU, MPS: subclasses of torch.Stream / torch.Event for the chosen device.
#   CPU: an in-order stream and a perf_counter_ns event (see _CpuStream, _CpuEvent).
_LAZY_NAMES = ("Stream", "Event")


def __getattr__(name):
    if name in _LAZY_NAMES:
        return getattr(_S or _resolve(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))


def stream(stream):
    """``with torch.cuda.stream(s):`` ported; ``s`` may be None (no-op).
    CUDA: ``torch.cuda.stream``. Elsewhere the stream's own context manager."""
    return (_S or _resolve()).stream(stream)


def current_stream(device=None):
    """CUDA: ``torch.cuda.current_stream``. XPU/MPS: ``torch.accelerator.current_stream``.
    CPU: the thread's current CPU stream (the default stream unless one was set)."""
    return (_S or _resolve()).current_stream(device)


def default_stream(device=None):
    """CUDA: ``torch.cuda.default_stream``. CPU: the process's default CPU stream.
    XPU/MPS: the device module's default stream, or UnsupportedOnBackend if it has none."""
    return (_S or _resolve()).default_stream(device)


def set_stream(stream):
    """CUDA: ``torch.cuda.set_stream``; XPU/MPS: ``torch.accelerator.set_stream``;
    CPU: makes ``stream`` the thread's current CPU stream."""
    return (_S or _resolve()).set_stream(stream)


def synchronize(device=None):
    """Wait for all work on the device. CUDA: ``torch.cuda.synchronize``; XPU/MPS:
    ``torch.accelerator.synchronize``; CPU: returns at once (eager CPU work is finished)."""
    return (_S or _resolve()).synchronize(device)


def record_stream(tensor, stream):
    """``tensor.record_stream(stream)`` ported: the real call on CUDA/XPU; nothing on MPS
    and CPU, whose single in-order queue never reuses memory ahead of pending work."""
    return (_S or _resolve()).record_stream(tensor, stream)


# ---------------------------------------------------------------------------
# Public API: memory (docs/shim.md says what each figure means on each backend)
# ---------------------------------------------------------------------------

def memory_allocated(device=None):
    """Bytes in use. CUDA/XPU: by tensors (torch's allocator). MPS:
    ``torch.mps.current_allocated_memory()``. CPU: the process's resident set size."""
    return (_S or _resolve()).memory_allocated(device)


def max_memory_allocated(device=None):
    """Peak of memory_allocated since start or the last reset. CUDA/XPU: torch's.
    CPU: peak RSS (Linux VmHWM). MPS: UnsupportedOnBackend (no peak is kept)."""
    return (_S or _resolve()).max_memory_allocated(device)


def memory_reserved(device=None):
    """Bytes held by the allocator. CUDA/XPU: torch's caching allocator. MPS:
    ``torch.mps.driver_allocated_memory()``. CPU: the resident set size (as allocated)."""
    return (_S or _resolve()).memory_reserved(device)


def max_memory_reserved(device=None):
    """Peak of memory_reserved. CUDA/XPU: torch's. CPU: peak RSS. MPS: UnsupportedOnBackend."""
    return (_S or _resolve()).max_memory_reserved(device)


def reset_peak_memory_stats(device=None):
    """CUDA/XPU: torch's. CPU: resets the kernel's peak RSS (Linux clear_refs), or, where
    that is not allowed, starts tracking the largest RSS the shim sees. MPS: nothing to reset."""
    return (_S or _resolve()).reset_peak_memory_stats(device)


def reset_max_memory_allocated(device=None):
    """Like ``torch.cuda.reset_max_memory_allocated``: resets the peak stats (all of them)."""
    return (_S or _resolve()).reset_max_memory_allocated(device)


def reset_accumulated_memory_stats(device=None):
    """CUDA/XPU: torch's. MPS and CPU keep no accumulated counters: nothing to reset."""
    return (_S or _resolve()).reset_accumulated_memory_stats(device)


def empty_cache():
    """Release cached allocator memory. CUDA/XPU/MPS: torch's. CPU: nothing is cached."""
    return (_S or _resolve()).empty_cache()


def memory_stats(device=None):
    """CUDA/XPU: torch's full dict. MPS and CPU: the CUDA keys that have a value here
    (``allocated_bytes.all.current``, ``reserved_bytes.all.current``; CPU adds the ``.peak``s)."""
    return (_S or _resolve()).memory_stats(device)


def mem_get_info(device=None):
    """(free, total) bytes. CUDA/XPU: the device's. MPS: Metal's recommended working set
    minus what the driver holds, and that working set. CPU: psutil available and total RAM."""
    return (_S or _resolve()).mem_get_info(device)


def memory_summary(device=None, abbreviated=False):
    """A printable report. CUDA: torch's. Elsewhere a short table of memory_stats()."""
    return (_S or _resolve()).memory_summary(device, abbreviated)


# ---------------------------------------------------------------------------
# Public API: random numbers (the generator of the device that replaced CUDA, nothing more)
# ---------------------------------------------------------------------------

def manual_seed(seed):
    """Seed the chosen device's generator: torch.cuda / torch.xpu / torch.mps, or on the
    CPU ``torch.default_generator`` (only it: unlike ``torch.manual_seed``)."""
    return (_S or _resolve()).manual_seed(seed)


def manual_seed_all(seed):
    """Seed every device's generator (CUDA/XPU); the single generator on MPS and CPU."""
    return (_S or _resolve()).manual_seed_all(seed)


def seed():
    """Seed the chosen device's generator with a random number."""
    return (_S or _resolve()).seed()


def seed_all():
    """Seed every device's generator with a random number (one generator on MPS and CPU)."""
    return (_S or _resolve()).seed_all()


def initial_seed():
    """The initial seed of the chosen device's generator."""
    return (_S or _resolve()).initial_seed()


def get_rng_state(device="cuda"):
    """The chosen device's generator state (a ByteTensor); ``device`` is mapped like device()."""
    return (_S or _resolve()).get_rng_state(device)


def get_rng_state_all():
    """One state per device: CUDA/XPU per visible device; MPS and CPU a list of one."""
    return (_S or _resolve()).get_rng_state_all()


def set_rng_state(new_state, device="cuda"):
    """Restore the chosen device's generator state."""
    return (_S or _resolve()).set_rng_state(new_state, device)


def set_rng_state_all(new_states):
    """Restore one state per device; MPS and CPU accept at most one state."""
    return (_S or _resolve()).set_rng_state_all(new_states)


# ---------------------------------------------------------------------------
# Public API: device queries
# ---------------------------------------------------------------------------

def get_device_name(device=None):
    """CUDA/XPU: torch's device name. MPS: the Apple chip's name. CPU: the processor model."""
    return (_S or _resolve()).get_device_name(device)


def get_device_properties(device=None):
    """CUDA: torch's object. XPU/MPS/CPU: an object with ``name``, ``total_memory``,
    ``multi_processor_count`` (XPU: compute units; CPU: ``os.cpu_count()``; MPS: raises),
    ``major``/``minor`` 0 (no CUDA compute capability). CPU total_memory: physical RAM;
    MPS: Metal's recommended working set."""
    return (_S or _resolve()).get_device_properties(device)


def get_device_capability(device=None):
    """CUDA: (major, minor). Elsewhere (0, 0): there is no CUDA compute capability, so
    checks such as ``major >= 8`` take the conservative branch."""
    return (_S or _resolve()).get_device_capability(device)


def is_bf16_supported(including_emulation=True):
    """CUDA/XPU: torch's answer. MPS: macOS 14 or newer. CPU: True (torch has bfloat16
    CPU kernels); with ``including_emulation=False``, whether the CPU has native bfloat16
    instructions (x86 AVX512-BF16 or AMX; other architectures raise UnsupportedOnBackend)."""
    return (_S or _resolve()).is_bf16_supported(including_emulation)


# ---------------------------------------------------------------------------
# Public API: beyond torch.cuda (issue 4)
# ---------------------------------------------------------------------------

def _restore_cuda_to_cpu(storage, location):
    """map_location for CPU: the initial deserialization is already on the CPU; keep it."""
    return storage


def load_location():
    """``map_location`` for a ``torch.load`` that had none: None on CUDA (torch restores each
    storage where it was saved, as before); elsewhere storages saved on CUDA land on the chosen
    device and the others stay where they were saved (None from a callable means "default")."""
    return (_S or _resolve()).load_location()


def distributed_backend(requested="nccl"):
    """``'nccl'`` in init_process_group, ported: unchanged on CUDA; elsewhere
    ``torch.distributed.get_default_backend_for_device`` (xpu: xccl, mps/cpu: gloo).
    Any other requested backend is returned unchanged."""
    return (_S or _resolve()).distributed_backend(requested)


def ddp_device_ids(ids):
    """DDP ``device_ids=``/``output_device=``: unchanged on CUDA/XPU, None on MPS and CPU."""
    return (_S or _resolve()).ddp_device_ids(ids)


def pin_memory_enabled(requested=True):
    """``pin_memory=...``: ``requested`` on CUDA/XPU (pinned host memory exists), else False."""
    return (_S or _resolve()).pin_memory_enabled(requested)


def pin_memory(tensor):
    """``tensor.pin_memory()``: pinned on CUDA/XPU; the tensor itself on MPS and CPU."""
    return (_S or _resolve()).pin_memory(tensor)


def nvtx_range_push(msg):
    """CUDA: ``torch.cuda.nvtx.range_push``. Elsewhere opens a profiler
    ``record_function`` range (per thread). Returns the zero-based depth of the new range."""
    return (_S or _resolve()).nvtx_range_push(msg)


def nvtx_range_pop():
    """CUDA: ``torch.cuda.nvtx.range_pop``. Elsewhere closes the innermost range opened by
    nvtx_range_push on this thread; returns its depth, or -1 if none is open."""
    return (_S or _resolve()).nvtx_range_pop()


def nvtx_range(msg, *args, **kwargs):
    """Context manager: ``torch.cuda.nvtx.range`` on CUDA, a profiler ``record_function``
    named ``msg.format(*args, **kwargs)`` elsewhere."""
    return (_S or _resolve()).nvtx_range(msg, *args, **kwargs)


def nvtx_mark(msg):
    """CUDA: ``torch.cuda.nvtx.mark``. Elsewhere an empty profiler range named ``msg``."""
    return (_S or _resolve()).nvtx_mark(msg)


# ---------------------------------------------------------------------------
# Binding at resolution
# ---------------------------------------------------------------------------

# The functions above dispatch to the backend. When the backend is resolved, these module
# names are rebound to the backend's own implementations (on CUDA: the torch.cuda functions
# and classes themselves), so ``runtime_shim.memory_allocated()`` then costs exactly the
# call it replaces. ``_reset()`` restores the dispatchers. The module-level wrappers stay
# correct for anyone who imported a name before resolution.
_BOUND_NAMES = tuple(sorted(set(__all__) - {
    "device", "device_string", "device_type", "accelerator_type", "is_accelerator",
    "OutOfMemoryError", "UnsupportedOnBackend"}))
_DISPATCHERS = {name: globals()[name] for name in _BOUND_NAMES if name not in _LAZY_NAMES}
