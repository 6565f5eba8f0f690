"""Random numbers: the generator of the device that replaced CUDA, and nothing more."""

from unittest import mock

import pytest
import torch

import runtime_shim


def test_cpu_state_round_trip():
    runtime_shim.manual_seed(1234)
    assert runtime_shim.initial_seed() == 1234
    state = runtime_shim.get_rng_state()
    first = torch.rand(8)
    runtime_shim.set_rng_state(state)
    assert torch.equal(torch.rand(8), first)
    states = runtime_shim.get_rng_state_all()
    assert len(states) == 1
    second = torch.rand(8)
    runtime_shim.set_rng_state_all(states)
    assert torch.equal(torch.rand(8), second)


def test_cpu_seeds_the_default_generator():
    runtime_shim.manual_seed_all(7)
    a = torch.randn(4)
    runtime_shim.manual_seed(7)
    assert torch.equal(torch.randn(4), a)
    runtime_shim.seed()
    assert runtime_shim.initial_seed() == torch.default_generator.initial_seed() != 7
    runtime_shim.seed_all()
    assert runtime_shim.get_rng_state(device="cuda:0").dtype == torch.uint8


def test_cpu_rejects_more_states_than_generators():
    state = runtime_shim.get_rng_state()
    with pytest.raises(ValueError, match="one generator"):
        runtime_shim.set_rng_state_all([state, state])


def test_cuda_rng_is_torch_cuda(simulate):
    seed = mock.Mock()
    with simulate("cuda", **{"torch.cuda.manual_seed": seed}):
        runtime_shim.manual_seed(5)
        seed.assert_called_once_with(5)
        assert runtime_shim._S.get_rng_state is torch.cuda.get_rng_state
        assert runtime_shim._S.set_rng_state_all is torch.cuda.set_rng_state_all


def test_mps_rng_touches_only_the_mps_generator(simulate):
    cpu_before = torch.default_generator.get_state()
    mps_state = torch.ByteTensor([1, 2, 3])
    mocks = {
        "torch.mps.manual_seed": mock.Mock(),
        "torch.mps.get_rng_state": mock.Mock(return_value=mps_state),
        "torch.mps.set_rng_state": mock.Mock(),
        "torch.manual_seed": mock.Mock(),
    }
    with simulate("mps", **mocks):
        runtime_shim.manual_seed(11)
        runtime_shim.manual_seed_all(12)
        assert runtime_shim.get_rng_state() is mps_state
        runtime_shim.set_rng_state(mps_state, device="cuda")
        runtime_shim.set_rng_state_all([mps_state])
    assert [c.args for c in mocks["torch.mps.manual_seed"].call_args_list] == [(11,), (12,)]
    assert mocks["torch.mps.set_rng_state"].call_count == 2
    mocks["torch.manual_seed"].assert_not_called()
    assert torch.equal(torch.default_generator.get_state(), cpu_before)


def test_xpu_rng_maps_device(simulate):
    get_state = mock.Mock(return_value="xpu-state")
    with simulate("xpu", **{"torch.xpu.get_rng_state": get_state}):
        assert runtime_shim.get_rng_state("cuda:1") == "xpu-state"
        get_state.assert_called_once_with(torch.device("xpu", 1))
