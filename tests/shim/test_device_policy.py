"""Device choice: the policy tables of docs/device-policy.md, env override, logging."""

import logging
import os
import pathlib
import subprocess
import sys
import threading
from unittest import mock

import pytest
import torch

import runtime_shim

REPO = pathlib.Path(__file__).resolve().parents[2]
POLICY_DOC = REPO / "docs" / "device-policy.md"
MACHINES = ("cuda", "xpu", "mps", "cpu")  # column order of the doc tables


def _doc_table(marker):
    """Rows (call text, [expected per machine]) of the table after an HTML comment marker."""
    lines = POLICY_DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    rows = []
    for line in lines[start + 3:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[1:]))
    assert len(rows) >= 5, f"table {marker} not found or too short"
    return rows


POLICY_ROWS = _doc_table("policy-table")
QUERY_ROWS = _doc_table("query-table")


def _eval(call):
    return eval(call, {"torch": torch, **{n: getattr(runtime_shim, n) for n in runtime_shim.__all__}})


@pytest.mark.parametrize("machine", MACHINES)
def test_policy_table_matches_shim(simulate, machine):
    with simulate(machine):
        for call, expected in POLICY_ROWS:
            got = _eval(call)
            assert isinstance(got, torch.device), call
            want = expected[MACHINES.index(machine)]
            assert str(got) == want, f"{call} on {machine}: {got} != {want}"
            assert runtime_shim.device_string(got) == want
            assert runtime_shim.device_type(got) == torch.device(want).type


@pytest.mark.parametrize("machine", MACHINES)
def test_query_table_matches_shim(simulate, machine):
    with simulate(machine):
        for call, expected in QUERY_ROWS:
            want = eval(expected[MACHINES.index(machine)])
            assert _eval(call) == want, f"{call} on {machine}"


def test_real_cpu_machine_policy():
    # this machine has no accelerator: the unsimulated shim must choose the CPU
    assert runtime_shim.device() == torch.device("cpu")
    assert runtime_shim.device("cuda:3") == torch.device("cpu")
    assert runtime_shim.device("meta") == torch.device("meta")
    assert runtime_shim.device_string("cuda") == "cpu"
    assert runtime_shim.accelerator_type() is None
    # what torch.cuda answers on this CPU-only torch: no accelerator, no GPUs
    assert runtime_shim.is_available() is torch.cuda.is_available() is False
    assert runtime_shim.device_count() == torch.cuda.device_count() == 0
    # but one-process-per-GPU work still runs once
    assert runtime_shim.worker_count() == 1 and runtime_shim.worker_count(3) == 3
    # a tensor created on the mapped device really lands on it
    assert torch.ones(2, device=runtime_shim.device("cuda")).device.type == "cpu"


def test_cuda_identity_keeps_torch_semantics(simulate):
    with simulate("cuda"):
        assert runtime_shim.device("cuda") == torch.device("cuda")
        assert runtime_shim.device("cuda").index is None
        assert runtime_shim.device(1) == torch.device("cuda", 1)
        assert runtime_shim.is_available() is True
        assert runtime_shim.device_count() == 2
        assert runtime_shim.is_accelerator(torch.device("cuda", 0))
        # ``'cuda' in <collection>`` stays a membership test: exactly the original on CUDA.
        assert runtime_shim.is_accelerator(["cuda", "cpu"]) and runtime_shim.is_accelerator({"cuda": 1})
        assert not runtime_shim.is_accelerator(["cudagraphs", "--no-cuda"])
        assert runtime_shim.is_accelerator("cuda:1") and not runtime_shim.is_accelerator("cpu")


def test_invalid_specs_raise_like_torch(simulate):
    with simulate("cpu"):
        with pytest.raises(RuntimeError):
            runtime_shim.device("gpu")
        with pytest.raises(RuntimeError):
            runtime_shim.device(-1)


def test_resolution_is_cached(simulate):
    with simulate("xpu") as mocks:
        runtime_shim.device()
        runtime_shim.device("cuda:1")
        runtime_shim.device_count()
        assert mocks["torch.cuda.device_count"].call_count == 1
        assert mocks["torch.xpu.is_available"].call_count == 1
        runtime_shim._reset()
        runtime_shim.device()
        assert mocks["torch.cuda.device_count"].call_count == 2


# --- TORCHDEVICE_DEVICE -----------------------------------------------------------------

