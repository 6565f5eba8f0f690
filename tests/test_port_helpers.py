"""The per-target helpers of rules/base.py (issue 11): statement guards, the device chooser, quotes in f-strings."""

from __future__ import annotations

import ast

import pytest

from torchdevice_migrate.rules.device_comparisons import DeviceComparisons
from torchdevice_migrate.rules.device_strings import DeviceStrings
from torchdevice_migrate.rules.registry_renames import RegistryRenames
from torchdevice_migrate.transform import Options, migrate_source

GUARD = "if torch.accelerator.is_available():"


def run(code: str, rules, target: str = "torch"):
    result = migrate_source(code.encode(), options=Options(rules=list(rules), target=target), prefilter=False)
    return result.new.decode(), sorted(f.code for f in result.findings)


def test_a_statement_is_guarded_and_a_value_is_reported():
    out, codes = run("import torch\ntorch.cuda.synchronize()\nn = torch.cuda.memory_allocated()\n", [RegistryRenames])
    assert f"{GUARD}\n    torch.accelerator.synchronize()\n" in out
    assert "n = torch.accelerator.memory_allocated()\n" in out
    assert codes.count("TDM115") == 1  # the value only


@pytest.mark.parametrize("code", [
    "import torch\nif x: torch.cuda.synchronize()\n",          # a one-line suite: no line of its own
    "import torch\ntorch.cuda.synchronize(); y = 1\n",          # two statements on the line
    "import torch\nz = [torch.cuda.synchronize()]\n",           # part of an expression
])
def test_only_a_whole_statement_line_is_guarded(code):
    out, codes = run(code, [RegistryRenames])
    assert GUARD not in out
    assert "TDM115" in codes
    compile(out, "<port>", "exec")


def test_no_guard_inside_an_availability_test_or_its_negated_else():
    code = ("import torch\nif torch.cuda.is_available() and fast:\n    torch.cuda.empty_cache()\n"
            "if not torch.cuda.is_available():\n    pass\nelse:\n    torch.cuda.empty_cache()\n"
            "if not torch.cuda.is_available():\n    torch.cuda.empty_cache()\n")
    out, codes = run(code, [RegistryRenames])
    assert out.count(GUARD) == 1  # only the last one, where the test says no accelerator
    assert "TDM115" not in codes


def test_adjacent_guards_merge_but_not_across_a_comment_or_blank_line():
    code = ("import torch\ndef f():\n    torch.cuda.manual_seed(0)\n    torch.cuda.manual_seed_all(0)\n"
            "    # keep\n    torch.cuda.synchronize()\n\n    torch.cuda.empty_cache()\n")
    out, _ = run(code, [RegistryRenames])
    assert out.count(GUARD) == 3
    assert (f"    {GUARD}\n        torch.get_device_module().manual_seed(0)\n"
            "        torch.get_device_module().manual_seed_all(0)\n    # keep\n") in out


def test_torch_spellings_follow_the_files_torch_alias():
    out, _ = run("import torch as th\nth.cuda.synchronize()\nx = th.cuda.Event()\n", [RegistryRenames])
    assert "if th.accelerator.is_available():\n    th.accelerator.synchronize()\n" in out
    assert "x = th.Event()\n" in out
    assert "import torch\n" not in out


def test_keywords_to_a_positional_only_torch_accelerator_function_are_left_and_reported():
    out, codes = run("import torch\ntorch.cuda.synchronize(device=0)\n", [RegistryRenames])
    assert out == "import torch\ntorch.cuda.synchronize(device=0)\n"
    assert codes == ["TDM307"]


@pytest.mark.parametrize("chooser,ported", [
    ("'cuda' if torch.cuda.is_available() else 'cpu'", True),
    ("'cpu' if not torch.cuda.is_available() else 'cuda'", True),
    ("'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'", True),
    ("'mps' if torch.backends.mps.is_available() else 'cuda' if torch.cuda.is_available() else 'cpu'", True),
    ("'cuda' if torch.cuda.is_available() else 'xpu' if torch.xpu.is_available() else 'cpu'", True),
    # not a chooser that always names the available device:
    ("'cuda' if torch.cuda.is_available() else 'mps'", False),                      # no CPU fallback
    ("'mps' if torch.cuda.is_available() else 'cpu'", False),                       # names the wrong device
    ("'cuda' if use_gpu else 'cpu'", False),                                        # a flag, not availability
    ("'cuda:1' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'", False),
])
def test_the_device_chooser_is_one_expression(chooser, ported):
    for target, one in (("shim", "runtime_shim.device_string()"), ("torch", "= DEVICE.type\n")):
        out, _ = run(f"import torch\ndevice = {chooser}\n", [DeviceStrings], target)
        assert (one in out) == ported, (target, out)


def test_comparisons_inside_an_f_string_compile_before_python_3_12():
    code = "print(f\"{x.device.type == 'cuda'} {'cuda' in d} {x.device.type != 'cuda'}\")\n"
    out, _ = run(code, [DeviceComparisons])
    tree = ast.parse(out)  # this Python; the quotes must also differ from the f-string's for older ones
    assert tree
    inner = out[out.index('f"') + 2:out.rindex('"')]
    assert '"' not in inner, inner


def test_the_shim_target_never_writes_a_guard_or_tdm115():
    code = "import torch\ntorch.cuda.synchronize()\nn = torch.cuda.memory_allocated()\n"
    out, codes = run(code, [RegistryRenames], "shim")
    assert GUARD not in out and "TDM115" not in codes and "TDM307" not in codes


def test_a_value_that_runs_only_with_an_accelerator_is_not_listed_cpu_unsafe():
    code = ("import torch\nbf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()\n"
            "name = torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'\n"
            "cpu = not torch.cuda.is_available() or torch.cuda.memory_allocated() == 0\n"
            "used = torch.cuda.memory_allocated()\n")
    out, codes = run(code, [RegistryRenames])
    assert "bf16 = torch.accelerator.is_available() and torch.get_device_module().is_bf16_supported()\n" in out
    assert codes.count("TDM115") == 1  # only the last line, which runs everywhere


FIXTURES = sorted(p for p in (__import__("pathlib").Path(__file__).parent.parent / "fixtures").rglob("*.py")
                  if ".expected" not in p.name)


def test_every_fixture_ports_to_torch_alone_and_once():
    """--target torch over every fixture input: no shim import, and a second run changes nothing."""
    import re

    problems = []
    for path in FIXTURES:
        source = path.read_bytes()
        first = migrate_source(source, str(path), Options(target="torch")).new
        if b"runtime_shim" not in source and re.search(rb"^\s*(import|from)\s+\S*runtime_shim", first, re.M):
            problems.append(f"{path.name}: imports the shim")
        if migrate_source(first, str(path), Options(target="torch")).new != first:
            problems.append(f"{path.name}: a second run changes it")
    assert len(FIXTURES) > 100
    assert not problems, problems
