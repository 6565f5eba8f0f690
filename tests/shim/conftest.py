"""Shared fixtures: a fresh shim state per test, and simulated accelerators.

Simulation patches torch's availability queries inside the test only; the shim itself never
patches anything.
"""

import contextlib
from unittest import mock

import pytest

import runtime_shim


@pytest.fixture(autouse=True)
def fresh_shim(monkeypatch):
    """Every test starts and ends with an unresolved shim and no TORCHDEVICE_* variables."""
    monkeypatch.delenv("TORCHDEVICE_DEVICE", raising=False)
    monkeypatch.delenv("TORCHDEVICE_LOG_LEVEL", raising=False)
    runtime_shim._reset()
    yield
    runtime_shim._reset()


@contextlib.contextmanager
def _simulated(backend, count=2, **extra_patches):
    """Make torch report `backend` ('cuda', 'xpu', 'mps' or 'cpu') as the best device.

    extra_patches: dotted torch attribute -> value, patched for the duration as well
    (applied before the shim resolves, so CUDA's pre-bound functions pick them up).
    """
    patches = {
        "torch.cuda.is_available": mock.Mock(return_value=backend == "cuda"),
        "torch.cuda.device_count": mock.Mock(return_value=count if backend == "cuda" else 0),
        "torch.cuda.current_device": mock.Mock(return_value=0),
        "torch.xpu.is_available": mock.Mock(return_value=backend == "xpu"),
        "torch.xpu.device_count": mock.Mock(return_value=count if backend == "xpu" else 0),
        "torch.xpu.current_device": mock.Mock(return_value=0),
        "torch.backends.mps.is_available": mock.Mock(return_value=backend == "mps"),
    }
    patches.update(extra_patches)
    with contextlib.ExitStack() as stack:
        for target, value in patches.items():
            stack.enter_context(mock.patch(target, value))
        runtime_shim._reset()
        yield patches
    runtime_shim._reset()


@pytest.fixture
def simulate():
    """`with simulate('cuda', **patches) as mocks:` runs the shim as on that machine."""
    return _simulated


@pytest.fixture
def shim():
    return runtime_shim
