"""runtime_shim: the small runtime that code migrated by torchdevice-migrate calls.

One flat module, vendored by copying this single file. It imports only torch, the
standard library and (lazily, on the CPU paths that need a figure) psutil, and it never
assigns anything into torch's namespace.

The contract (docs/device-policy.md): on CUDA every function does exactly what the
``torch.cuda`` call it replaces did. Elsewhere, where the original already ran on a CPU-only
torch, the answer is the one it gave there (``is_available()`` False, ``device_count()`` 0,
memory figures 0, seeding leaves the CPU generator alone); where the original crashed or
silently did nothing, the work is done on the chosen device. Where a backend cannot answer,
:class:`UnsupportedOnBackend` is raised instead of an invented value.

The backend is chosen on first use and cached: ``TORCHDEVICE_DEVICE`` if set (``cpu``,
``mps``, ``xpu``, ``xpu:1``, ``cuda``, ``cuda:1``), else CUDA if ``torch.cuda.device_count()``
finds a GPU, else XPU, else MPS, else the CPU. Choosing initialises no device, takes no lock
(two threads racing compute the same answer) and traces under ``torch.compile``.
``TORCHDEVICE_LOG_LEVEL`` (``DEBUG``, ``INFO``, ...; default ``WARNING``) makes the choice
visible through ``logging.getLogger("runtime_shim")``. See docs/shim.md.
"""

import collections
import contextlib
import logging
import operator
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
    "is_available", "device_usable", "device_count", "worker_count", "current_device",
    "set_device", "device_context", "set_default_tensor_type",
    # objects of unknown type
    "to_device", "is_cuda", "on_device",
    # streams and events
    "Stream", "Event", "stream", "current_stream", "default_stream", "set_stream",
    "synchronize", "record_stream",
    # memory
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
    "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats",
    "empty_cache", "ipc_collect", "memory_stats", "mem_get_info", "memory_summary",
    "MEMORY_STATS_KEYS",
    # random numbers
    "manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed", "get_rng_state",
    "get_rng_state_all", "set_rng_state", "set_rng_state_all",
    # device queries
    "get_device_name", "get_device_properties", "get_device_capability", "is_bf16_supported",
    "DEVICE_PROPERTY_ATTRIBUTES",
    # errors
    "OutOfMemoryError", "UnsupportedOnBackend",
    # beyond torch.cuda
    "distributed_backend", "ddp_device_ids", "pin_memory_enabled", "pin_memory", "load_location",
    "nvtx_range_push", "nvtx_range_pop", "nvtx_range", "nvtx_mark",
]

ENV_DEVICE = "TORCHDEVICE_DEVICE"
ENV_LOG_LEVEL = "TORCHDEVICE_LOG_LEVEL"

_log = logging.getLogger("runtime_shim")


# === Errors ===

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


class _UnsupportedProperty(UnsupportedOnBackend, AttributeError):
    """A CUDA device property this backend has no value for. Also an AttributeError, so that
    ``getattr(props, name, default)`` and ``hasattr`` behave as for a missing attribute."""


class _EventError(RuntimeError, ValueError):
    """Misuse of a CPU event. A RuntimeError, and a ValueError like torch's own events."""


# === Backend choice: lock-free, idempotent, initialises no device ===

_S = None  # the chosen backend object; None until first use
class _Local(threading.local):  # per thread: CPU stream, its context stack, NVTX ranges
    stream = streams = nvtx = None


_LOCAL = _Local()
_FORCE_HELP = "expected one of: cpu, mps, xpu, xpu:N, cuda, cuda:N"


def _resolve():
    """Choose the backend and cache it in ``_S``.

    No lock: two threads racing here compute the same answer from the same environment, and
    the first stored object is kept. Nothing here initialises CUDA (``device_count()`` asks
    NVML first, see docs/device-policy.md), and nothing graph-breaks under torch.compile.
    """
    global _S
    backend_type, index, reason = _choose()
    backend = _BACKENDS[backend_type](index, reason)
    if not torch.compiler.is_compiling():
        _configure_logging()
        _log.info("runtime_shim: using %s (%s)", backend.map_device(None), reason)
        _log.debug("runtime_shim: torch %s, python %s", torch.__version__,
                   platform.python_version())
    if _S is None:
        _S = backend
    return _S


def _reset():
    """Forget the chosen backend so that the next call resolves again (for tests)."""
    global _S
    _S = None


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


def _cuda_found():
    # device_count() asks NVML first and does not poison fork when NVML answers;
    # torch.cuda.is_available() under PYTORCH_NVML_BASED_CUDA_CHECK=1 is exactly this test.
    return torch.cuda.device_count() > 0


def _xpu_available():
    xpu = getattr(torch, "xpu", None)
    return xpu is not None and xpu.is_available()


def _choose():
    """Return (backend type, forced index or None, reason)."""
    forced = os.environ.get(ENV_DEVICE, "").strip()
    if forced:
        backend_type, index = _parse_forced(forced)
        return backend_type, index, f"forced by {ENV_DEVICE}={forced}"
    if _cuda_found():
        return "cuda", None, "CUDA is available"
    if _xpu_available():
        return "xpu", None, "no CUDA; XPU is available"
    if torch.backends.mps.is_available():
        return "mps", None, "no CUDA or XPU; MPS is available"
    return "cpu", None, "no CUDA, XPU or MPS device is available"


