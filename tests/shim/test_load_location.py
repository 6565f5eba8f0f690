"""load_location(): torch.load of a checkpoint saved on CUDA works on CPU, and nothing else moves."""

import io
import zipfile

import pytest
import torch

import runtime_shim


def _as_if_saved_on_cuda(obj) -> bytes:
    """torch.save(obj) with every storage location rewritten to 'cuda:0' (what a GPU run writes)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                cpu_tag = b"X\x03\x00\x00\x00cpu"  # pickle protocol 2 BINUNICODE 'cpu'
                assert cpu_tag in data
                data = data.replace(cpu_tag, b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(info, data)
    return out.getvalue()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_cuda_checkpoint_loads_on_cpu(monkeypatch):
    monkeypatch.delenv("TORCHDEVICE_DEVICE", raising=False)
    runtime_shim._reset()
    raw = _as_if_saved_on_cuda({"w": torch.arange(4.0)})
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(io.BytesIO(raw))
    loaded = torch.load(io.BytesIO(raw), map_location=runtime_shim.load_location())
    assert loaded["w"].device.type == "cpu"
    assert torch.equal(loaded["w"], torch.arange(4.0))


def test_cpu_storages_stay_where_they_were_saved(monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", "cpu")
    runtime_shim._reset()
    try:
        buf = io.BytesIO()
        state = torch.get_rng_state()
        torch.save({"rng": state}, buf)
        buf.seek(0)
        loaded = torch.load(buf, map_location=runtime_shim.load_location())
        assert loaded["rng"].device.type == "cpu" and torch.equal(loaded["rng"], state)
    finally:
        runtime_shim._reset()


def test_cuda_backend_keeps_torch_default(monkeypatch):
    """On CUDA the ported call passes map_location=None: exactly torch.load's default."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("TORCHDEVICE_DEVICE", raising=False)
    runtime_shim._reset()
    try:
        assert runtime_shim.load_location() is None
    finally:
        runtime_shim._reset()
