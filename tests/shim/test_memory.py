"""Memory figures: CPU-only torch's answers on the CPU (psutil where it had none), torch's own on
simulated backends."""

from unittest import mock

import psutil
import pytest
import torch

import runtime_shim

MiB = 2**20


def _allocate_and_touch(nbytes):
    t = torch.empty(nbytes, dtype=torch.uint8)
    t.fill_(1)  # touch every page so it becomes resident
    return t


# On a CPU-only torch the original torch.cuda memory calls answered 0 / an empty dict: the
# port answers the same, so code that already ran there (leak checks, logging) is unchanged.
COUNTERS = ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved")


@pytest.mark.parametrize("name", COUNTERS)
def test_cpu_counters_are_what_cpu_only_torch_answered(name):
    original = getattr(torch.cuda, name)()
    assert original == 0  # this machine's torch has no CUDA
    assert getattr(runtime_shim, name)() == original
    assert getattr(runtime_shim, name)("cuda:0") == original  # device argument accepted


def test_cpu_leak_check_holds_across_a_large_allocation():
    before = runtime_shim.memory_allocated()
    runtime_shim.reset_peak_memory_stats()
    t = _allocate_and_touch(64 * MiB)
    during = runtime_shim.memory_allocated()
    del t
    assert runtime_shim.memory_allocated() == before == during
    assert runtime_shim.max_memory_allocated() == torch.cuda.max_memory_allocated()


def test_cpu_max_reserved_is_its_own_function():
    assert runtime_shim.max_memory_reserved is not runtime_shim.max_memory_allocated
    runtime_shim.device()
    backend = runtime_shim._S
    assert type(backend).max_memory_reserved is not type(backend).max_memory_allocated


def test_cpu_memory_stats_match_cpu_only_torch():
    stats = runtime_shim.memory_stats()
    original = torch.cuda.memory_stats()
    assert stats == original and type(stats) is type(original)


def test_cpu_mem_get_info_is_system_memory():
    free, total = runtime_shim.mem_get_info()
    assert total == psutil.virtual_memory().total
    assert 0 < free <= total


def test_cpu_summary_describes_the_process_and_noops():
    # torch.cuda.memory_summary() raised on a CPU-only torch: the port describes the process
    rss = psutil.Process().memory_info().rss
    summary = runtime_shim.memory_summary()
    assert "cpu" in summary and "RSS" in summary and "are 0" in summary
    shown = float(summary.split("(RSS)", 1)[1].split()[0])  # MiB
    assert abs(shown * MiB - rss) < 64 * MiB
    assert runtime_shim.empty_cache() is None
    assert runtime_shim.reset_accumulated_memory_stats() is None
    assert runtime_shim.reset_max_memory_allocated() is None


def test_cuda_memory_functions_are_torch_cuda(simulate):
    allocated = mock.Mock(return_value=1234)
    with simulate("cuda", **{"torch.cuda.memory_allocated": allocated}):
        assert runtime_shim.memory_allocated("cuda:1") == 1234
        allocated.assert_called_once_with("cuda:1")
        assert runtime_shim._S.memory_stats is torch.cuda.memory_stats
        assert runtime_shim._S.mem_get_info is torch.cuda.mem_get_info
        assert runtime_shim._S.memory_summary is torch.cuda.memory_summary


def test_xpu_memory_maps_device_arguments(simulate):
    allocated = mock.Mock(return_value=99)
    reset = mock.Mock()
    with simulate("xpu", **{"torch.xpu.memory_allocated": allocated,
                            "torch.xpu.reset_peak_memory_stats": reset,
                            "torch.xpu.memory_stats": mock.Mock(return_value={
                                "allocated_bytes.all.current": 5 * MiB,
                                "reserved_bytes.all.peak": 7 * MiB, "num_ooms": 0})}):
        assert runtime_shim.memory_allocated("cuda:1") == 99
        allocated.assert_called_with(torch.device("xpu", 1))
        runtime_shim.memory_allocated(0)
        allocated.assert_called_with(0)
        runtime_shim.reset_max_memory_allocated()
        reset.assert_called_once_with(None)
        summary = runtime_shim.memory_summary()
        assert "xpu" in summary and "5.0 MiB" in summary and "num_ooms" not in summary


def test_mps_memory_figures_and_missing_peak(simulate):
    gib = 2**30
    with simulate("mps", **{
            "torch.mps.current_allocated_memory": mock.Mock(return_value=1 * gib),
            "torch.mps.driver_allocated_memory": mock.Mock(return_value=4 * gib),
            "torch.mps.recommended_max_memory": mock.Mock(return_value=16 * gib)}):
        assert runtime_shim.memory_allocated() == 1 * gib
        assert runtime_shim.memory_reserved() == 4 * gib
        assert runtime_shim.mem_get_info() == (12 * gib, 16 * gib)
        assert runtime_shim.memory_stats() == {"allocated_bytes.all.current": 1 * gib,
                                               "reserved_bytes.all.current": 4 * gib}
        for api in (runtime_shim.max_memory_allocated, runtime_shim.max_memory_reserved):
            with pytest.raises(runtime_shim.UnsupportedOnBackend, match=r"max_memory_\w+ .*mps.*memory_allocated\(\)"):
                api()
        assert isinstance(runtime_shim.UnsupportedOnBackend("a", "b", "c"), RuntimeError)
        assert "Metal" in runtime_shim.memory_summary()
