"""The byte pre-filter (``trigger.py``): no registry entry can hide behind it, and it is not looser
than it needs to be. A file it does not match is never parsed, so a miss here is a silent miss in a
real run: every entry gets a synthesised use of each kind the rules resolve, and the reference path
(all rules, no pre-filter) must find nothing in any variant the trigger does not match.
"""

from __future__ import annotations

import re

import pytest

from torchdevice_migrate.project_index import FileInfo, ProjectIndex
from torchdevice_migrate.registry import API
from torchdevice_migrate.rules.device_strings import RANK_NAME_RE
from torchdevice_migrate.transform import migrate_source
from torchdevice_migrate.trigger import NEEDS_CUDA_EVIDENCE, PROJECT_EVIDENCE, TRIGGER, is_candidate


def _class_attribute(name: str) -> bool:
    parts = name.split(".")
    return len(parts) > 2 and any(p[:1].isupper() for p in parts[1:-1])


def uses(name: str) -> list:
    """Minimal sources that use registry entry ``name``, one per way of spelling it."""
    if name.startswith("module:"):
        mod = name[len("module:"):]
        out = [f"import {mod}\n", f"import {mod} as m\n", f"import os, {mod}\n", f"import {mod}.sub\n",
               f"from {mod} import x\n", f"from {mod}.sub import x\n", f"if a:\n    import {mod}\n",
               f"import os as o, \\\n    {mod}\n"]
        parent, _, last = mod.rpartition(".")
        if parent:
            out += [f"from {parent} import {last}\n", f"from {parent} import (\n    jit,\n    {last} as c,\n)\n"]
        return out
    if name.startswith("env:"):
        var = name[len("env:"):]
        return [f"import os\nos.environ['{var}'] = '0'\n", f"import os\nos.environ.setdefault(\"{var}\", '1')\n",
                f"env = {{'{var}': '1'}}\n"]
    if name.startswith("literal:"):
        value = name[len("literal:"):].strip("'\"")
        if value.startswith("*."):
            ext = value[1:]
            return [f"srcs = ['k{ext}']\n", f'srcs = ["dir/k{ext}h"]\n', f"s = '''k{ext}'''\n"]
        return [f"d = '{value}'\n", f'd = "{value}:0"\n', f"d = f'{value}:{{rank}}'\n", f"x.to('{value}')\n",
                f"if x == '{value}':\n    pass\n", f"b = '{value}' if c else 'cpu'\n"]
    parts = name.split(".")
    if _class_attribute(name):
        attr = parts[-1]
        return [f"y = x.{attr}\n", f"y = x.{attr}()\n", f"y = x.{attr}(non_blocking=True)\n", f"x.{attr} = 1\n"]
    module, last = ".".join(parts[:-1]), parts[-1]
    rest = ".".join(parts[1:])
    return [f"import torch\nv = {name}\n", f"import torch\n{name}()\n", f"import torch\n{name}(0)\n",
            f"import torch as th\nth.{rest}(x)\n", f"from {module} import {last}\n{last}()\n",
            f"from {module} import {last} as _z\n_z(x)\n", f"import {module} as mod\nmod.{last}(x)\n",
            f"import torch\n{name} = 0\n", f"from {module} import *\n{last}()\n"]


CASES = [(name, src) for name in sorted(API) for src in uses(name)]


def _reference_finds_something(src: str, project=None) -> bool:
    from torchdevice_migrate.options import Options

    result = migrate_source(src.encode(), "case.py", Options(project=project), prefilter=False)
    return result.new != src.encode() or bool(result.findings)


def test_every_registry_entry_has_synthesised_uses():
    assert {name for name, _ in CASES} == set(API)


@pytest.mark.parametrize("name", sorted(API))
def test_no_registry_entry_hides_behind_the_trigger(name):
    for src in uses(name):
        if name in NEEDS_CUDA_EVIDENCE:
            if not TRIGGER.search(src.encode()):
                # Rewritten only next to CUDA evidence: on its own, the reference path finds nothing.
                assert not _reference_finds_something(src), (name, src)
            continue
        assert TRIGGER.search(src.encode()), f"the trigger misses {name} in {src!r}"


@pytest.mark.parametrize("name", sorted(NEEDS_CUDA_EVIDENCE))
def test_entries_that_need_evidence_match_with_it(name):
    src = f"import torch\nd = {name}('cuda')\nx = {name}(p, map_location='cuda')\n"
    assert TRIGGER.search(src.encode())


@pytest.mark.parametrize("name", sorted(PROJECT_EVIDENCE))
def test_project_wide_entries_match_in_a_project_that_uses_cuda(name):
    src = f"import torch\nx = {name}(path)\n".encode()
    cuda_project = ProjectIndex(None, {"other.py": FileInfo(uses_cuda=True)})
    plain_project = ProjectIndex(None, {"other.py": FileInfo()})
    assert not TRIGGER.search(src)
    assert is_candidate(src, cuda_project)
    assert not is_candidate(src, plain_project) and not is_candidate(src, None)
    assert not _reference_finds_something(src.decode())  # on its own, nothing to do


def _rank_names():
    alternatives = re.search(r"\(\?:([\w|]+)\)$", RANK_NAME_RE.pattern).group(1).split("|")
    return [n for a in alternatives for n in (a, f"self.{a}", f"args.local_{a}", a.upper())]


@pytest.mark.parametrize("value", ["0", "1", *_rank_names()])
def test_int_and_rank_devices_match(value):
    for src in (f"y = x.to({value})\n", f"y = x.to(\n    {value}, non_blocking=True)\n",
                f"y = x.to(device={value})\n", f"import torch\nt = torch.ones(2, device={value})\n"):
        assert TRIGGER.search(src.encode()), src


