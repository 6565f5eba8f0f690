"""Memory figures: real psutil/kernel figures on the CPU, torch's own on simulated backends."""

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


def test_cpu_allocated_is_process_rss():
    rss = psutil.Process().memory_info().rss
    got = runtime_shim.memory_allocated()
    assert abs(got - rss) < 32 * MiB
    assert runtime_shim.memory_reserved() > 0
    assert runtime_shim.memory_allocated("cuda:0") > 0  # device argument accepted


def test_cpu_peak_after_touching_64mib():
    runtime_shim.reset_peak_memory_stats()
    base = runtime_shim.max_memory_allocated()
    t = _allocate_and_touch(64 * MiB)
    del t
    peak = runtime_shim.max_memory_allocated()
    assert peak >= 64 * MiB
    assert peak - base >= 63 * MiB  # the 64 MiB tensor itself, at page granularity
    assert runtime_shim.max_memory_reserved() >= peak - 1 * MiB


def test_cpu_reset_lowers_the_peak():
    t = _allocate_and_touch(96 * MiB)
    del t
    high = runtime_shim.max_memory_allocated()
    runtime_shim.reset_peak_memory_stats()
    after = runtime_shim.max_memory_allocated()
    assert after <= high - 64 * MiB
    assert after >= runtime_shim.memory_allocated() - 8 * MiB


def test_cpu_peak_tracked_by_the_shim_where_the_os_cannot_reset(monkeypatch):
    monkeypatch.setattr(runtime_shim, "_clear_os_peak", lambda: False)
    runtime_shim.reset_peak_memory_stats()
    base = runtime_shim.max_memory_allocated()
    t = _allocate_and_touch(64 * MiB)
    runtime_shim.memory_allocated()  # the shim can only see what it is asked about
    del t
    assert runtime_shim.max_memory_allocated() - base >= 63 * MiB
    assert "seen by runtime_shim" in runtime_shim.memory_summary()


def test_cpu_memory_stats_use_cuda_key_names():
    stats = runtime_shim.memory_stats()
    for key in ("allocated_bytes.all.current", "allocated_bytes.all.peak",
                "reserved_bytes.all.current", "reserved_bytes.all.peak"):
        assert stats[key] > 0, key
    assert stats["allocated_bytes.all.peak"] >= stats["allocated_bytes.all.current"] - 8 * MiB


def test_cpu_mem_get_info_is_system_memory():
    free, total = runtime_shim.mem_get_info()
    assert total == psutil.virtual_memory().total
    assert 0 < free <= total


def test_cpu_summary_and_noops():
    summary = runtime_shim.memory_summary()
    assert "cpu" in summary and "allocated_bytes.all.current" in summary and "RSS" in summary
    assert runtime_shim.empty_cache() is None
    assert runtime_shim.reset_accumulated_memory_stats() is None
    runtime_shim.reset_max_memory_allocated()
    assert runtime_shim.max_memory_allocated() > 0


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