# torch.compile traces the choice as its constant answer: what torch.compiler.assume_constant_result
# does, without importing torch._dynamo at import (~1.8 s). tests/shim checks fullgraph compiles.
_choose._dynamo_marked_constant = True


def _parse_forced(value):
    backend_type, _, index_text = value.lower().partition(":")
    if backend_type not in _BACKENDS or (index_text and not index_text.isdigit()):
        raise ValueError(f"{ENV_DEVICE}={value!r} is not a device runtime_shim can use; {_FORCE_HELP}")
    index = int(index_text) if index_text else None
    if backend_type in ("mps", "cpu") and index not in (None, 0):
        raise ValueError(f"{ENV_DEVICE}={value!r}: {backend_type} has only index 0; {_FORCE_HELP}")
    if backend_type == "cpu":
        return "cpu", None
    available = {"cuda": _cuda_found, "xpu": _xpu_available,
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


# === The backend protocol ===

# Names the public functions of this module dispatch to: every backend provides each of them
# (a method, or on CUDA the torch.cuda function itself) with the signature of torch.cuda's.
_PROTOCOL = tuple(name for name in __all__ if name not in {
    "device", "device_string", "device_type", "accelerator_type", "is_accelerator",
    "DEVICE_PROPERTY_ATTRIBUTES", "MEMORY_STATS_KEYS", "OutOfMemoryError", "UnsupportedOnBackend"})

# torch.cuda functions whose first parameter is a device that defaults to the current one.
_DEVICE_FIRST = (
    "memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
    "reset_peak_memory_stats", "reset_max_memory_allocated", "reset_accumulated_memory_stats",
    "memory_stats", "mem_get_info", "memory_summary", "synchronize", "current_stream",
    "default_stream", "get_device_name", "get_device_properties", "get_device_capability",
    "get_rng_state",
)


def _nothing(*args, **kwargs):
    """Nothing to do on this backend (see the comment where it is bound)."""


def _has_own(obj, name, torch_impl):
    """Whether ``type(obj).name`` exists and is not torch's ``torch_impl``."""
    impl = getattr(type(obj), name, None)
    return impl is not None and impl is not torch_impl


def _device_of(obj):
    """The device an object is on: ``obj.device``, else ``obj.data.device`` for containers of
    one tensor (PackedSequence); None when neither is a device."""
    dev = getattr(obj, "device", None)
    if dev is None:
        data = getattr(obj, "data", None)
        dev = data.device if isinstance(data, torch.Tensor) else None
    if isinstance(dev, str):
        dev = torch.device(dev)
    return dev if isinstance(dev, torch.device) else None


class _Backend:
    """The backend protocol, with the answers of a single-device backend without pinned memory.

    A backend has ``type`` ('cuda', 'xpu', 'mps', 'cpu'), ``accelerator`` (the same, or None
    for the CPU), ``keeps_index`` (whether 'cuda:N' keeps its N), ``index`` (forced by
    TORCHDEVICE_DEVICE, else None) and one attribute per name in ``_PROTOCOL``. Subclasses
    override what differs, by single inheritance (XPU and MPS through _Accelerator); no mixins.
    """

    type = ""
    accelerator = None
    keeps_index = False

    def __init__(self, index, reason):
        self.index = index
        self.reason = reason
        self.devices = {}     # device() cache: spec -> torch.device
        self.strings = {}     # device_string() cache: spec -> str

    # --- device mapping (docs/device-policy.md) ---
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
        """What CUDA device ``cuda_index`` (None: no index, i.e. the forced one) becomes."""
        if self.keeps_index:
            if cuda_index is None:
                cuda_index = self.index
            if cuda_index is not None:
                return torch.device(self.type, cuda_index)
        return torch.device(self.type)

    def device_arg(self, device):
        """A device argument of a torch.cuda-style function, for this backend's module:
        None stays None (the current device) unless an index was forced."""
        if device is None:
            return self.index
        if isinstance(device, int):
            return device
        return self.map_device(device)

    def _on_device(self, fn):
        """``fn`` with its first (device) argument mapped by device_arg."""
        def call(device=None, *args, **kwargs):
            return fn(self.device_arg(device), *args, **kwargs)
        call.__name__ = call.__qualname__ = getattr(fn, "__name__", "call")
        call.__doc__ = fn.__doc__
        return call

    # --- counts and selection ---
    def is_available(self):
        return True

    def device_usable(self):
        return True  # the chosen device is there: a stated GPU requirement is met by it

    def device_count(self):
        return 1

    def worker_count(self, n=None):
        return self.device_count() if n is None else n

    def current_device(self):
        return 0

    set_device = staticmethod(_nothing)  # one device: nothing to select

    def device_context(self, device):
        return contextlib.nullcontext()

    def set_default_tensor_type(self, t):
        name = t if isinstance(t, str) else f"{t.__module__}.{t.__name__}"
        if not name.startswith("torch.cuda."):
            return torch.set_default_tensor_type(t)
        dtype = _CUDA_TENSOR_DTYPES.get(name[len("torch.cuda."):])
        if dtype is None:
            raise TypeError(f"only floating-point types are supported as the default type "
                            f"(runtime_shim.set_default_tensor_type({name}))")
        torch.set_default_dtype(dtype)
        target = self._target(None)
        if target.type != "cpu":  # the CPU is torch's default device already
            torch.set_default_device(target)

    ipc_collect = staticmethod(_nothing)  # no CUDA IPC memory to collect

    # --- objects of unknown type ---
    def to_device(self, obj, device=None, non_blocking=False, **kwargs):
        if isinstance(obj, torch.Tensor) and not _has_own(obj, "cuda", torch.Tensor.cuda):
            target = self.map_device(device)
            # .cuda() of a CPU tensor always copied: so does the port where the CPU is the target.
            return obj.to(target, non_blocking=non_blocking, copy=target.type == "cpu", **kwargs)
        if isinstance(obj, torch.nn.Module) and not _has_own(obj, "cuda", torch.nn.Module.cuda):
            return obj.to(self.map_device(device))
        impl = getattr(type(obj), "cuda", None)
        if impl is not None and getattr(impl, "__module__", "").startswith("torch.") \
                and hasattr(obj, "to"):  # torch's own cuda() of a PackedSequence, a storage
            return obj.to(device=self.map_device(device), non_blocking=non_blocking, **kwargs)
        return _call_cuda(obj, device, non_blocking, kwargs)

    def is_cuda(self, obj):
        dev = _device_of(obj)
        if dev is None:
            return obj.is_cuda
        return self.accelerator is not None and dev.type == self.accelerator

    def on_device(self, obj):
        dev = _device_of(obj)
        if dev is None:
            return obj.is_cuda
        return dev.type == self.type

    # --- streams (single in-order queue) ---
    def stream(self, stream):
        return stream if stream is not None else contextlib.nullcontext()

    # one in-order queue: memory is never reused ahead of pending work
    record_stream = staticmethod(_nothing)

    summary_notes = ()  # lines memory_summary() adds under the table

    def memory_summary(self, device=None, abbreviated=False):
        return _format_summary(self.type, self.memory_stats(device), self.summary_notes)

    def set_rng_state_all(self, new_states):
        """set_rng_state_all on a one-generator backend: at most one state."""
        new_states = list(new_states)
        if len(new_states) > 1:
            raise ValueError(
                f"runtime_shim.set_rng_state_all: got {len(new_states)} states, but the "
                f"{self.type} backend has one generator; pass [get_rng_state()] or one state")
        for state in new_states:
            self.set_rng_state(state)

    def get_device_capability(self, device=None):
        return (0, 0)

    # --- beyond torch.cuda ---
    def ddp_device_ids(self, ids):
        return None

    def pin_memory_enabled(self, requested=True):
        return False

    def pin_memory(self, tensor):
        return tensor

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
        text = str(requested).lower()
        if text != "nccl" and "cuda:nccl" not in text.replace(" ", ""):
            return requested
        if not torch.distributed.is_available():
            raise UnsupportedOnBackend(
                "distributed_backend", self.type,
                "this torch build has no torch.distributed; install a build with distributed support")
        own = torch.distributed.get_default_backend_for_device(self.type)
        if text == "nccl":
            return own
        # a device-mapped string ("cpu:gloo,cuda:nccl"): drop the CUDA pair, keep the others,
        # and give the chosen accelerator its default backend unless it has one
        pairs = [p.strip() for p in str(requested).split(",") if p.strip()]
        pairs = [p for p in pairs if p.replace(" ", "").lower() != "cuda:nccl"]
        if self.accelerator and not any(p.split(":")[0].strip().lower() == self.type for p in pairs):
            pairs.append(f"{self.type}:{own}")
        return ",".join(pairs) or own

    def nvtx_range_push(self, msg):
        rf = torch.autograd.profiler.record_function(msg)
        rf.__enter__()
        stack = _nvtx_stack()
        stack.append(rf)
        return len(stack) - 1

    def nvtx_range_pop(self):
        stack = _nvtx_stack()
        if not stack:
            return -1
        stack.pop().__exit__(None, None, None)
        return len(stack)

    def nvtx_range(self, msg, *args, **kwargs):
        return torch.autograd.profiler.record_function(msg.format(*args, **kwargs))

    def nvtx_mark(self, msg):
        with torch.autograd.profiler.record_function(msg):
            pass


def _call_cuda(obj, device, non_blocking, kwargs):
    """``obj.cuda(...)`` with only the arguments the original passed (a user's ``cuda(self)``
    may take none)."""
    if non_blocking:
        kwargs = dict(kwargs, non_blocking=True)
    return obj.cuda(**kwargs) if device is None else obj.cuda(device, **kwargs)


def _nvtx_stack():
    stack = _LOCAL.nvtx
    if stack is None:
        stack = _LOCAL.nvtx = []
    return stack


# === CUDA: torch.cuda itself ===

# Public names whose CUDA implementation is the torch.cuda attribute of the same name.
_SAME_AS_TORCH_CUDA = tuple(name for name in _PROTOCOL if hasattr(torch.cuda, name) and name not in {
    "worker_count", "device_usable", "set_default_tensor_type", "to_device", "is_cuda",
    "on_device", "record_stream", "distributed_backend", "ddp_device_ids", "pin_memory_enabled",
    "pin_memory", "load_location"})


class _Cuda(_Backend):
    """CUDA: the torch.cuda functions and classes themselves, so each call is the real one.

    With a forced index (TORCHDEVICE_DEVICE=cuda:N) nothing is set per thread: index-less
    specs and device arguments that default to the current device mean N instead.
    """

    type = accelerator = "cuda"
    keeps_index = True
    is_cuda = on_device = staticmethod(operator.attrgetter("is_cuda"))

    def __init__(self, index, reason):
        super().__init__(index, reason)
        for name in _SAME_AS_TORCH_CUDA:
            fn = getattr(torch.cuda, name)
            if index is not None and name in _DEVICE_FIRST:
                fn = self._on_device(fn)
            setattr(self, name, fn)
        self.device_context = torch.cuda.device
        self.device_usable = torch.cuda.is_available
        self.set_default_tensor_type = torch.set_default_tensor_type
        nvtx = torch.cuda.nvtx
        self.nvtx_range_push = nvtx.range_push
        self.nvtx_range_pop = nvtx.range_pop
        self.nvtx_range = nvtx.range
        self.nvtx_mark = nvtx.mark
        if index is not None:
            self.current_device = lambda: index
            self.set_rng_state = (lambda new_state, device="cuda":
                                  torch.cuda.set_rng_state(new_state, self.device_arg(device)))

    def to_device(self, obj, device=None, non_blocking=False, **kwargs):
        return _call_cuda(obj, self.index if device is None else device, non_blocking, kwargs)

    def distributed_backend(self, requested="nccl"):
        return requested

    def load_location(self):
        return None  # torch.load's own default: restore each storage where it was saved

    def record_stream(self, tensor, stream):
        tensor.record_stream(stream)

    def ddp_device_ids(self, ids):
        return ids

    def pin_memory_enabled(self, requested=True):
        return requested

    def pin_memory(self, tensor):
        return tensor.pin_memory()


# === XPU and MPS: torch.accelerator, torch.Stream/torch.Event, torch.xpu/torch.mps ===

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


class _Accelerator(_Backend):
    """What XPU and MPS share: generic streams and events through torch.accelerator."""

    Stream = _AcceleratorStream
    Event = _AcceleratorEvent

    def __init__(self, index, reason):
        super().__init__(index, reason)
        self.module = torch.get_device_module(self.type)

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


# torch.xpu functions with torch.cuda's name and signature (device arguments mapped).
_XPU_SAME = ("is_available", "device_count", "empty_cache", "manual_seed", "manual_seed_all",
             "seed", "seed_all", "initial_seed", "get_rng_state_all", "set_rng_state_all",
             "is_bf16_supported")
_XPU_DEVICE_FIRST = ("memory_allocated", "max_memory_allocated", "memory_reserved",
                     "max_memory_reserved", "reset_peak_memory_stats",
                     "reset_accumulated_memory_stats", "memory_stats", "mem_get_info",
                     "get_device_name", "get_rng_state")


class _Xpu(_Accelerator):
    """Intel XPU: torch.xpu, with CUDA-style device arguments mapped to XPU ones."""

    type = accelerator = "xpu"
    keeps_index = True

    def __init__(self, index, reason):
        super().__init__(index, reason)
        for name in _XPU_SAME:
            setattr(self, name, getattr(torch.xpu, name))
        for name in _XPU_DEVICE_FIRST:
            setattr(self, name, self._on_device(getattr(torch.xpu, name)))
        # torch.cuda.reset_max_memory_allocated is itself reset_peak_memory_stats
        self.reset_max_memory_allocated = self.reset_peak_memory_stats

    def current_device(self):
        return torch.xpu.current_device() if self.index is None else self.index

    def set_device(self, device):
        torch.xpu.set_device(self.device_arg(device))

    def device_context(self, device):
        return torch.xpu.device(self.device_arg(device))

    # streams that reuse memory, pinned host memory and per-device DDP: as on CUDA
    record_stream, ddp_device_ids = _Cuda.record_stream, _Cuda.ddp_device_ids
    pin_memory_enabled, pin_memory = _Cuda.pin_memory_enabled, _Cuda.pin_memory

    def set_rng_state(self, new_state, device="cuda"):
        torch.xpu.set_rng_state(new_state, self.device_arg(device))

    def get_device_properties(self, device=None):
        props = torch.xpu.get_device_properties(self.device_arg(device))
        return _DeviceProperties("xpu", props.name, props.total_memory,
                                 props.max_compute_units, backend_properties=props)


class _Mps(_Accelerator):
    """Apple MPS: one device; torch.mps for memory and random numbers."""

    type = accelerator = "mps"

    # memory: torch.mps figures; MPS keeps no peak
    def memory_allocated(self, device=None):
        return torch.mps.current_allocated_memory()

    def _no_peak(self, api):
        return UnsupportedOnBackend(api, "mps", "the MPS allocator keeps no peak figure; sample "
                                    "memory_allocated() or memory_reserved() where it matters")

    def max_memory_allocated(self, device=None):
        raise self._no_peak("max_memory_allocated")

    def memory_reserved(self, device=None):
        return torch.mps.driver_allocated_memory()

    def max_memory_reserved(self, device=None):
        raise self._no_peak("max_memory_reserved")

    # no peak or accumulated counters to reset
    reset_peak_memory_stats = reset_max_memory_allocated = staticmethod(_nothing)
    reset_accumulated_memory_stats = staticmethod(_nothing)

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

    summary_notes = ("reserved = memory the Metal driver holds for this process; MPS keeps no peak.",)

    # random numbers: the MPS generator (one generator: the *_all forms are the same)
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

    # device queries
    def get_device_name(self, device=None):
        return _cpu_model_name()  # the Apple chip ("Apple M2 Pro"), whose GPU MPS drives

    def get_device_properties(self, device=None):
        return _DeviceProperties("mps", self.get_device_name(), torch.mps.recommended_max_memory(),
                                 None, is_integrated=1)

    def is_bf16_supported(self, including_emulation=True):
        return torch.backends.mps.is_macos_or_newer(14, 0)


# === CPU: what torch.cuda answered on a CPU-only torch, or the work done on the CPU ===

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
        stack = _LOCAL.streams
        if stack is None:
            stack = _LOCAL.streams = []
        stack.append(_LOCAL.stream)
        _LOCAL.stream = self
        return self

    def __exit__(self, *exc):
        _LOCAL.stream = _LOCAL.streams.pop()
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


class _Cpu(_Backend):
    """CPU: where the original ran on a CPU-only torch, its answers (no accelerator, zero
    device memory, seeding a CUDA generator that is not there does nothing); elsewhere the
    work done on the CPU (in-order streams, perf_counter events, psutil figures)."""

    type = "cpu"
    Stream = _CpuStream
    Event = _CpuEvent

    def __init__(self, index, reason):
        super().__init__(index, reason)
        self._default_stream = _CpuStream()

    def is_available(self):
        return False  # torch.cuda.is_available() on a CPU-only torch: the CPU path runs

    def device_count(self):
        return 0  # torch.cuda.device_count() on a CPU-only torch

    def worker_count(self, n=None):
        return max(1, 0 if n is None else n)  # the work runs at least once

    # streams
    def current_stream(self, device=None):
        return _LOCAL.stream or self._default_stream

    def default_stream(self, device=None):
        return self._default_stream

    def set_stream(self, stream):
        if stream is not None:
            _LOCAL.stream = stream

    synchronize = staticmethod(_nothing)  # eager CPU kernels have finished when they return

    # memory: no device memory is allocated (CPU-only torch.cuda answered 0 / empty)
    def memory_allocated(self, device=None):
        return 0

    def max_memory_allocated(self, device=None):
        return 0

    def memory_reserved(self, device=None):
        return 0

    def max_memory_reserved(self, device=None):
        return 0

    # the peaks above are always 0, there are no counters, torch's CPU allocator keeps no cache
    reset_peak_memory_stats = reset_max_memory_allocated = staticmethod(_nothing)
    reset_accumulated_memory_stats = empty_cache = staticmethod(_nothing)

    def memory_stats(self, device=None):
        return collections.OrderedDict()  # what torch.cuda.memory_stats() returns there

    def mem_get_info(self, device=None):
        vm = _psutil().virtual_memory()
        return vm.available, vm.total

    def memory_summary(self, device=None, abbreviated=False):
        rss = _psutil().Process().memory_info().rss
        peak = _read_vm_hwm()
        lines = ["runtime_shim memory summary (cpu backend)",
                 f"  {'process resident set (RSS)':<32} {_format_bytes(rss):>12}"]
        if peak is not None:
            lines.append(f"  {'peak RSS (VmHWM)':<32} {_format_bytes(peak):>12}")
        lines.append("  no device memory: memory_allocated() and memory_reserved() are 0.")
        return "\n".join(lines) + "\n"

    # random numbers: no CUDA generator; the CPU generator is left alone (as CPU-only torch)
    manual_seed = manual_seed_all = seed = seed_all = staticmethod(_nothing)
    set_rng_state = set_rng_state_all = staticmethod(_nothing)

    # these crashed on a CPU-only torch: answer for the chosen device's generator (a read)
    def initial_seed(self):
        return torch.default_generator.initial_seed()

    def get_rng_state(self, device="cuda"):
        return torch.default_generator.get_state()

    def get_rng_state_all(self):
        return []

    # device queries
    def get_device_name(self, device=None):
        return _cpu_model_name()

    def get_device_properties(self, device=None):
        return _DeviceProperties("cpu", _cpu_model_name(), _psutil().virtual_memory().total,
                                 os.cpu_count(), is_integrated=1)

    def is_bf16_supported(self, including_emulation=True):
        return False  # torch.cuda.is_bf16_supported() on a CPU-only torch


#: dtype of each floating torch.cuda.<X>Tensor (the only kinds set_default_tensor_type accepts)
_CUDA_TENSOR_DTYPES = {"FloatTensor": torch.float32, "DoubleTensor": torch.float64,
                       "HalfTensor": torch.float16, "BFloat16Tensor": torch.bfloat16}

#: The backends, by the type TORCHDEVICE_DEVICE names; bound once, at resolution.
_BACKENDS = {"cuda": _Cuda, "xpu": _Xpu, "mps": _Mps, "cpu": _Cpu}


# === Shared helpers of the non-CUDA backends ===

#: Every attribute torch documents on CUDA's ``get_device_properties(i)``.
_CUDA_DEVICE_PROPERTIES = frozenset({
    "name", "major", "minor", "total_memory", "multi_processor_count", "is_integrated",
    "is_multi_gpu_board", "max_threads_per_multi_processor", "max_threads_per_block",
    "regs_per_multiprocessor", "warp_size", "uuid", "gcnArchName", "L2_cache_size",
    "clock_rate", "memory_clock_rate", "memory_bus_width", "shared_memory_per_block",
    "shared_memory_per_multiprocessor", "shared_memory_per_block_optin",
    "pci_bus_id", "pci_device_id", "pci_domain_id",
})

#: The ``get_device_properties(i)`` attributes the shim answers on every backend. The others
#: of ``_CUDA_DEVICE_PROPERTIES`` raise UnsupportedOnBackend naming the attribute (except on
#: XPU where torch.xpu reports one of that name, and ``multi_processor_count`` on CPU and XPU).
DEVICE_PROPERTY_ATTRIBUTES = frozenset({
    "name", "major", "minor", "total_memory", "is_integrated", "is_multi_gpu_board",
})


class _DeviceProperties:
    """``get_device_properties()`` where torch has no CUDA-shaped object (XPU, MPS, CPU).

    ``type``, ``name``, ``total_memory`` (bytes), ``major``/``minor`` (0, 0: no CUDA compute
    capability), ``is_multi_gpu_board`` (0), ``is_integrated`` (1 where the device uses host
    memory: MPS, CPU), ``multi_processor_count`` (CPU cores, XPU compute units). Any other
    CUDA property raises UnsupportedOnBackend naming it (on XPU: torch.xpu's value if any).
    """

    def __init__(self, type, name, total_memory, multi_processor_count, is_integrated=0,
                 backend_properties=None):
        self.type = type
        self.name = name
        self.total_memory = total_memory
        if multi_processor_count is not None:
            self.multi_processor_count = multi_processor_count
        self.major = self.minor = self.is_multi_gpu_board = 0
        self.is_integrated = getattr(backend_properties, "is_integrated", is_integrated)
        self._backend_properties = backend_properties

    def __getattr__(self, attr):  # only called for attributes not set above
        props = self.__dict__.get("_backend_properties")
        if props is not None and not attr.startswith("_") and hasattr(props, attr):
            return getattr(props, attr)
        if attr in _CUDA_DEVICE_PROPERTIES:
            raise _UnsupportedProperty(
                f"get_device_properties().{attr}", self.__dict__.get("type", "?"),
                "torch does not report it for this device; guard the use or pick a value "
                "for this backend")
        raise AttributeError(f"{type(self).__name__} has no attribute {attr!r}")

    def __repr__(self):
        mpc = self.__dict__.get("multi_processor_count", "unknown")
        return (f"_DeviceProperties(type={self.type!r}, name={self.name!r}, major={self.major}, "
                f"minor={self.minor}, total_memory={self.total_memory // 2**20}MB, "
                f"multi_processor_count={mpc})")


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


def _restore_cuda_to_cpu(storage, location):
    """map_location for CPU: the initial deserialization is already on the CPU; keep it."""
    return storage


# === Public API: device choice ===

def device(spec=None, index=None):
    """The device a CUDA-ish spec stands for on this machine (docs/device-policy.md).

    ``None``, ``'cuda'``, ``'cuda:N'``, an int N and ``torch.device('cuda', N)`` become the
    chosen device: identity on CUDA; ``xpu``/``xpu:N`` on XPU (index kept); ``mps`` or
    ``cpu`` (index dropped). Any other spec (``'cpu'``, ``'meta'``, ``'mps'``) is returned
    unchanged as ``torch.device(spec)``. ``device('cuda', 1)`` mirrors ``torch.device('cuda', 1)``.
    With ``TORCHDEVICE_DEVICE=cuda:N`` (or ``xpu:N``), index-less specs become index N.
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
    """``'cuda' in value`` ported: ``accelerator_type() in value`` (a torch.device as its str();
    a collection is a membership test, exactly the original on CUDA); always False on the CPU."""
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
    """Is there an accelerator? CUDA: ``torch.cuda.is_available()``; XPU, MPS: True; CPU
    (also under ``TORCHDEVICE_DEVICE=cpu``): False, what a CPU-only torch answered, so the
    original's own CPU path runs. Agrees with ``device_count() > 0``."""
    return (_S or _resolve()).is_available()


def device_usable():
    """A stated GPU requirement (``assert torch.cuda.is_available(), ...``) ported. CUDA:
    exactly ``torch.cuda.is_available()``; elsewhere True: the chosen device can be used."""
    return (_S or _resolve()).device_usable()


def device_count():
    """CUDA/XPU: torch's count. MPS: 1. CPU: 0, as on a CPU-only torch (see worker_count)."""
    return (_S or _resolve()).device_count()


def worker_count(n=None):
    """How many processes/workers to start where the original started one per GPU
    (``mp.spawn(fn, nprocs=torch.cuda.device_count())`` or ``nprocs=world_size``).
    Accelerators: ``n``, or ``device_count()`` when ``n`` is None (exactly the original on
    CUDA, 0 included). CPU: ``max(1, n or 0)``, so the work runs once instead of not at all."""
    return (_S or _resolve()).worker_count(n)


def current_device():
    """CUDA/XPU: the current index (the forced N under TORCHDEVICE_DEVICE). MPS, CPU: 0."""
    return (_S or _resolve()).current_device()


def set_device(device):
    """CUDA/XPU: torch's ``set_device`` (CUDA specs mapped). MPS and CPU: does nothing."""
    return (_S or _resolve()).set_device(device)


def set_default_tensor_type(t):
    """``torch.set_default_tensor_type(t)`` ported. CUDA: exactly that. Elsewhere a CUDA type
    (``torch.cuda.HalfTensor`` or its name) sets its dtype with ``torch.set_default_dtype`` and
    the chosen accelerator with ``torch.set_default_device`` (nothing more on the CPU, already
    the default); a non-floating CUDA type raises TypeError as torch does; other types go to
    torch unchanged."""
    return (_S or _resolve()).set_default_tensor_type(t)


def device_context(device):
    """``with torch.cuda.device(i):`` ported: torch's on CUDA/XPU, a no-op on MPS and CPU."""
    return (_S or _resolve()).device_context(device)


# === Public API: objects whose type the codemod could not prove ===

def to_device(obj, device=None, non_blocking=False, **kwargs):
    """``obj.cuda(device, non_blocking, **kwargs)`` ported, for a receiver of unknown type.

    CUDA: exactly ``obj.cuda(...)`` with the arguments given. Elsewhere: a tensor whose type
    keeps torch's ``cuda`` is moved with ``.to(device(device))``, as a copy where the target is
    the CPU (``.cuda()`` of a CPU tensor never aliased it; autograd records the copy); a
    Module whose type keeps torch's ``cuda`` is moved in place and returned; an object whose
    ``cuda`` is torch's own but no Tensor's or Module's (PackedSequence) is moved with
    ``.to(...)``; any other object's own ``cuda(...)`` is called (the user's code runs)."""
    return (_S or _resolve()).to_device(obj, device, non_blocking, **kwargs)


def is_cuda(obj):
    """``obj.is_cuda`` ported. CUDA: exactly ``obj.is_cuda``. Elsewhere: whether the object is
    on the chosen accelerator (``obj.device``, else ``obj.data.device``, else ``obj.is_cuda``);
    False on the CPU, as on a CPU-only torch."""
    return (_S or _resolve()).is_cuda(obj)


def on_device(obj):
    """``assert obj.is_cuda`` ported (a requirement that the object was moved). CUDA: exactly
    ``obj.is_cuda``. Elsewhere: whether the object is on the chosen device, the CPU included."""
    return (_S or _resolve()).on_device(obj)


# === Public API: streams and events ===

# ``Stream`` and ``Event`` are classes that depend on the backend, so they are looked up
# through the module __getattr__ below.
#   CUDA: torch.cuda.Stream / torch.cuda.Event.
#   XPU, MPS: subclasses of torch.Stream / torch.Event for the chosen device.
#   CPU: an in-order stream and a perf_counter_ns event (see _CpuStream, _CpuEvent).
def __getattr__(name):
    if name in ("Stream", "Event"):
        return getattr(_S or _resolve(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"Stream", "Event"})


def stream(stream):
    """``with torch.cuda.stream(s):`` ported (``s`` may be None): torch's, or ``s``'s own."""
    return (_S or _resolve()).stream(stream)


def current_stream(device=None):
    """CUDA: torch's. XPU/MPS: ``torch.accelerator.current_stream``. CPU: the thread's."""
    return (_S or _resolve()).current_stream(device)


def default_stream(device=None):
    """CUDA: ``torch.cuda.default_stream``. CPU: the process's default CPU stream.
    XPU/MPS: the device module's default stream, or UnsupportedOnBackend if it has none."""
    return (_S or _resolve()).default_stream(device)


def set_stream(stream):
    """CUDA: torch's; XPU/MPS: ``torch.accelerator.set_stream``; CPU: the thread's stream."""
    return (_S or _resolve()).set_stream(stream)


def synchronize(device=None):
    """Wait for the device: torch's on CUDA, torch.accelerator's on XPU/MPS; at once on CPU."""
    return (_S or _resolve()).synchronize(device)


def record_stream(tensor, stream):
    """``tensor.record_stream(stream)`` ported: the real call on CUDA/XPU; nothing on MPS
    and CPU, whose single in-order queue never reuses memory ahead of pending work."""
    return (_S or _resolve()).record_stream(tensor, stream)


# === Public API: memory (docs/shim.md says what each figure means on each backend) ===

def memory_allocated(device=None):
    """Bytes in use by tensors: torch's on CUDA/XPU/MPS; 0 on the CPU (as CPU-only torch)."""
    return (_S or _resolve()).memory_allocated(device)


def max_memory_allocated(device=None):
    """Peak of memory_allocated: torch's on CUDA/XPU, 0 on CPU, unsupported on MPS."""
    return (_S or _resolve()).max_memory_allocated(device)


def memory_reserved(device=None):
    """Bytes held by the allocator: torch's on CUDA/XPU/MPS; 0 on the CPU."""
    return (_S or _resolve()).memory_reserved(device)


def max_memory_reserved(device=None):
    """Peak of memory_reserved. CUDA/XPU: torch's. CPU: 0. MPS: UnsupportedOnBackend."""
    return (_S or _resolve()).max_memory_reserved(device)


def reset_peak_memory_stats(device=None):
    """CUDA/XPU: torch's. MPS and CPU: nothing to reset (no peak is kept / it is 0)."""
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


def ipc_collect():
    """CUDA: ``torch.cuda.ipc_collect()``. Elsewhere nothing: there is no CUDA IPC memory."""
    return (_S or _resolve()).ipc_collect()


#: ``memory_stats()`` keys with an answer on every backend: none, because on the CPU the dict
#: is empty, as ``torch.cuda.memory_stats()`` was on a CPU-only torch (MPS answers
#: ``allocated_bytes.all.current`` and ``reserved_bytes.all.current``; CUDA/XPU all of torch's).
MEMORY_STATS_KEYS = frozenset()


def memory_stats(device=None):
    """CUDA/XPU: torch's dict. MPS: two ``.all.current`` keys. CPU: empty (as CPU-only torch)."""
    return (_S or _resolve()).memory_stats(device)


def mem_get_info(device=None):
    """(free, total) bytes. CUDA/XPU: the device's. MPS: Metal's recommended working set
    minus what the driver holds, and that working set. CPU: psutil available and total RAM."""
    return (_S or _resolve()).mem_get_info(device)


def memory_summary(device=None, abbreviated=False):
    """A printable report. CUDA: torch's. MPS/XPU: a short table of memory_stats(). CPU: the
    process's RSS and peak RSS (psutil, VmHWM), and that device memory is 0."""
    return (_S or _resolve()).memory_summary(device, abbreviated)


# === Public API: random numbers (the generator of the device that replaced CUDA, nothing more) ===

def manual_seed(seed):
    """Seed the accelerator's generator. CPU: nothing; the CPU generator is never touched."""
    return (_S or _resolve()).manual_seed(seed)


def manual_seed_all(seed):
    """Seed every accelerator generator (CUDA/XPU); MPS: its one generator; CPU: nothing."""
    return (_S or _resolve()).manual_seed_all(seed)


def seed():
    """Seed the accelerator's generator with a random number; CPU: nothing."""
    return (_S or _resolve()).seed()


def seed_all():
    """Seed every accelerator generator with a random number; CPU: nothing."""
    return (_S or _resolve()).seed_all()


def initial_seed():
    """The accelerator generator's initial seed; on the CPU the CPU generator's (a read)."""
    return (_S or _resolve()).initial_seed()


def get_rng_state(device="cuda"):
    """The accelerator generator's state (``device`` mapped); on the CPU the CPU generator's."""
    return (_S or _resolve()).get_rng_state(device)


def get_rng_state_all():
    """One state per device: CUDA/XPU per visible device; MPS a list of one; CPU ``[]``."""
    return (_S or _resolve()).get_rng_state_all()


def set_rng_state(new_state, device="cuda"):
    """Restore the accelerator generator's state. CPU: nothing (as on a CPU-only torch)."""
    return (_S or _resolve()).set_rng_state(new_state, device)


def set_rng_state_all(new_states):
    """Restore one state per device; MPS accepts at most one state; CPU: nothing."""
    return (_S or _resolve()).set_rng_state_all(new_states)


# === Public API: device queries ===

def get_device_name(device=None):
    """CUDA/XPU: torch's device name. MPS: the Apple chip's name. CPU: the processor model."""
    return (_S or _resolve()).get_device_name(device)


def get_device_properties(device=None):
    """CUDA: torch's object. XPU/MPS/CPU: an object answering DEVICE_PROPERTY_ATTRIBUTES
    (``name``, ``total_memory``, ``major``/``minor`` 0, ``is_integrated``,
    ``is_multi_gpu_board`` 0) and ``multi_processor_count`` (XPU compute units, CPU cores);
    any other CUDA property raises UnsupportedOnBackend naming it. CPU total_memory: physical
    RAM; MPS: Metal's recommended working set."""
    return (_S or _resolve()).get_device_properties(device)


def get_device_capability(device=None):
    """CUDA: (major, minor). Elsewhere (0, 0): ``major >= 8`` checks stay conservative."""
    return (_S or _resolve()).get_device_capability(device)


def is_bf16_supported(including_emulation=True):
    """CUDA/XPU: torch's answer. MPS: macOS 14 or newer. CPU: False, what a CPU-only torch
    answered (so code choosing fp16 vs bf16 keeps its original branch)."""
    return (_S or _resolve()).is_bf16_supported(including_emulation)


# === Public API: beyond torch.cuda (issue 4) ===

def load_location():
    """``map_location`` for a ``torch.load`` that had none: None on CUDA (torch restores each
    storage where it was saved, as before); elsewhere storages saved on CUDA land on the chosen
    device and the others stay where they were saved (None from a callable means "default")."""
    return (_S or _resolve()).load_location()


def distributed_backend(requested="nccl"):
    """``'nccl'`` in init_process_group, ported: unchanged on CUDA; elsewhere
    ``torch.distributed.get_default_backend_for_device`` (xpu: xccl, mps/cpu: gloo). In a
    device-mapped string (``"cpu:gloo,cuda:nccl"``) the ``cuda:nccl`` pair is dropped and the
    chosen accelerator gets its default (``"cpu:gloo,xpu:xccl"``). Other backends: unchanged."""
    return (_S or _resolve()).distributed_backend(requested)


def ddp_device_ids(ids):
    """DDP ``device_ids=``/``output_device=``: unchanged on CUDA/XPU, None on MPS and CPU."""
    return (_S or _resolve()).ddp_device_ids(ids)


def pin_memory_enabled(requested=True):
    """``pin_memory=...``: ``requested`` on CUDA/XPU (pinned memory exists), else False."""
    return (_S or _resolve()).pin_memory_enabled(requested)


def pin_memory(tensor):
    """``tensor.pin_memory()``: pinned on CUDA/XPU; the tensor itself on MPS and CPU."""
    return (_S or _resolve()).pin_memory(tensor)


def nvtx_range_push(msg):
    """CUDA: ``torch.cuda.nvtx.range_push``. Elsewhere a per-thread profiler range."""
    return (_S or _resolve()).nvtx_range_push(msg)


def nvtx_range_pop():
    """CUDA: ``torch.cuda.nvtx.range_pop``. Elsewhere closes the innermost range (-1: none)."""
    return (_S or _resolve()).nvtx_range_pop()


def nvtx_range(msg, *args, **kwargs):
    """Context manager: ``torch.cuda.nvtx.range`` on CUDA, else a profiler ``record_function``."""
    return (_S or _resolve()).nvtx_range(msg, *args, **kwargs)


def nvtx_mark(msg):
    """CUDA: ``torch.cuda.nvtx.mark``. Elsewhere an empty profiler range named ``msg``."""
    return (_S or _resolve()).nvtx_mark(msg)
