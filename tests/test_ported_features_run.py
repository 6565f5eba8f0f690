"""Issue 4B end to end: a CUDA-only script using AMP, legacy tensor types, the default tensor type,
NCCL + DDP, pinned memory, ``is_cuda`` and NVTX is ported with
``migrate_text`` and run on this CPU-only machine. The original must fail here; the port must do its work.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from torchdevice_migrate.transform import migrate_text

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''\
    import sys

    import torch
    import torch.distributed as dist
    import torch.nn as nn
    from torch.cuda.amp import GradScaler, autocast
    from torch.nn.parallel import DistributedDataParallel as DDP

    port = sys.argv[1]
    torch.manual_seed(0)

    # --- AMP: autocast + a GradScaler step ---
    model = nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = GradScaler()
    x = torch.randn(16, 8)
    with autocast():
        out = model(x)
    print(f"autocast dtype {out.dtype}")
    loss = out.float().pow(2).mean()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    print(f"scaler enabled={scaler.is_enabled()} scale={scaler.get_scale()}")

    # --- legacy tensor types ---
    idx = torch.cuda.LongTensor([1, 2, 3])
    buf = torch.cuda.FloatTensor(2, 3).zero_()
    half = x.type(torch.cuda.HalfTensor)
    print(f"legacy sum={int(idx.sum())} buf={tuple(buf.shape)} half={half.dtype}")
    print(f"isinstance float32 on accelerator: {isinstance(x, torch.cuda.FloatTensor)}")

    # --- pinned memory, is_cuda ---
    pinned = x.pin_memory()
    print(f"pinned same values={bool(torch.equal(pinned, x))} is_cuda={x.is_cuda}")

    # --- NVTX ---
    torch.cuda.nvtx.range_push("step")
    y = model(x).sum()
    torch.cuda.nvtx.range_pop()
    print("nvtx ok")

    # --- NCCL + DDP on a one-process group ---
    backend = "nccl"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    local_rank = 0
    ddp = DDP(nn.Linear(8, 2), device_ids=[local_rank], output_device=local_rank)
    ddp(torch.randn(4, 8)).sum().backward()
    t = torch.ones(3)
    dist.all_reduce(t)
    print(f"ddp ok backend={dist.get_backend()} same_as_requested={dist.get_backend() == 'nccl'} reduced={t.tolist()}")
    dist.destroy_process_group()

    # --- default tensor type: dtype and device ---
    torch.set_default_tensor_type(torch.cuda.HalfTensor)
    z = torch.zeros(2)
    print(f"default dtype={z.dtype}")
    print("done")
''')


def _free_port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _run(code: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env.pop("TORCHDEVICE_DEVICE", None)
    env["PYTHONPATH"] = str(REPO)
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(path), _free_port()], capture_output=True, text=True,
                          env=env, timeout=240, cwd=tmp_path)


def _cpu_only() -> bool:
    import torch
    return not torch.cuda.is_available() and not torch.backends.mps.is_available() and not (
        hasattr(torch, "xpu") and torch.xpu.is_available())


pytestmark = pytest.mark.skipif(not _cpu_only(), reason="checks the behaviour of a CPU-only build")


def test_ported_script_runs_on_cpu(tmp_path):
    ported = migrate_text(SCRIPT)
    # a CUDA tensor type as the argument of the shim's set_default_tensor_type is a type object
    # that a CPU-only torch imports fine; the shim maps it (dtype + chosen device)
    assert "runtime_shim.set_default_tensor_type(torch.cuda.HalfTensor)" in ported
    assert "torch.cuda" not in ported.replace("torch.cuda.is_available", "").replace(
        "runtime_shim.set_default_tensor_type(torch.cuda.HalfTensor)", "")
    assert 'backend = runtime_shim.distributed_backend("nccl")' in ported
    assert "device_ids=runtime_shim.ddp_device_ids([local_rank])" in ported
    proc = _run(ported, tmp_path, "ported.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert "autocast dtype torch.bfloat16" in out          # autocast really on (CPU default dtype)
    assert "scaler enabled=True scale=65536.0" in out      # loss scaling kept on, step taken
    assert "legacy sum=6 buf=(2, 3) half=torch.float16" in out
    assert "isinstance float32 on accelerator: False" in out
    assert "pinned same values=True is_cuda=False" in out
    assert "nvtx ok" in out
    assert "ddp ok backend=gloo same_as_requested=True reduced=[1.0, 1.0, 1.0]" in out
    assert "default dtype=torch.float16" in out
    assert out[-1] == "done"


def test_original_fails_on_cpu(tmp_path):
    proc = _run(SCRIPT, tmp_path, "original.py")
    assert proc.returncode != 0
    assert "CUDA" in proc.stderr or "cuda" in proc.stderr
    assert "done" not in proc.stdout


def test_port_is_idempotent():
    ported = migrate_text(SCRIPT)
    assert migrate_text(ported) == ported
