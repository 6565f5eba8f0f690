"""Streams and events: real on the CPU, torch's own classes on simulated CUDA/XPU/MPS."""

import threading
import time
from unittest import mock

import pytest
import torch

import runtime_shim

# --- CPU, for real ------------------------------------------------------------------------

def test_cpu_event_measures_a_50ms_sleep():
    start = runtime_shim.Event(enable_timing=True)
    end = runtime_shim.Event(enable_timing=True)
    start.record()
    time.sleep(0.05)
    end.record()
    end.synchronize()
    elapsed = start.elapsed_time(end)
    assert isinstance(elapsed, float)
    assert 40.0 <= elapsed <= 500.0


def test_cpu_event_resolution_is_sub_millisecond():
    start = runtime_shim.Event(enable_timing=True)
    end = runtime_shim.Event(enable_timing=True)
    start.record()
    end.record()
    assert 0.0 <= start.elapsed_time(end) < 1.0


def test_cpu_event_unrecorded_raises_like_cuda():
    start = runtime_shim.Event(enable_timing=True)
    end = runtime_shim.Event(enable_timing=True)
    start.record()
    with pytest.raises(RuntimeError, match="Both events must be recorded before calculating elapsed time.*cpu"):
        start.elapsed_time(end)
    with pytest.raises(ValueError):  # torch's own events raise ValueError for this
        start.elapsed_time(end)


def test_cpu_event_without_timing_raises_like_cuda():
    start, end = runtime_shim.Event(), runtime_shim.Event(enable_timing=True)
    start.record()
    end.record()
    with pytest.raises(RuntimeError, match=r"enable_timing=True.*cpu"):
        start.elapsed_time(end)


def test_cpu_event_methods():
    event = runtime_shim.Event(blocking=True, interprocess=True)
    assert event.query() is True
    assert event.wait() is None and event.synchronize() is None
    event.record(runtime_shim.current_stream())
    assert isinstance(event, runtime_shim.Event)
    with pytest.raises(runtime_shim.UnsupportedOnBackend, match="ipc_handle.*cpu"):
        event.ipc_handle()


def test_cpu_stream_context_switches_current_stream():
    default = runtime_shim.default_stream()
    assert runtime_shim.current_stream() is default
    s1, s2 = runtime_shim.Stream(), runtime_shim.Stream(priority=-1)
    assert s1 is not s2 and s2.priority == -1 and s1.device == torch.device("cpu")
    with runtime_shim.stream(s1):
        assert runtime_shim.current_stream() is s1
        with runtime_shim.stream(s2):
            assert runtime_shim.current_stream() is s2
        with runtime_shim.stream(None):
            assert runtime_shim.current_stream() is s1
        assert runtime_shim.current_stream() is s1
    assert runtime_shim.current_stream() is default


def test_cpu_stream_is_per_thread():
    seen = []
    s = runtime_shim.Stream()
    with runtime_shim.stream(s):
        t = threading.Thread(target=lambda: seen.append(runtime_shim.current_stream()))
        t.start()
        t.join()
    assert seen == [runtime_shim.default_stream()]


def test_cpu_set_stream_and_stream_methods():
    s = runtime_shim.Stream()
    runtime_shim.set_stream(s)
    assert runtime_shim.current_stream() is s
    runtime_shim.set_stream(runtime_shim.default_stream())
    assert runtime_shim.current_stream() is runtime_shim.default_stream()
    other = runtime_shim.Stream()
    assert s.query() is True
    assert s.synchronize() is None and s.wait_stream(other) is None
    event = s.record_event()
    assert isinstance(event, runtime_shim.Event) and event.query()
    timed = runtime_shim.Event(enable_timing=True)
    assert s.record_event(timed) is timed
    assert s.wait_event(timed) is None
    assert runtime_shim.synchronize() is None
    x = torch.ones(4)
    assert runtime_shim.record_stream(x, s) is None


def test_stream_and_event_are_cached_module_attributes():
    first = runtime_shim.Event
    assert runtime_shim.Event is first
    assert "Stream" in dir(runtime_shim)
    with pytest.raises(AttributeError):
        runtime_shim.NoSuchThing


# --- simulated accelerators -----------------------------------------------------------------

def test_cuda_uses_torch_cuda_classes_and_functions(simulate):
    current = mock.Mock(return_value="the-current-stream")
    with simulate("cuda", **{"torch.cuda.current_stream": current}):
        assert runtime_shim.Stream is torch.cuda.Stream
        assert runtime_shim.Event is torch.cuda.Event
        assert runtime_shim.current_stream(1) == "the-current-stream"
        current.assert_called_once_with(1)
        assert runtime_shim.stream is not None
        assert runtime_shim._S.stream is torch.cuda.stream
        assert runtime_shim._S.synchronize is torch.cuda.synchronize


def test_cuda_record_stream_calls_tensor_method(simulate):
    tensor = mock.Mock()
    with simulate("cuda"):
        runtime_shim.record_stream(tensor, "s")
    tensor.record_stream.assert_called_once_with("s")


@pytest.mark.parametrize("machine", ["xpu", "mps"])
def test_accelerators_use_generic_torch_stream_and_event(simulate, machine):
    with simulate(machine):
        assert issubclass(runtime_shim.Stream, torch.Stream)
        assert issubclass(runtime_shim.Event, torch.Event)
        sync = mock.Mock()
        current = mock.Mock(return_value="s0")
        with mock.patch("torch.accelerator.synchronize", sync), \
                mock.patch("torch.accelerator.current_stream", current):
            runtime_shim.synchronize("cuda:1")
            assert runtime_shim.current_stream() == "s0"
        want = torch.device("xpu", 1) if machine == "xpu" else torch.device("mps")
        sync.assert_called_once_with(want)
        with pytest.raises(runtime_shim.UnsupportedOnBackend, match=f"default_stream.*{machine}"):
            runtime_shim.default_stream()
        ctx = runtime_shim.stream(None)
        with ctx:
            pass


def test_generic_event_and_stream_are_built_for_the_chosen_device():
    # Construct the XPU/MPS classes against a CPU backend: the constructor must ask the
    # chosen backend for its device and pass the CUDA-style flags through to torch.Event.
    runtime_shim._S = runtime_shim._Cpu(None, "test")
    event = runtime_shim._AcceleratorEvent(enable_timing=True)
    assert isinstance(event, torch.Event) and event.device == torch.device("cpu")
    stream = runtime_shim._AcceleratorStream("cuda:1", priority=0)
    assert isinstance(stream, torch.Stream) and stream.device.type == "cpu"
