"""Random numbers: the generator of the device that replaced CUDA, and nothing more."""

from unittest import mock

import pytest
import torch

import runtime_shim


def _draws(seed_calls):
    """torch.manual_seed(0), then the CUDA seeding calls, then CPU draws."""
    torch.manual_seed(0)
    seed_calls()
    return torch.randn(6), torch.randint(0, 1000, (6,)), torch.rand(2, generator=None)


def test_cpu_draws_are_identical_to_the_original():
    # What the original did on a CPU-only torch: torch.cuda seeding left the CPU generator alone.
    def original():
        torch.cuda.manual_seed(123)
        torch.cuda.manual_seed_all(123)
        torch.cuda.seed()
        torch.cuda.seed_all()
        torch.cuda.set_rng_state_all(torch.cuda.get_rng_state_all())

    def port():
        runtime_shim.manual_seed(123)
        runtime_shim.manual_seed_all(123)
        runtime_shim.seed()
        runtime_shim.seed_all()
        runtime_shim.set_rng_state_all(runtime_shim.get_rng_state_all())

    want, got = _draws(original), _draws(port)
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    assert not torch.equal(_draws(lambda: torch.manual_seed(123))[0], want[0])  # seeding matters


def test_cpu_generator_untouched_and_answers_match_cpu_only_torch():
    before = torch.default_generator.get_state()
    runtime_shim.manual_seed(5)
    runtime_shim.set_rng_state(torch.ByteTensor([1, 2, 3]))
    assert torch.equal(torch.default_generator.get_state(), before)
    assert runtime_shim.get_rng_state_all() == torch.cuda.get_rng_state_all() == []


def test_cpu_reads_that_crashed_answer_for_the_cpu_generator():
    # torch.cuda.initial_seed()/get_rng_state() raised on a CPU-only torch (a checkpoint saving
    # "cuda_rng_state" crashed): the port reads the chosen device's generator, changing nothing
    for original in (torch.cuda.initial_seed, torch.cuda.get_rng_state):
        with pytest.raises(AssertionError):
            original()
    torch.manual_seed(77)
    state = runtime_shim.get_rng_state(device="cuda:0")
    assert runtime_shim.initial_seed() == 77
    assert torch.equal(state, torch.get_rng_state())
    draws = torch.rand(3)
    torch.set_rng_state(state)
    assert torch.equal(torch.rand(3), draws)
    now = torch.get_rng_state()
    runtime_shim.get_rng_state().zero_()  # the answer is a copy: the generator is untouched
    assert torch.equal(torch.get_rng_state(), now)


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