@pytest.mark.parametrize("src", [
    "from .utils import is_flash_attn_2_available\nif is_flash_attn_2_available():\n    pass\n",
    "from transformers.integrations.flash_attn import f\nflash_attn_func = None\n",
    "import transformers.flash_attn\n",
    "def is_triton_available():\n    return importlib.util.find_spec('triton') is not None\n",
    "state = {'cuda_rng_state': s}\n",
    "def is_cuda_available_like():\n    pass\n",
    "# see the apex and cupy docs; we never import them\nx = 1\n",
    "x = x.to(dtype)\ny = torch.device('cpu')\nm.load_state_dict(sd)\n",
    "torch_npu.npu.synchronize()\nx = x.to(self.device)\n",
    "from .cupy_like import thing\nimport mytriton\n",
    "'''A .cu file is described here as text.'''\n",
])
def test_trigger_is_not_looser_than_needed(src):
    assert not TRIGGER.search(src.encode())
    assert not _reference_finds_something(src)


def test_one_regex_equals_the_several_scans():
    combined = re.compile(TRIGGER.pattern)
    for _, src in CASES:
        assert bool(combined.search(src.encode())) == bool(TRIGGER.search(src.encode()))


@pytest.mark.parametrize("src,expected", [
    ("x = 1  # move the model to cuda first\n", False),
    ('"""Runs on cuda and nccl."""\nx = 1\n', False),
    ('class A:\n    """Uses torch.cuda streams."""\n    def f(self):\n        """Like .cuda()."""\n', False),
    ("s = f'{a}#'  # cuda\n", False),
    ("x = '#'; y = t.cuda()\n", True),
    ("y = t.cuda()  # cuda\n", True),
    ("s = 'a # b'; t.cuda()\n", True),
    ('def f():\n    "cuda"\n', True),  # a one-word docstring that is a device string: the rules see it
    ("import torch\nd = 'cuda:0'  # the GPU\n", True),
    ("def f(:\n    cuda\n", True),  # no parse: the rules (LibCST) decide
    ('@deco("#", t.cuda())\ndef f():\n    pass\n', True),  # the '#' is in a decorator's string
    ("s = '''\n# t.cuda() in a string\n'''\n", True),  # a '#' inside a string that spans lines
    ("class A:\n    def f(self):\n        return {'#': 1}  # t.cuda()\n", False),
])
def test_matches_only_in_comments_and_docstrings_are_no_candidates(src, expected):
    assert TRIGGER.search(src.encode())
    assert is_candidate(src.encode()) is expected
    if not expected:
        assert not _reference_finds_something(src)


def _load_calls(name: str) -> list:
    """Calls the Checkpoints rule resolves to ``name`` (``torch.load``), spelled every way it can be."""
    module, _, last = name.rpartition(".")
    top = module.split(".")[0]
    return [f"import {module}\nx = {name}(f)\n", f"import {module} as th\nx = th.{last}(f)\n",
            f"from {module} import {last}\nx = {last}(f)\n", f"from {module} import {last} as _l\nx = _l(f)\n",
            f"from {module} import (\n    {last},\n)\nx = {last}(f)\n", f"import {top}.nn\nx = {name}(f)\n",
            f"import os, {module}\nx = {name} (f)\n", f"if a:\n    import {module}\nx = ({name}  # c\n     (f))\n",
            f"import {module}\nx = {name}(\n    f, weights_only=True)\n", f"import os as o, \\\n    {module}\nx = {name}(f)\n",
            f"import {module}\nx = ({module}).{last}(f)\n", f"import {module}\nx = {module}.\\\n    {last}(f)\n",
            f"import {module} as t\u00f1\nx = t\u00f1.{last}(f)\n",
            f"import json\n\ndef g(f):\n    import {module} as t\n    return t.{last}(f)\n"]


@pytest.mark.parametrize("name", sorted(PROJECT_EVIDENCE))
def test_no_project_wide_rewrite_hides_behind_the_trigger(name):
    cuda_project = ProjectIndex(None, {"other.py": FileInfo(uses_cuda=True)})
    for src in _load_calls(name):
        assert is_candidate(src.encode(), cuda_project), src
        assert _reference_finds_something(src, cuda_project), src  # each one is really rewritten


@pytest.mark.parametrize("src", [
    "import json\nx = json.load(f)\n",  # no torch import
    "import torch\nm.load_state_dict(sd)\n",
    "import torch\n# load the weights\nx = 1\n",
    "import torch\nloader = torch.load\n",  # not a call: nothing to rewrite
    "import torch\ndef load_all():\n    '''Calls load(path).'''\n",
    "from mylib import load\nx = load(f)\n",
    # a call of another object's ``load``: the rules resolve names through the file's imports only
    "import torch\nimport json\nx = json.load(f)\n",
    "import torch\nimport torchaudio\nx, sr = torchaudio.load(p)\n",
    "import torch\nep = torch.export.load(p)\n",
    "import torch\nimport torch.serialization as S\nx = S.load(p)\n",
    "import torch\n\ndef f(th, p):\n    return th.load(p)\n",
    "import torch\nth = torch\nx = th.load(p)\n",
])
def test_project_trigger_needs_a_call_and_a_torch_import(src):
    cuda_project = ProjectIndex(None, {"other.py": FileInfo(uses_cuda=True)})
    assert not is_candidate(src.encode(), cuda_project), src
    assert not _reference_finds_something(src, cuda_project), src


def test_the_collector_is_paused_for_a_parse_and_left_as_it_was():
    import gc

    from torchdevice_migrate.trigger import collector_paused, parse_tree

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(SyntaxError), collector_paused():
        raise SyntaxError("a parse that fails")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
    assert parse_tree(b"def f(:\n") is None and gc.isenabled()
