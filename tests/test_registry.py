"""The registry classifies the whole CUDA surface of the installed torch, consistently.

Public names are enumerated from the installed torch: ``dir()`` of ``torch.cuda`` (and every
submodule of it that ``dir()`` shows), ``torch.cuda.amp``, ``torch.cuda.nvtx``,
``torch.backends.cuda`` and ``torch.backends.cudnn`` (a module object whose flags live on its
class), without leading underscores. Left out are only import artefacts that are not CUDA APIs:
other modules (``os``, ``torch``), objects defined outside torch (``typing.Optional``,
``functools.lru_cache``), ``from __future__ import annotations``, ``TYPE_CHECKING`` and the
``torch.Tensor`` / ``torch.types.Storage`` names that a submodule imported for its annotations.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types
import warnings

import pytest

from torchdevice_migrate import docs_gen, registry
from torchdevice_migrate.registry import API, FAMILIES, REASONS, Status
from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.rules.unsupported import Unsupported
from torchdevice_migrate.transform import TRIGGER, Options, migrate_source

from .conftest import REPO

ROOTS = ("torch.cuda", "torch.cuda.amp", "torch.cuda.nvtx", "torch.backends.cuda", "torch.backends.cudnn")
# Submodules that ``dir(torch.cuda)`` lists only once something imported them.
ALSO_IMPORT = ("torch.cuda.comm", "torch.cuda.nccl", "torch.cuda.profiler", "torch.cuda.jiterator")
# Settings that live behind ``__getattr__`` (not in any ``dir()``), so they are listed by hand.
MATMUL_FLAGS = ("allow_tf32", "allow_fp16_reduced_precision_reduction", "allow_fp16_reduced_precision_reduction_split_k",
                "allow_bf16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction_split_k",
                "allow_fp16_accumulation", "fp32_precision")
# Required entries outside the enumerated modules.
EXTRA = ("torch.Tensor.cuda", "torch.Tensor.is_cuda", "torch.Tensor.pin_memory", "torch.Tensor.record_stream",
         "torch.nn.Module.cuda", "literal:'nccl'", "literal:'cuda'", "torch.set_default_tensor_type",
         "torch.backends.cuda.sdp_kernel", "torch.nn.parallel.DistributedDataParallel",
         "torch.utils.cpp_extension.CUDAExtension", "torch.utils.cpp_extension.CppExtension",
         "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
         "torch.cuda.memory._record_memory_history", "torch.cuda.Stream.cuda_stream", "env:CUDA_VISIBLE_DEVICES",
         "literal:'*.cu'", "module:apex", "module:cupy", "module:triton", "module:flash_attn", "module:xformers",
         "module:bitsandbytes", "module:pynvml", "module:nvidia_smi", "module:pycuda")
# Not class attributes: instance attributes (absent from the class in a CPU build), a keyword argument.
INSTANCE_ATTRS = {"torch.cuda.Stream.cuda_stream", "torch.cuda.Event.cuda_event", "torch.utils.data.DataLoader.pin_memory"}
# Codes that existed before issue 4; their meaning never changes.
STABLE_CODES = {f"TDM1{n:02d}" for n in range(1, 14)} | {f"TDM2{n:02d}" for n in range(1, 12)} | {f"TDM30{n}" for n in range(1, 5)}
RULE_MODULES = REPO / "torchdevice_migrate" / "rules"


@pytest.fixture(scope="module")
def torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch

        for name in ALSO_IMPORT:
            importlib.import_module(name)
    return torch


def _public(mod) -> list:
    names = set(dir(mod))
    inner = getattr(mod, "m", None)
    if isinstance(inner, types.ModuleType):  # torch.backends.cudnn: a PropModule over the real module
        names |= set(dir(inner)) | set(vars(type(mod)))
        names.discard("m")
    return sorted(n for n in names if not n.startswith("_"))


def _artefact(torch, name: str, obj) -> bool:
    if name == "TYPE_CHECKING" or type(obj).__module__ == "__future__":
        return True
    if obj is torch.Tensor or getattr(obj, "__module__", None) == "torch.types":
        return True
    module = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or callable(obj) or type(obj).__module__ == "typing") and isinstance(module, str):
        return not module.startswith("torch")
    return False


def public_names(torch) -> set:
    out, seen, todo = set(), set(), list(ROOTS)
    while todo:
        modname = todo.pop()
        if modname in seen:
            continue
        seen.add(modname)
        mod = importlib.import_module(modname) if modname != "torch.backends.cudnn" else torch.backends.cudnn
        for n in _public(mod):
            try:
                obj = getattr(mod, n)
            except Exception:  # a flag that raises without CUDA is still a public name
                obj = None
            qual = f"{modname}.{n}"
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith(modname + "."):  # a submodule (not os, torch, ...)
                    out.add(qual)
                    todo.append(qual)
                continue
            if not _artefact(torch, n, obj):
                out.add(qual)
    return out


# ---- coverage ------------------------------------------------------------------------------------

def test_every_public_cuda_name_is_classified(torch):
    names = public_names(torch)
    assert len(names) > 250, "enumeration broke: too few public names"
    missing = sorted(n for n in names if n not in API)
    assert not missing, f"{len(missing)} public CUDA names the registry does not classify: {missing}"


def test_matmul_flags_exist_and_are_classified(torch):
    for flag in MATMUL_FLAGS:
        getattr(torch.backends.cuda.matmul, flag)  # raises AttributeError for a name torch does not have
        assert f"torch.backends.cuda.matmul.{flag}" in API
        assert API[f"torch.backends.cuda.matmul.{flag}"].status is Status.HARMLESS


@pytest.mark.parametrize("name", EXTRA)
def test_required_entries(name):
    assert name in API


def test_legacy_tensor_types_rewritten(torch):
    legacy = [n for n in dir(torch.cuda) if n.endswith("Tensor") and not n.startswith("_")]
    assert len(legacy) >= 9
    for n in legacy:
        api = API[f"torch.cuda.{n}"]
        assert (api.status, api.rule, api.code) == (Status.REWRITTEN, "legacy_tensors", "TDM109")


def _resolve(name: str):
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def test_torch_entries_name_real_objects(torch):
    """No typos: every ``torch.*`` entry resolves in the installed torch (a CUDA-only failure is fine)."""
    bad = []
    for api in API.values():
        if not api.name.startswith("torch.") or api.name in INSTANCE_ATTRS:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _resolve(api.name)
        except (AttributeError, ImportError) as e:
            bad.append(f"{api.name}: {e}")
        except Exception:  # e.g. "Torch not compiled with CUDA enabled": the name exists
            pass
    assert not bad, bad


# ---- consistency -------------------------------------------------------------------------------

def test_no_duplicates():
    names = [a.name for a in registry._ENTRIES]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes
    assert len(API) == len(names)


def test_rewritten_entries_name_an_existing_rule_module():
    missing = sorted({a.rule for a in API.values() if a.status is Status.REWRITTEN
                      and not (RULE_MODULES / f"{a.rule}.py").exists()})
    assert not missing, f"REWRITTEN entries name rule modules that do not exist in torchdevice_migrate/rules: {missing}"


def test_rename_targets_exist_in_runtime_shim():
    import runtime_shim

    renames = [a for a in API.values() if a.rename]
    assert renames
    for api in renames:
        assert api.rule == "registry_renames", api
        if api.replacement.startswith("torch."):  # torch's own name, exact everywhere (both targets)
            from functools import reduce

            import torch

            assert reduce(getattr, api.replacement.split(".")[1:], torch) is not None, api
            assert api.since, f"{api.name}: a rename to torch's own name states the torch version it needs"
            continue
        assert api.shim_name, f"{api.name}: a rename must target runtime_shim.<name> (or torch's own name)"
        assert hasattr(runtime_shim, api.shim_name), f"{api.name} -> runtime_shim.{api.shim_name} does not exist"


def test_statuses_carry_what_they_promise():
    for api in API.values():
        assert api.family in FAMILIES, api
        if api.code:
            assert api.code in REASONS, api
        if api.status is Status.REWRITTEN:
            assert api.replacement and api.rule and api.code.startswith("TDM1"), api
        elif api.status is Status.HARMLESS:
            assert api.reason and not api.code and not api.replacement, api
        else:
            assert api.code.startswith("TDM2") and api.reason and api.hint, api
            assert "\n" not in api.reason, api


def test_reason_codes_are_stable_and_documented():
    assert STABLE_CODES <= set(REASONS)
    for code, reason in REASONS.items():
        assert code == reason.code and len(code) == 6 and code.startswith("TDM")
        assert reason.title and reason.description and reason.hint
        assert reason.doc_anchor == f"docs/reason-codes.md#{code.lower()}"
    used = {a.code for a in API.values() if a.status is Status.UNSUPPORTED}
    # Reported by rules at a use site rather than for a registry entry: TDM213 (a device property
    # the shim does not answer, rules/registry_renames.py), TDM214 (CUDA in TorchScript, rules/base.py).
    used |= {"TDM213", "TDM214"}
    assert {c for c in REASONS if c.startswith("TDM2")} == used


def test_examples_of_decisions():
    assert API["torch.backends.cudnn.benchmark"].status is Status.HARMLESS
    assert API["torch.backends.cuda.matmul.allow_tf32"].status is Status.HARMLESS
    assert API["torch.cuda.nvtx.range_push"].shim_name == "nvtx_range_push"
    assert API["torch.cuda.amp.autocast"].rule == "amp"
    assert API["torch.backends.cuda.sdp_kernel"].since == "2.3"
    assert API["torch.cuda.make_graphed_callables"].code == "TDM201"
    assert API["torch.cuda.graphs.make_graphed_callables"].code == "TDM201"
    assert API["torch.utils.cpp_extension.CUDAExtension"].code == "TDM202"
    assert API["torch.utils.cpp_extension.CppExtension"].status is Status.HARMLESS
    assert API["torch.cuda.ExternalStream"].code == "TDM205"
    assert API["torch.cuda.ipc_collect"].shim_name == "ipc_collect"  # housekeeping: a no-op off CUDA
    assert API["torch.cuda.Event.from_ipc_handle"].code == "TDM206"
    assert API["torch.cuda.set_per_process_memory_fraction"].code == "TDM207"
    assert API["torch.cuda.utilization"].code == "TDM208"
    assert API["torch.cuda.jiterator"].code == "TDM209"
    assert API["torch.cuda.current_blas_handle"].code == "TDM204"
    assert API["torch.cuda.get_arch_list"].code == "TDM211"
    assert registry.module_entry("apex.optimizers").name == "module:apex"
    assert registry.module_entry("numba") is None and registry.module_entry("numba.cuda").code == "TDM210"


def test_codemod_modules_never_import_torch(cli_env):
    code = ("import sys\nimport torchdevice_migrate.registry, torchdevice_migrate.docs_gen\n"
            "import torchdevice_migrate.rules.unsupported\nassert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# ---- the report-only rule ----------------------------------------------------------------------

def _options() -> Options:
    rules = list(ALL_RULES)
    if Unsupported not in rules:
        rules.append(Unsupported)
    return Options(rules=rules)


@pytest.mark.parametrize("code", Unsupported.VALID)
def test_unsupported_valid(code):
    result = migrate_source(code.encode(), options=_options())
    assert result.new == code.encode()
    assert [f.code for f in result.findings] == []


@pytest.mark.parametrize("code,codes", Unsupported.REPORTS)
def test_unsupported_reports(code, codes):
    result = migrate_source(code.encode(), options=_options())
    assert result.new == code.encode(), "a report-only rule must never rewrite"
    assert [f.code for f in result.findings] == codes
    for f in result.findings:
        assert f.status.value == "unsupported" and f.hint and f.message


def test_unsupported_rule_is_report_only():
    assert not Unsupported.INVALID and Unsupported.REPORTS and Unsupported.VALID


@pytest.mark.parametrize("name", sorted(n[len("module:"):] for n in API if n.startswith("module:")))
def test_prefilter_lets_reported_imports_through(name):
    """transform.TRIGGER skips files that mention no CUDA word; an import it misses is never reported."""
    assert TRIGGER.search(f"import {name}\n".encode()), f"transform.TRIGGER does not match {name!r}"


def test_prefilter_lets_cuda_sources_through():
    assert TRIGGER.search(b"Extension('k', ['k.cpp', 'k.cu'])\n")


# ---- generated docs ----------------------------------------------------------------------------

@pytest.mark.parametrize("rel", [docs_gen.API_COVERAGE, docs_gen.REASON_CODES, docs_gen.RULES_DOC], ids=str)
def test_generated_docs_are_up_to_date(rel):
    want = docs_gen.outputs()[rel]
    path = REPO / rel
    assert path.exists(), f"{rel} is missing; run `{docs_gen.REGENERATE}`"
    assert path.read_text(encoding="utf-8") == want, f"{rel} is out of date with registry.py; run `{docs_gen.REGENERATE}`"


def test_reason_code_anchors_exist():
    text = (REPO / docs_gen.REASON_CODES).read_text(encoding="utf-8")
    for reason in REASONS.values():
        anchor = reason.doc_anchor.split("#", 1)[1]
        assert f'<a id="{anchor}"></a>' in text
