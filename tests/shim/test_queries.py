"""Device queries, errors and the issue-4 helpers."""

import os
import pathlib
import re
from unittest import mock

import psutil
import pytest
import torch

import runtime_shim


def test_cpu_properties_describe_this_machine():
    props = runtime_shim.get_device_properties()
    assert props.name == runtime_shim.get_device_name() and props.name
    assert props.total_memory == psutil.virtual_memory().total
    assert props.multi_processor_count == os.cpu_count()
    assert (props.major, props.minor) == (0, 0)
    assert runtime_shim.get_device_capability() == (0, 0)
    assert "total_memory" in repr(props)
    with pytest.raises(AttributeError):
        props.no_such_property
    if os.path.exists("/proc/cpuinfo"):
        cpuinfo = open("/proc/cpuinfo").read()
        assert props.name in cpuinfo


def test_cpu_bf16_is_what_cpu_only_torch_answered():
    # code choosing bf16 vs fp16 with this keeps the branch it took on a CPU-only torch
    assert runtime_shim.is_bf16_supported() is torch.cuda.is_bf16_supported() is False
    assert runtime_shim.is_bf16_supported(including_emulation=False) is False


# every attribute torch documents on CUDA's get_device_properties(i) (torch/_C/__init__.pyi
# _CudaDeviceProperties, plus those torch's own code reads: profiler, numa binding)
CUDA_PROPERTIES = ("name major minor multi_processor_count total_memory is_integrated "
                   "is_multi_gpu_board max_threads_per_multi_processor gcnArchName warp_size "
                   "uuid L2_cache_size clock_rate memory_clock_rate memory_bus_width "
                   "shared_memory_per_block shared_memory_per_multiprocessor "
                   "max_threads_per_block regs_per_multiprocessor pci_bus_id pci_device_id "
                   "pci_domain_id").split()


def _stub_properties():
    stub = pathlib.Path(torch.__file__).parent / "_C" / "__init__.pyi"
    body = stub.read_text().split("class _CudaDeviceProperties:", 1)[1].split("\nclass ", 1)[0]
    return set(re.findall(r"^    (\w+):", body, re.M))


def test_every_cuda_property_is_answered_or_unsupported_on_cpu():
    assert _stub_properties() <= set(CUDA_PROPERTIES) <= runtime_shim._CUDA_DEVICE_PROPERTIES
    props = runtime_shim.get_device_properties(0)
    answered = set()
    for attr in CUDA_PROPERTIES:
        try:
            getattr(props, attr)
            answered.add(attr)
        except runtime_shim.UnsupportedOnBackend as e:
            assert attr in str(e) and "cpu" in str(e)
            assert isinstance(e, AttributeError)  # getattr(props, attr, default) still works
            assert getattr(props, attr, "dflt") == "dflt"
    assert runtime_shim.DEVICE_PROPERTY_ATTRIBUTES <= answered
    assert answered == runtime_shim.DEVICE_PROPERTY_ATTRIBUTES | {"multi_processor_count"}
    assert (props.major, props.minor, props.is_multi_gpu_board) == (0, 0, 0)
    with pytest.raises(AttributeError):
        props.no_such_property


def test_out_of_memory_error_is_torch_cuda_one():
    assert runtime_shim.OutOfMemoryError is torch.cuda.OutOfMemoryError
    with pytest.raises(runtime_shim.OutOfMemoryError):
        raise torch.OutOfMemoryError("simulated")


def test_cuda_queries_are_torch_cuda(simulate):
    name = mock.Mock(return_value="NVIDIA H100")
    with simulate("cuda", **{"torch.cuda.get_device_name": name}):
        assert runtime_shim.get_device_name(1) == "NVIDIA H100"
        name.assert_called_once_with(1)
        assert runtime_shim._S.get_device_properties is torch.cuda.get_device_properties
        assert runtime_shim._S.is_bf16_supported is torch.cuda.is_bf16_supported


def test_xpu_properties_have_cuda_names(simulate):
    xpu_props = mock.Mock(max_compute_units=64, total_memory=2**34, gpu_eu_count=512)
    xpu_props.name = "Intel Data Center GPU Max"
    with simulate("xpu", **{"torch.xpu.get_device_properties": mock.Mock(return_value=xpu_props)}):
        props = runtime_shim.get_device_properties("cuda:1")
    assert props.name == "Intel Data Center GPU Max" and props.multi_processor_count == 64
    assert props.total_memory == 2**34 and (props.major, props.minor) == (0, 0)
    assert props.gpu_eu_count == 512  # other attributes come from torch.xpu's object


def test_mps_properties_and_bf16(simulate):
    with simulate("mps", **{"torch.mps.recommended_max_memory": mock.Mock(return_value=2**34),
                            "torch.backends.mps.is_macos_or_newer": mock.Mock(return_value=False)}):
        props = runtime_shim.get_device_properties()
        assert props.total_memory == 2**34 and props.type == "mps"
        with pytest.raises(runtime_shim.UnsupportedOnBackend, match="multi_processor_count.*mps"):
            props.multi_processor_count
        assert "unknown" in repr(props)
        assert runtime_shim.is_bf16_supported() is False


# --- issue-4 helpers --------------------------------------------------------------------

def test_cpu_beyond_helpers():
    assert runtime_shim.distributed_backend() == "gloo"
    assert runtime_shim.distributed_backend("gloo") == "gloo"
    assert runtime_shim.ddp_device_ids([0]) is None
    assert runtime_shim.pin_memory_enabled(True) is False
    t = torch.ones(3)
    assert runtime_shim.pin_memory(t) is t


def test_cpu_nvtx_ranges_reach_the_profiler():
    assert runtime_shim.nvtx_range_push("outer") == 0
    assert runtime_shim.nvtx_range_push("inner") == 1
    assert runtime_shim.nvtx_range_pop() == 1
    assert runtime_shim.nvtx_range_pop() == 0
    assert runtime_shim.nvtx_range_pop() == -1
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with runtime_shim.nvtx_range("shim_range_{}", 7):
            torch.ones(4) + 1
        runtime_shim.nvtx_mark("shim_mark")
        runtime_shim.nvtx_range_push("shim_pushed")
        runtime_shim.nvtx_range_pop()
    names = {e.name for e in prof.events()}
    assert {"shim_range_7", "shim_mark", "shim_pushed"} <= names


def test_cuda_beyond_helpers(simulate):
    tensor = mock.Mock()
    push = mock.Mock(return_value=0)
    with simulate("cuda", **{"torch.cuda.nvtx.range_push": push}):
        assert runtime_shim.distributed_backend() == "nccl"
        assert runtime_shim.ddp_device_ids([1]) == [1]
        assert runtime_shim.pin_memory_enabled(True) is True
        runtime_shim.pin_memory(tensor)
        runtime_shim.nvtx_range_push("x")
    tensor.pin_memory.assert_called_once_with()
    push.assert_called_once_with("x")


def test_set_device_and_context(simulate):
    set_device = mock.Mock()
    with simulate("xpu", **{"torch.xpu.set_device": set_device}):
        runtime_shim.set_device("cuda:1")
    set_device.assert_called_once_with(torch.device("xpu", 1))
    with simulate("cpu"):
        assert runtime_shim.set_device(3) is None
        with runtime_shim.device_context(1):
            assert runtime_shim.current_device() == 0
