"""The target table (torchdevice_migrate/targets.py): complete, resolvable in torch, and honest about CPU.

These tests import torch (the installed CPU build) to check the table; the codemod itself never does.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import libcst as cst
import pytest

from torchdevice_migrate import docs_gen, targets
from torchdevice_migrate.registry import Status, entries
from torchdevice_migrate.rules.base import RuleContext, resolve_scopes

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parent.parent
REWRITTEN = [a for a in entries() if a.status is Status.REWRITTEN]
TORCH_CELLS = {a.name: targets.replacement_for(a.name, "torch") for a in REWRITTEN if a.name not in targets.missing()}
DEVICE = eval(targets.DEVICE_VALUE, {"torch": torch})  # noqa: S307 - our own constant


def test_every_rewritten_entry_has_both_columns():
    assert REWRITTEN
    assert not targets.missing(), "add a torch-target spelling to targets.py for each of these"
    for api in REWRITTEN:
        shim = targets.replacement_for(api.name, "shim")
        assert shim.text == api.replacement and shim.cpu_safe
        sp = targets.replacement_for(api.name, "torch")
        assert "runtime_shim" not in sp.text, api.name  # the torch target needs torch alone
        assert sp.kept or sp.since, api.name


def test_unknown_target_and_non_rewritten_entries_raise():
    with pytest.raises(KeyError):
        targets.replacement_for("torch.cuda.synchronize", "jax")
    with pytest.raises(KeyError):
        targets.replacement_for("torch.cuda.graphs", "torch")  # unsupported, not rewritten


def test_variants_are_looked_up_per_context():
    guard = targets.replacement_for("torch.cuda.is_available", "torch", "cuda_only_guard")
    assert guard.text == "torch.cuda.is_available" and guard.cpu_safe
    assert targets.replacement_for("torch.cuda.is_available", "torch", "requirement").kept
    assert targets.replacement_for("torch.cuda.is_available", "torch").text == "torch.accelerator.is_available"
    with pytest.raises(KeyError):
        targets.replacement_for("torch.cuda.is_available", "torch", "nonsense")
    workers = targets.replacement_for("torch.cuda.device_count", "torch", "worker_count")
    if not torch.accelerator.is_available():
        assert eval(workers.text, {"torch": torch}) == 1  # noqa: S307 - the work runs once on CPU
    string = targets.replacement_for("literal:'cuda'", "torch", "string")
    assert isinstance(DEVICE.type, str) and f"{DEVICE.type}:0" and "{device_type}" in string.text
    for (name, _variant), sp in targets._VARIANTS.items():
        assert name in TORCH_CELLS and "runtime_shim" not in sp.text
        if sp.is_rename:
            _resolve(sp.text)
            assert _runs(lambda sp=sp: _resolve(sp.text)()) == sp.cpu_safe


def test_since_values_are_well_formed_and_sourced():
    for name, sp in TORCH_CELLS.items():
        if sp.kept:
            continue
        assert re.fullmatch(r"\d+\.\d+", sp.since), name
        assert sp.since in targets.SOURCES or sp.since == "2.0", (name, sp.since)
        if "{device" in sp.text:
            assert targets._version(sp.since) >= targets._version(targets.DEVICE_SINCE), name
    assert targets.minimum_torch() == max((s.since for s in TORCH_CELLS.values() if s.since), key=targets._version)


def _resolve(dotted: str):
    """``torch.a.b`` resolved in the installed torch; ``torch.get_device_module().x`` on CUDA's module
    (the target is exact on CUDA, so the function must exist there)."""
    dotted = dotted.replace("torch.get_device_module().", "torch.cuda.")
    obj = torch
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_every_torch_spelling_resolves_in_the_installed_torch():
    checked = 0
    for name, sp in TORCH_CELLS.items():
        if sp.is_rename:
            assert sp.text.startswith("torch."), name
            _resolve(sp.text)
            checked += 1
        for dotted in re.findall(r"torch(?:\.\w+|\.get_device_module\(\))+", sp.text):
            if dotted.endswith("get_device_module()"):
                dotted = "torch.get_device_module"
            _resolve(dotted)
            checked += 1
    assert torch.get_device_module  # used by the RNG and property spellings
    assert checked > 60


class _Module(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))


# One probe per torch spelling: what the spelling does on this machine, with the site's operands
# filled in. A new spelling without a probe fails test_probes_cover_the_table.
_X = torch.zeros(2)
PROBES = {
    "torch.accelerator.is_available": lambda: torch.accelerator.is_available(),
    "torch.accelerator.device_count": lambda: torch.accelerator.device_count(),
    "torch.accelerator.current_device_index": lambda: torch.accelerator.current_device_index(),
    "torch.accelerator.set_device_index": lambda: torch.accelerator.set_device_index(0),
    "torch.accelerator.device_index": lambda: torch.accelerator.device_index(0).__enter__(),
    "torch.Stream": lambda: torch.Stream(),
    "torch.get_device_module().stream": lambda: torch.get_device_module().stream(torch.Stream()).__enter__(),
    "torch.accelerator.current_stream": lambda: torch.accelerator.current_stream(),
    "torch.get_device_module().default_stream": lambda: torch.get_device_module().default_stream(),
    "torch.accelerator.set_stream": lambda: torch.accelerator.set_stream(torch.Stream()),
    "torch.accelerator.synchronize": lambda: torch.accelerator.synchronize(),
    "torch.Event": lambda: torch.Event(enable_timing=True).record(),
    "torch.OutOfMemoryError": lambda: issubclass(torch.OutOfMemoryError, RuntimeError),
    "torch.get_device_module().ipc_collect": lambda: torch.get_device_module().ipc_collect(),
    "torch.get_device_module().mem_get_info": lambda: torch.get_device_module().mem_get_info(),
    "torch.get_device_module().memory_summary": lambda: torch.get_device_module().memory_summary(),
    "torch.accelerator.reset_peak_memory_stats": lambda: torch.accelerator.reset_peak_memory_stats(),
    "torch.accelerator.reset_accumulated_memory_stats": lambda: torch.accelerator.reset_accumulated_memory_stats(),
    "torch.accelerator.empty_cache": lambda: torch.accelerator.empty_cache(),
    **{f"torch.accelerator.{n}": (lambda n=n: getattr(torch.accelerator, n)())
       for n in ("memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved", "memory_stats")},
    **{f"torch.get_device_module().{n}": (lambda n=n: getattr(torch.get_device_module(), n)(0))
       for n in ("manual_seed", "manual_seed_all")},
    **{f"torch.get_device_module().{n}": (lambda n=n: getattr(torch.get_device_module(), n)())
       for n in ("seed", "seed_all", "initial_seed", "get_rng_state", "get_rng_state_all", "get_device_name",
                 "get_device_properties", "get_device_capability", "is_bf16_supported")},
    "torch.get_device_module().set_rng_state": lambda: torch.get_device_module().set_rng_state(torch.ByteTensor(8)),
    "torch.get_device_module().set_rng_state_all": lambda: torch.get_device_module().set_rng_state_all([]),
    # templates, with {device} = DEVICE
    "torch.autocast({device_type}, ...)": lambda: torch.autocast(DEVICE.type).__enter__(),
    "torch.amp.GradScaler({device_type}, ...)": lambda: torch.amp.GradScaler(DEVICE.type),
    "torch.amp.custom_fwd(device_type={device_type}, ...)": lambda: torch.amp.custom_fwd(device_type=DEVICE.type)(abs),
    "torch.amp.custom_bwd(device_type={device_type})": lambda: torch.amp.custom_bwd(device_type=DEVICE.type)(abs),
    "torch.distributed.get_default_backend_for_device({device})":
        lambda: torch.distributed.get_default_backend_for_device(DEVICE),
    "x.to({device}); x.cuda(i) -> x.to(torch.device({device_type}, i))":
        lambda: (_X.to(DEVICE), _X.to(torch.device(DEVICE.type, 0))),
    "m.to({device}); m.cuda(i) -> m.to(torch.device({device_type}, i))":
        lambda: (_Module().to(DEVICE), _Module().to(torch.device(DEVICE.type, 0))),
    "{device} for 'cuda'; torch.device({device_type}, i) for 'cuda:i'":
        lambda: (torch.zeros(1, device=DEVICE), torch.zeros(1, device=torch.device(DEVICE.type, 0))),
    "{device} where a device is meant; {device_type} where a device type is meant":
        lambda: (torch.zeros(1, device=DEVICE), torch.autocast(DEVICE.type)),
    'torch.load(..., map_location=None if {device_type} == "cuda" else {device})': lambda: _load_roundtrip(),
    'x.device.type == {device_type} != "cpu"': lambda: _X.device.type == DEVICE.type != "cpu",
    "x.pin_memory() if torch.accelerator.is_available() else x":
        lambda: _X.pin_memory() if torch.accelerator.is_available() else _X,
    "DataLoader(..., pin_memory=torch.accelerator.is_available())":
        lambda: list(torch.utils.data.DataLoader([_X], pin_memory=torch.accelerator.is_available())),
    "x.record_stream(s)": lambda: _X.record_stream(torch.Stream()),
    "x.device where x.get_device() is used as a device": lambda: torch.zeros(1, device=_X.device),
    "torch.nn.attention.sdpa_kernel([SDPBackend...])": lambda: _sdpa(),
    "torch.set_default_dtype(D) plus torch.set_default_device({device}) for a CUDA type (a statement only)":
        lambda: _default_device(),
    "device_ids=D if torch.accelerator.is_available() else None (output_device likewise)":
        lambda: [0] if torch.accelerator.is_available() else None,
}
for _dtype in ("bfloat16", "bool", "float16", "float32", "float64", "int16", "int32", "int64", "int8", "uint8"):
    PROBES[f"torch.tensor(..., dtype=torch.{_dtype}, device={{device}}) (sizes: torch.empty)"] = (
        lambda d=_dtype: (torch.tensor([1], dtype=getattr(torch, d), device=DEVICE),
                          torch.empty(2, dtype=getattr(torch, d), device=DEVICE)))


def _load_roundtrip():
    import io

    buf = io.BytesIO()
    torch.save(_X, buf)
    buf.seek(0)
    return torch.load(buf, map_location=None if DEVICE.type == "cuda" else DEVICE)


def _sdpa():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.zeros(1, 1, 2, 2)
    with sdpa_kernel([SDPBackend.MATH]):
        return torch.nn.functional.scaled_dot_product_attention(q, q, q)


def _default_device():
    dtype, device = torch.get_default_dtype(), torch.get_default_device()
    try:
        torch.set_default_dtype(torch.float16)
        torch.set_default_device(DEVICE)
        return torch.zeros(1)
    finally:
        torch.set_default_dtype(dtype)
        torch.set_default_device(device)


def _runs(probe) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            probe()
        except Exception:
            return False
    return True


def test_probes_cover_the_table():
    missing = sorted({sp.text for sp in TORCH_CELLS.values() if sp.text} - set(PROBES))
    assert not missing, f"add a probe for: {missing}"


@pytest.mark.skipif(torch.accelerator.is_available(), reason="measures a machine without an accelerator")
def test_cpu_safe_flags_match_this_cpu_torch():
    wrong = {text: sp.cpu_safe for text, sp in {s.text: s for s in TORCH_CELLS.values() if s.text}.items()
             if _runs(PROBES[text]) != sp.cpu_safe}
    assert not wrong, f"cpu_safe disagrees with what the installed torch does: {wrong}"


@pytest.mark.skipif(torch.accelerator.is_available(), reason="measures a machine without an accelerator")
def test_guards_skip_the_call_on_cpu():
    guarded = [sp for sp in TORCH_CELLS.values() if sp.guard]
    assert guarded
    for sp in guarded:
        assert not sp.cpu_safe and sp.guard == targets.GUARD
        calls = []
        exec(f"{sp.guard}\n    calls.append(1)\n", {"torch": torch, "calls": calls})  # noqa: S102
        assert calls == []  # the CPU-unsafe statement under it does not run here


def test_the_device_value_is_the_cpu_here_and_checks_availability():
    if not torch.accelerator.is_available():
        assert DEVICE == torch.device("cpu")
        assert torch.zeros(1, device=DEVICE).device.type == "cpu"
    # Without check_available, current_accelerator answers the compile-time accelerator (cuda on a CUDA
    # build without a GPU): the reason the device value passes check_available=True.
    assert "compilation time" in (torch.accelerator.current_accelerator.__doc__ or "")
    assert "check_available=True" in targets.DEVICE_VALUE


# ---- device_value / insert_binding on small inputs ---------------------------------------------

def _ctx(code: str) -> RuleContext:
    module = cst.parse_module(code)
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    return RuleContext(wrapper, "<t>", "runtime_shim", code.splitlines(), scopes=resolve_scopes(wrapper.module),
                       target="torch")


def _find(ctx: RuleContext, text: str) -> cst.CSTNode:
    """The first SimpleString node whose code is ``text``."""
    found = []

    class V(cst.CSTVisitor):
        def visit_SimpleString(self, node):
            if node.value == text and not found:
                found.append(node)

    ctx.module.visit(V())
    return found[0]


def _apply(ctx: RuleContext) -> str:
    binding = targets.pending_binding(ctx)
    return targets.insert_binding(ctx.module, binding).code if binding else ctx.module.code


def test_device_value_schedules_one_binding_after_the_imports():
    code = '"""Doc."""\nimport os\nimport torch\n\n\ndef f(x):\n    return x.to("cuda")\n\n\ndef g(y):\n    return y.to("cuda:1")\n'
    ctx = _ctx(code)
    assert ctx.target == "torch"
    first = targets.device_value(ctx, _find(ctx, '"cuda"'))
    second = targets.device_value(ctx, _find(ctx, '"cuda:1"'))
    assert isinstance(first, cst.Name) and first.value == "device" and second.value == "device"
    out = _apply(ctx)
    assert out.count("current_accelerator(check_available=True)") == 1
    assert out.index("import torch") < out.index("device = torch.accelerator") < out.index("def f")
    compile(out, "<t>", "exec")
    assert ("torch", None) not in ctx.imports  # torch was imported already


def test_device_value_uses_the_torch_alias_and_adds_the_import_when_missing():
    ctx = _ctx("import torch as th\nx = th.zeros(1, device='cuda')\n")
    targets.device_value(ctx, _find(ctx, "'cuda'"))
    assert "device = th.accelerator.current_accelerator(check_available=True) or th.device(\"cpu\")" in _apply(ctx)
    ctx = _ctx("from torch import nn\nm = nn.Linear(1, 1).to('cuda')\n")
    targets.device_value(ctx, _find(ctx, "'cuda'"))
    assert ("torch", None) in ctx.imports


def test_device_value_avoids_names_the_file_uses():
    code = "import torch\n\ndef f(x, device=None):\n    return x.to('cuda')\n"
    ctx = _ctx(code)
    name = targets.device_value(ctx, _find(ctx, "'cuda'"))
    assert name.value == "DEVICE"


def test_device_value_reuses_an_existing_module_device():
    code = ('import torch\ndevice = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n\n'
            "def f(x):\n    return x.to('cuda')\n")
    ctx = _ctx(code)
    assert targets.device_value(ctx, _find(ctx, "'cuda'")).value == "device"
    assert targets.pending_binding(ctx) is None and _apply(ctx) == code


def test_device_value_does_not_reuse_a_shadowed_or_later_or_rebound_device():
    shadowed = ('import torch\ndevice = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n\n'
                "def f(x, device):\n    return x.to('cuda')\n")
    later = ("import torch\nx = torch.zeros(1).to('cuda')\n"
             'device = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n')
    rebound = ('import torch\ndevice = torch.device("cuda" if torch.cuda.is_available() else "cpu")\n'
               "device = 'cpu'\nx = torch.zeros(1).to('cuda')\n")
    string = ('import torch\ndevice = "cuda" if torch.cuda.is_available() else "cpu"\n'
              "def f(x):\n    return x.to('cuda')\n")
    for code in (shadowed, later, rebound, string):
        ctx = _ctx(code)
        targets.device_value(ctx, _find(ctx, "'cuda'"))
        assert targets.pending_binding(ctx) is not None, code


def test_insert_binding_goes_after_a_late_torch_import():
    code = 'import sys\nsys.path.insert(0, "src")\nimport torch\nmodel = torch.nn.Linear(1, 1).cuda()\n'
    ctx = _ctx(code)
    out = targets.insert_binding(ctx.module, targets.DeviceBinding("device")).code
    assert out.index("import torch") < out.index("device = torch.accelerator") < out.index("model =")
    compile(out, "<t>", "exec")


def test_insert_binding_is_idempotent():
    ctx = _ctx("import torch\nx = 1\n")
    binding = targets.DeviceBinding("device")
    once = targets.insert_binding(ctx.module, binding)
    assert targets.insert_binding(once, binding).code == once.code
    assert once.code.startswith("import torch\n\ndevice = torch.accelerator")


# ---- plumbing -----------------------------------------------------------------------------------

def test_options_default_to_the_shim_target():
    from torchdevice_migrate.transform import Options, migrate_text

    assert Options().target == "shim"
    code = "import torch\ntorch.cuda.synchronize()\n"
    assert migrate_text(code, Options()) == "import torch\nimport runtime_shim\n\nruntime_shim.synchronize()\n"
    # the torch target: torch's own spelling, guarded where it raises on a CPU-only torch
    assert migrate_text(code, Options(target="torch")) == (
        "import torch\nif torch.accelerator.is_available():\n    torch.accelerator.synchronize()\n")


def test_docs_are_up_to_date():
    for rel, text in docs_gen.outputs().items():
        if rel in (docs_gen.TARGETS_DOC, docs_gen.API_COVERAGE):
            assert (REPO / rel).read_text(encoding="utf-8") == text, f"run `{docs_gen.REGENERATE}`"


def test_config_key_and_flag_choose_the_target(tmp_path):
    from torchdevice_migrate.config import ConfigError, load_settings

    (tmp_path / "pyproject.toml").write_text('[tool.torchdevice-migrate]\ntarget = "torch"\n')
    (tmp_path / "a.py").write_text("import torch\n")
    settings = load_settings([tmp_path / "a.py"])
    assert settings.target == "torch" and settings.options().target == "torch"
    assert settings.describe()["target"] == "torch"
    assert load_settings([tmp_path / "a.py"], target="shim").target == "shim"  # the flag wins
    assert load_settings([tmp_path / "a.py"], no_config=True).target == "shim"  # the default
    with pytest.raises(ConfigError, match="not a target"):
        load_settings([tmp_path / "a.py"], target="jax")
    (tmp_path / "pyproject.toml").write_text('[tool.torchdevice-migrate]\ntarget = 3\n')
    with pytest.raises(ConfigError, match="not a target"):
        load_settings([tmp_path / "a.py"])


def test_cli_accepts_the_target_flag_and_rejects_others(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a.py").write_text("import torch\n")
    ok = subprocess.run([sys.executable, "-m", "torchdevice_migrate", "--target", "torch", "--no-config", "--check",
                         str(tmp_path / "a.py")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, "-m", "torchdevice_migrate", "--target", "jax", "--no-config", "--check",
                          str(tmp_path / "a.py")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a target" in bad.stderr
