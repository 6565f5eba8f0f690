"""to_device / is_cuda / on_device (receivers of unknown type), worker_count, device_usable,
ipc_collect, set_default_tensor_type and device-mapped distributed backends."""

from unittest import mock

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import runtime_shim


class Ema:
    """A project class with its own cuda(self) that takes no argument."""

    def __init__(self):
        self.shadow = torch.zeros(2)
        self.calls = []

    def cuda(self):
        self.calls.append("cuda")
        return self


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)


class OwnCudaNet(Net):
    def cuda(self, device=None):
        self.moved_to = device
        return self


# --- CPU (this machine) ---------------------------------------------------------------

def test_cpu_tensor_move_never_aliases_and_is_differentiable():
    x = torch.ones(3, requires_grad=True)
    y = runtime_shim.to_device(x)
    assert y is not x and y.data_ptr() != x.data_ptr() and y.device.type == "cpu"
    (y * 2).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))
    src = torch.zeros(2)
    moved = runtime_shim.to_device(src, 0, non_blocking=True)
    src.add_(1)  # an in-place update of the source must not show through the move
    assert torch.equal(moved, torch.zeros(2))
    assert runtime_shim.to_device(torch.ones(2, dtype=torch.float64)).dtype == torch.float64


def test_cpu_module_moves_in_place_and_user_cuda_runs():
    net = Net()
    assert runtime_shim.to_device(net) is net
    own = OwnCudaNet()
    assert runtime_shim.to_device(own, 1) is own and own.moved_to == 1  # the user's cuda() ran
    ema = Ema()
    assert runtime_shim.to_device(ema) is ema and ema.calls == ["cuda"]  # called with no argument
    param = torch.nn.Parameter(torch.ones(2))  # a Tensor subclass that keeps torch's cuda
    assert runtime_shim.to_device(param).device.type == "cpu"
    with pytest.raises(AttributeError):
        runtime_shim.to_device(object())  # no cuda(): as in the original


def test_cpu_packed_sequence_and_storage_move_instead_of_crashing():
    seq = pack_sequence([torch.ones(2), torch.ones(1)])
    moved = runtime_shim.to_device(seq)
    assert moved.data.device.type == "cpu"
    with pytest.raises((AssertionError, RuntimeError)):
        seq.cuda()  # what the original did on a CPU-only torch
    storage = torch.UntypedStorage(4)
    assert runtime_shim.to_device(storage).device.type == "cpu"


def test_cpu_is_cuda_and_on_device():
    x, seq = torch.ones(1), pack_sequence([torch.ones(2)])
    # is_cuda: what the original answered on a CPU-only torch
    assert runtime_shim.is_cuda(x) is x.is_cuda is False
    assert runtime_shim.is_cuda(seq) is seq.is_cuda is False
    # on_device: the stated requirement "it was moved" holds after a ported move
    assert runtime_shim.on_device(runtime_shim.to_device(x)) is True
    assert runtime_shim.on_device(seq) is True
    assert runtime_shim.on_device(torch.ones(1, device="meta")) is False

    class Flagged:  # no .device: the object's own is_cuda answers
        is_cuda = True
    assert runtime_shim.is_cuda(Flagged()) is True and runtime_shim.on_device(Flagged()) is True


def test_cpu_worker_count_runs_the_work_once():
    assert runtime_shim.device_count() == 0
    assert runtime_shim.worker_count() == 1
    assert runtime_shim.worker_count(0) == 1
    assert runtime_shim.worker_count(3) == 3


def test_cpu_requirement_relaxed_housekeeping_noop():
    assert runtime_shim.is_available() is False
    assert runtime_shim.device_usable() is True
    assert runtime_shim.ipc_collect() is None


def test_cpu_set_default_tensor_type_of_a_cuda_type():
    before = torch.get_default_dtype()
    try:
        runtime_shim.set_default_tensor_type(torch.cuda.DoubleTensor)
        assert torch.get_default_dtype() == torch.float64
        assert torch.tensor([1.0]).dtype == torch.float64
        runtime_shim.set_default_tensor_type("torch.cuda.HalfTensor")
        assert torch.get_default_dtype() == torch.float16
        with pytest.raises(TypeError):
            runtime_shim.set_default_tensor_type(torch.cuda.LongTensor)
        runtime_shim.set_default_tensor_type(torch.FloatTensor)  # CPU types go to torch
        assert torch.get_default_dtype() == torch.float32
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize("machine, requested, want", [
    ("cpu", "cpu:gloo,cuda:nccl", "cpu:gloo"),
    ("cpu", "cuda:nccl", "gloo"),
    ("mps", "cpu:gloo,cuda:nccl", "cpu:gloo,mps:gloo"),
    ("xpu", "cpu:gloo, cuda:nccl", "cpu:gloo,xpu:xccl"),
    ("cuda", "cpu:gloo,cuda:nccl", "cpu:gloo,cuda:nccl"),
    ("cpu", "gloo", "gloo"),
    ("cpu", "NCCL", "gloo"),
])
def test_device_mapped_distributed_backend(simulate, machine, requested, want):
    with simulate(machine):
        assert runtime_shim.distributed_backend(requested) == want


# --- simulated CUDA: exactly the original ----------------------------------------------

def test_cuda_to_device_is_the_original_call(simulate):
    with simulate("cuda"):
        x = mock.Mock()
        runtime_shim.to_device(x)
        runtime_shim.to_device(x, 1, non_blocking=True)
        runtime_shim.to_device(x, device=2, memory_format=torch.channels_last)
        assert x.cuda.call_args_list == [mock.call(), mock.call(1, non_blocking=True),
                                         mock.call(2, memory_format=torch.channels_last)]
        ema = Ema()
        assert runtime_shim.to_device(ema) is ema and ema.calls == ["cuda"]
        flagged = mock.Mock(is_cuda="sentinel")
        assert runtime_shim.is_cuda(flagged) == "sentinel" == runtime_shim.on_device(flagged)


def test_cuda_counts_and_availability_are_torch_cuda(simulate):
    with simulate("cuda", count=2):
        assert runtime_shim.worker_count() == 2 and runtime_shim.worker_count(5) == 5
        assert runtime_shim.device_usable() is True
        ipc = mock.Mock()
        with mock.patch("torch.cuda.ipc_collect", ipc):
            runtime_shim._reset()
            runtime_shim.ipc_collect()
        ipc.assert_called_once_with()
        sdtt = mock.Mock()
        with mock.patch("torch.set_default_tensor_type", sdtt):
            runtime_shim._reset()
            runtime_shim.set_default_tensor_type(torch.cuda.HalfTensor)
        sdtt.assert_called_once_with(torch.cuda.HalfTensor)


@pytest.mark.parametrize("machine", ["xpu", "mps"])
def test_accelerators_count_and_answer(simulate, machine):
    with simulate(machine, count=2):
        assert runtime_shim.is_available() is True and runtime_shim.device_usable() is True
        assert runtime_shim.worker_count() == runtime_shim.device_count() == (2 if machine == "xpu" else 1)
        assert runtime_shim.is_cuda(torch.ones(1)) is False  # a CPU tensor is not on the accelerator
        assert runtime_shim.on_device(torch.ones(1)) is False
        fake = mock.Mock(device=torch.device(machine))
        assert runtime_shim.is_cuda(fake) is True and runtime_shim.on_device(fake) is True
