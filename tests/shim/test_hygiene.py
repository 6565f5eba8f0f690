"""The shim's promises about itself: imports, no patching of torch, a complete API."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest
import torch

import runtime_shim

REPO = pathlib.Path(__file__).resolve().parents[2]
SHIM = REPO / "runtime_shim" / "__init__.py"
TREE = ast.parse(SHIM.read_text())
ALLOWED = set(sys.stdlib_module_names) | {"torch", "psutil"}

# public names that every backend object provides (the rest are computed by the module)
DISPATCHED = sorted(set(runtime_shim.__all__) - {
    "device", "device_string", "device_type", "accelerator_type", "is_accelerator",
    "OutOfMemoryError", "UnsupportedOnBackend", "DEVICE_PROPERTY_ATTRIBUTES", "MEMORY_STATS_KEYS"})
assert DISPATCHED == sorted(runtime_shim._PROTOCOL)


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, alias.asname, 0
        elif isinstance(node, ast.ImportFrom):
            yield node, node.module or "", None, node.level


def test_imports_only_torch_stdlib_psutil():
    found = list(_imports(TREE))
    assert found, "the parser found no imports at all"
    for node, name, asname, level in found:
        assert level == 0, f"relative import on line {node.lineno}: the shim is one flat file"
        assert name.split(".")[0] in ALLOWED, f"line {node.lineno} imports {name}"
        if name.split(".")[0] == "torch":
            assert asname is None, "torch is imported under its own name only"


def test_psutil_is_imported_lazily():
    top_level = [n for n in TREE.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not any(a.name == "psutil" for n in top_level for a in getattr(n, "names", []))
    assert any(name == "psutil" for _, name, _, _ in _imports(TREE))


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def test_no_assignment_into_torch():
    for node in ast.walk(TREE):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, (ast.Attribute, ast.Subscript)):
                    assert _root_name(sub) != "torch", f"writes into torch on line {node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("setattr", "delattr") and node.args:
            assert _root_name(node.args[0]) != "torch", f"{node.func.id}(torch...) on line {node.lineno}"


def _namespace_snapshot():
    modules = [torch, torch.cuda, torch.xpu, torch.mps, torch.backends.mps, torch.accelerator,
               torch.cuda.nvtx, torch.autograd.profiler]
    # public names only: torch keeps private lazy caches of its own (e.g. in the profiler)
    return ({(m.__name__, k): v for m in modules for k, v in vars(m).items() if not k.startswith("_")},
            dict(vars(torch.Tensor)))


@pytest.mark.parametrize("machine", ["cuda", "xpu", "mps", "cpu"])
def test_using_the_api_changes_nothing_in_torch(simulate, machine):
    with simulate(machine):
        before, tensor_before = _namespace_snapshot()
        runtime_shim.device("cuda:1")
        runtime_shim.device_count()
        runtime_shim.Event, runtime_shim.Stream
        runtime_shim.accelerator_type()
        if machine == "cpu":
            runtime_shim.memory_allocated()
            runtime_shim.manual_seed(0)
            runtime_shim.nvtx_range_push("x")
            runtime_shim.nvtx_range_pop()
        after, tensor_after = _namespace_snapshot()
    changed = [k for k, v in before.items() if after.get(k) is not v]
    assert changed == []
    assert tensor_after.keys() == tensor_before.keys()


@pytest.mark.parametrize("machine", ["cuda", "xpu", "mps", "cpu"])
def test_every_backend_provides_every_public_function(simulate, machine):
    with simulate(machine):
        runtime_shim.device()
        backend = runtime_shim._S
        missing = [name for name in DISPATCHED if not callable(getattr(backend, name, None))]
    assert backend.type == machine
    assert missing == []


def _contract_names():
    """Names the contract promises: first cells of its tables, and the torch.cuda name list."""
    contract = (REPO / "docs" / "shim-contract.md").read_text()
    names = set()
    for line in contract.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Za-z_]\w*)\(", line.split("|")[1]))
    same = contract.split("Same names and signatures as `torch.cuda`:", 1)[1].split("\n\n", 1)[0]
    names |= set(re.findall(r"`([A-Za-z_]\w*)[`(]", same))
    return names


def test_contract_names_exist():
    names = _contract_names()
    assert {"device", "device_context", "Stream", "nvtx_mark", "OutOfMemoryError"} <= names
    assert sorted(n for n in names if not hasattr(runtime_shim, n)) == []
    assert sorted(n for n in names if n not in runtime_shim.__all__) == []


def test_import_does_not_load_psutil_or_choose_a_device():
    code = ("import sys, runtime_shim; print(runtime_shim._S is None, 'psutil' in sys.modules);"
            "runtime_shim.device(); print('psutil' in sys.modules);"
            "runtime_shim.memory_allocated(); print('psutil' in sys.modules);"
            "runtime_shim.mem_get_info(); print('psutil' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False", "False", "True"]


def test_import_and_resolution_do_not_load_the_compiler():
    # torch.compiler.assume_constant_result would import torch._dynamo (~2 s) at import time
    code = ("import sys, torch; had = 'torch._dynamo' in sys.modules; import runtime_shim; "
            "runtime_shim.device(); print(had, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_public_functions_keep_their_identity_and_docstrings(simulate):
    before = {name: getattr(runtime_shim, name) for name in DISPATCHED if name not in ("Stream", "Event")}
    for machine in ("cuda", "cpu"):
        with simulate(machine):
            runtime_shim.device()
            for name, fn in before.items():
                assert getattr(runtime_shim, name) is fn, f"{name} was rebound on {machine}"
                assert fn.__doc__ and fn.__module__ == "runtime_shim", name
    assert len(before) > 40


def test_cuda_backend_binds_torch_cuda_functions(simulate):
    with simulate("cuda"):
        runtime_shim.device()
        backend = runtime_shim._S
        # the dispatcher reaches torch's own function: no added behaviour on CUDA
        assert backend.memory_allocated is torch.cuda.memory_allocated
        assert backend.current_device is torch.cuda.current_device
        assert runtime_shim.Event is torch.cuda.Event
        assert runtime_shim.memory_allocated("cuda:0") == 0  # torch.cuda's answer on a CPU build
    assert "Event" not in vars(runtime_shim)


def _classes(tree):
    return [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def test_backends_use_single_inheritance():
    for node in _classes(TREE):
        assert len(node.bases) <= 1 or node.name.startswith("_Unsupported") \
            or node.name == "_EventError", f"{node.name} has several bases"
    assert set(runtime_shim._BACKENDS) == {"cuda", "xpu", "mps", "cpu"}


def test_no_module_globals_are_rebound_at_runtime():
    for node in ast.walk(TREE):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("update", "pop", "setdefault") \
                and isinstance(node.func.value, ast.Call) \
                and getattr(node.func.value.func, "id", None) == "globals":
            pytest.fail(f"globals().{node.func.attr} on line {node.lineno}")