def test_env_forces_cpu_on_a_cuda_machine(simulate, monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", "cpu")
    with simulate("cuda"):
        assert runtime_shim.device("cuda:1") == torch.device("cpu")
        # forced CPU answers like a CPU-only torch: the original's CPU path runs
        assert runtime_shim.device_count() == 0
        assert runtime_shim.is_available() is False
        assert runtime_shim.accelerator_type() is None


def test_env_forces_cuda_index(simulate, monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", "CUDA:1")
    set_device = mock.Mock()
    memory_allocated = mock.Mock(return_value=7)
    with simulate("cuda", **{"torch.cuda.set_device": set_device,
                             "torch.cuda.memory_allocated": memory_allocated}):
        # the forced index is in the returned device, for every thread; nothing is set
        assert runtime_shim.device("cuda:0") == torch.device("cuda:0")
        assert runtime_shim.device() == torch.device("cuda:1")
        assert runtime_shim.device("cuda") == torch.device("cuda:1")
        assert runtime_shim.device_string() == "cuda:1"
        seen = []
        worker = threading.Thread(target=lambda: seen.append(runtime_shim.device()))
        worker.start()
        worker.join()
        assert seen == [torch.device("cuda:1")]
        assert runtime_shim.current_device() == 1
        # device arguments that default to the current device mean the forced one
        assert runtime_shim.memory_allocated() == 7
        memory_allocated.assert_called_once_with(1)
        set_device.assert_not_called()


def test_env_forces_mps_over_cuda(simulate, monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", "mps")
    with simulate("cuda", **{"torch.backends.mps.is_available": mock.Mock(return_value=True)}):
        assert runtime_shim.device(1) == torch.device("mps")


@pytest.mark.parametrize("value", ["gpu", "meta", "cuda:x", "mps:1", "cpu:2", "npu"])
def test_env_invalid_value_names_the_variable(simulate, monkeypatch, value):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", value)
    with simulate("cpu"):
        with pytest.raises(ValueError, match="TORCHDEVICE_DEVICE"):
            runtime_shim.device()


@pytest.mark.parametrize("value", ["cuda", "xpu:0", "mps"])
def test_env_unavailable_device_is_an_error(simulate, monkeypatch, value):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", value)
    with simulate("cpu"):
        with pytest.raises(RuntimeError, match="TORCHDEVICE_DEVICE.*not available"):
            runtime_shim.device()


def test_env_index_out_of_range(simulate, monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_DEVICE", "xpu:5")
    with simulate("xpu", count=2):
        with pytest.raises(ValueError, match="only 2 xpu"):
            runtime_shim.device()


# --- logging ------------------------------------------------------------------------------

def test_logs_choice_once_at_info(simulate, monkeypatch, caplog):
    monkeypatch.setenv("TORCHDEVICE_LOG_LEVEL", "INFO")
    with caplog.at_level(logging.INFO, logger="runtime_shim"):
        with simulate("xpu"):
            runtime_shim.device()
            runtime_shim.device_count()
            runtime_shim.device("cuda:1")
    records = [r for r in caplog.records if r.name == "runtime_shim"]
    assert len(records) == 1
    assert "xpu" in records[0].getMessage() and "XPU is available" in records[0].getMessage()


def test_invalid_log_level_names_the_variable(monkeypatch):
    monkeypatch.setenv("TORCHDEVICE_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="TORCHDEVICE_LOG_LEVEL"):
        runtime_shim.device()


def _run_python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHDEVICE_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_default_is_silent_and_info_reports_reason():
    code = "import runtime_shim; print(runtime_shim.device_string('cuda'))"
    quiet = _run_python(code)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "cpu"
    assert "runtime_shim" not in quiet.stderr
    loud = _run_python(code, TORCHDEVICE_LOG_LEVEL="info", TORCHDEVICE_DEVICE="cpu")
    assert loud.returncode == 0
    assert "runtime_shim: using cpu (forced by TORCHDEVICE_DEVICE=cpu)" in loud.stderr


# --- resolution initialises nothing, takes no lock, compiles -------------------------

def test_resolution_does_not_initialise_cuda(simulate):
    forbidden = {name: mock.Mock(side_effect=AssertionError(f"{name} initialises CUDA"))
                 for name in ("torch.cuda.init", "torch.cuda._lazy_init", "torch.cuda.current_device",
                              "torch.cuda.set_device", "torch.cuda.synchronize")}
    forbidden["torch.cuda.is_available"] = mock.Mock(side_effect=AssertionError("poisons fork"))
    with simulate("cuda", **forbidden) as mocks:
        with mock.patch("torch.empty", side_effect=AssertionError("tensor creation")), \
                mock.patch("torch.tensor", side_effect=AssertionError("tensor creation")):
            assert runtime_shim.device() == torch.device("cuda")
            assert runtime_shim.device_type("cuda:1") == "cuda"
            assert runtime_shim.accelerator_type() == "cuda"
            assert runtime_shim.device_count() == 2
        assert mocks["torch.cuda.device_count"].call_count >= 1


def test_resolution_takes_no_lock_and_keeps_the_first_answer(monkeypatch):
    import ast
    tree = ast.parse((REPO / "runtime_shim" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.With, ast.AsyncWith))
                and any("lock" in ast.unparse(i.context_expr).lower() for i in n.items)]
    first = runtime_shim._resolve()
    assert runtime_shim._resolve() is first  # a racing second resolution keeps the first object


def _compiled_function():
    def f(x):
        y = runtime_shim.to_device(x) * 2
        if runtime_shim.is_available():
            y = y + 1
        if runtime_shim.device_type() == "cpu" and runtime_shim.accelerator_type() is None:
            y = y + 3
        return y.to(runtime_shim.device())
    return f


def test_ported_calls_compile_with_fullgraph():
    compile_ok = hasattr(torch, "compile") and torch._dynamo.is_dynamo_supported()
    if not compile_ok:
        pytest.skip("torch.compile is not usable with this Python/torch")
    f = _compiled_function()
    x = torch.arange(3.0)
    eager = f(x)
    torch._dynamo.reset()
    runtime_shim._reset()  # the first shim call (resolution) happens inside the trace
    compiled = torch.compile(f, fullgraph=True)
    assert torch.equal(compiled(x), eager)
    assert runtime_shim._S is not None and runtime_shim._S.type == "cpu"
    assert torch.equal(compiled(x), eager)
