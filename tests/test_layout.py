"""Readable diffs (issue 11 item 3): changed lines kept within the project's line length (layout.py),
the project's line length and formatter read from its configuration (config.project_style)."""

import ast
from pathlib import Path

import libcst as cst
import pytest

from torchdevice_migrate.config import DEFAULT_LINE_LENGTH, load_settings, project_style
from torchdevice_migrate.layout import long_changed_lines, wrap_long_lines
from torchdevice_migrate.options import Options
from torchdevice_migrate.transform import migrate_source

from .conftest import FIXTURES, run_cli

LAYOUT = FIXTURES / "layout"
CASES = sorted(p for p in LAYOUT.glob("*.py") if ".expected" not in p.name)


def wrap(original: str, port: str, limit: int = 88) -> str:
    return wrap_long_lines(cst.parse_module(port), original, limit).code


# ---- the golden fixtures, both targets ------------------------------------------------------------

@pytest.mark.parametrize("target,tag", [("shim", ""), ("torch", ".torch")])
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_layout_fixture(case: Path, target: str, tag: str):
    expected = case.with_name(f"{case.stem}{tag}.wrapped.expected.py").read_text()
    options = Options(target=target, layout=True)
    result = migrate_source(case.read_bytes(), str(case), options)
    assert result.new.decode() == expected
    assert migrate_source(result.new, str(case), options).new == result.new  # idempotent
    # Only the layout differs from the port without it.
    plain = migrate_source(case.read_bytes(), str(case), Options(target=target))
    assert _same_program(plain.new, result.new)
    assert plain.findings == result.findings


def test_layout_fixture_wraps_something():
    for case in CASES:
        wrapped = case.with_name(f"{case.stem}.wrapped.expected.py").read_text()
        assert wrapped != case.with_name(f"{case.stem}.expected.py").read_text()


# ---- every golden fixture, at 88: same program, no new long line where a call can be split ---------

ALL = sorted(p for p in FIXTURES.glob("*/*.py") if ".expected" not in p.name and p.parent.name != "projects")


def _splittable_call_on(line_no: int, code: str) -> bool:
    """A one-line call with arguments, outside an f-string, on that line."""
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Call) and (node.args or node.keywords) and node.lineno == line_no
                and node.end_lineno == line_no):
            return True
    return False


def _same_program(a: bytes, b: bytes) -> bool:
    """The same statements, the added ``import runtime_shim`` (moved by the layout) wherever it is."""
    def dump(code: bytes):
        tree = ast.parse(code)
        shim = [s for s in tree.body if isinstance(s, ast.Import) and [n.name for n in s.names] == ["runtime_shim"]]
        tree.body = [s for s in tree.body if s not in shim]
        return ast.dump(tree), len(shim)
    return dump(a) == dump(b)


@pytest.mark.parametrize("target", ["shim", "torch"])
def test_every_fixture_at_88(target):
    for case in ALL:
        source = case.read_bytes()
        plain = migrate_source(source, str(case), Options(target=target))
        wrapped = migrate_source(source, str(case), Options(target=target, layout=True))
        assert _same_program(plain.new, wrapped.new), case
        assert migrate_source(wrapped.new, str(case), Options(target=target, layout=True)).new == wrapped.new, case
        if plain.new == source:
            assert wrapped.new == source, case  # nothing ported: nothing laid out
        original = source.decode().splitlines()
        new = wrapped.new.decode()
        for line_no in long_changed_lines(original, new.splitlines(), 88):
            text = new.splitlines()[line_no - 1]
            fstring_only = 'f"' in text or "f'" in text
            assert fstring_only or not _splittable_call_on(line_no, new), f"{case}:{line_no}: {text}"


# ---- the rule, on small ports ----------------------------------------------------------------------

def test_hugs_arguments_that_fit_on_one_line():
    original = "def f():\n    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[r], output_device=r)\n"
    port = ("def f():\n    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=runtime_shim.ids([r]), "
            "output_device=r)\n")
    assert wrap(original, port) == (
        "def f():\n"
        "    model = torch.nn.parallel.DistributedDataParallel(\n"
        "        model, device_ids=runtime_shim.ids([r]), output_device=r\n"
        "    )\n")


def test_one_argument_per_line_with_a_trailing_comma_when_they_do_not_fit():
    original = "x = f(a)\n"
    port = "x = runtime_shim.something(argument_number_one, argument_number_two, argument_number_three=3)\n"
    assert wrap(original, port, 60) == (
        "x = runtime_shim.something(\n"
        "    argument_number_one,\n"
        "    argument_number_two,\n"
        "    argument_number_three=3,\n"
        ")\n")


def test_an_argument_line_still_too_long_is_wrapped_inside_it():
    original = "x = f(a)\n"
    port = "x = outer_call(first_argument, inner_call(alpha_argument, beta_argument, gamma_argument))\n"
    out = wrap(original, port, 40)
    assert all(len(line) <= 40 for line in out.splitlines()), out
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(port))
    assert wrap(original, out, 40) == out


def test_unchanged_long_lines_are_never_touched():
    long_call = "y = some_function(" + ", ".join(f"argument_{i}" for i in range(12)) + ")\n"
    original = long_call + "x = torch.cuda.current_device()\n"
    port = long_call + "x = runtime_shim.current_device()\n"
    assert wrap(original, port, 40) == port


def test_a_line_the_port_made_no_longer_is_left():
    original = "if isinstance(err, torch.cuda.OutOfMemoryError) and attempt < max_attempts and check(err, a): pass\n"
    port = "if isinstance(err, torch.OutOfMemoryError) and attempt < max_attempts and check(err, a): pass\n"
    assert wrap(original, port, 40) == port


def test_a_long_expression_statement_without_a_call_to_split_is_left():
    original = "torch.cuda.memory_allocated() + torch.cuda.memory_reserved()\n"
    port = "runtime_shim.memory_allocated() + runtime_shim.memory_reserved()\n"
    assert wrap(original, port, 40) == port


def test_a_right_hand_side_black_parenthesizes_gets_parentheses_of_its_own():
    original = 'device_type = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"  # note\n'
    port = 'device_type = runtime_shim.device_type("cuda") if runtime_shim.is_accelerator(device) else "cpu"  # note\n'
    assert wrap(original, port) == (
        "device_type = (\n"
        '    runtime_shim.device_type("cuda") if runtime_shim.is_accelerator(device) else "cpu"\n'
        ")  # note\n")
    # Split at its delimiters when it does not fit inside them either: a tuple (trailing comma), a chain.
    port = "    x, y = runtime_shim.pin_memory(x).to(device, non_blocking=True), runtime_shim.pin_memory(y).to(device)\n"
    assert wrap("    x, y = x.cuda(), y.cuda()\n", "if 1:\n" + port) == (
        "if 1:\n"
        "    x, y = (\n"
        "        runtime_shim.pin_memory(x).to(device, non_blocking=True),\n"
        "        runtime_shim.pin_memory(y).to(device),\n"
        "    )\n")
    port = "used = runtime_shim.memory_allocated() + runtime_shim.memory_reserved() + runtime_shim.max_memory_allocated()\n"
    assert wrap("x = 1\n", port) == (
        "used = (\n"
        "    runtime_shim.memory_allocated()\n"
        "    + runtime_shim.memory_reserved()\n"
        "    + runtime_shim.max_memory_allocated()\n"
        ")\n")
    port = "if runtime_shim.is_available() and runtime_shim.device_count() > 1 and not args.no_accelerator_at_all:\n    pass\n"
    assert wrap("x = 1\n", port) == (
        "if (\n"
        "    runtime_shim.is_available()\n"
        "    and runtime_shim.device_count() > 1\n"
        "    and not args.no_accelerator_at_all\n"
        "):\n"
        "    pass\n")


def test_calls_inside_an_f_string_are_left():
    original = 'x = 1\n'
    port = 'x = f"{runtime_shim.memory_allocated(runtime_shim.device(), extra_argument)} bytes"\n'
    assert wrap(original, port, 40) == port


def test_a_bare_generator_argument_gets_no_trailing_comma():
    original = "x = 1\n"
    port = "total = runtime_shim.something_long(value.to(runtime_shim.device()) for value in values)\n"
    out = wrap(original, port, 40)
    compile(out, "<port>", "exec")
    assert out.startswith("total = runtime_shim.something_long(\n    value.to(")


def test_the_trailing_comment_stays_on_the_closing_line():
    original = "x = f(a)  # note\n"
    port = "x = runtime_shim.something(argument_number_one, argument_number_two)  # note\n"
    assert wrap(original, port, 50) == (
        "x = runtime_shim.something(\n    argument_number_one, argument_number_two\n)  # note\n")


def test_zero_disables_wrapping():
    port = "x = runtime_shim.something(argument_number_one, argument_number_two)\n"
    assert wrap("x = 1\n", port, 0) == port


def test_the_last_call_on_the_line_is_split_first_as_black_does():
    original = "x = 1\n"
    port = "x = first_call(alpha, beta) + runtime_shim.second_call(gamma, delta)\n"
    assert wrap(original, port, 60) == (
        "x = first_call(alpha, beta) + runtime_shim.second_call(\n    gamma, delta\n)\n")


# ---- the project's style ---------------------------------------------------------------------------

def _project(tmp_path: Path, files: dict) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / ".git").mkdir()  # the project's root: the walk up stops here
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "pkg" / "m.py").write_text("import torch\n")
    return root


@pytest.mark.parametrize("files,length,formatter", [
    ({}, DEFAULT_LINE_LENGTH, None),
    ({"pyproject.toml": "[tool.ruff]\nline-length = 100\n"}, 100, "ruff"),
    ({"pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n"}, DEFAULT_LINE_LENGTH, "ruff"),
    ({"pyproject.toml": "[tool.black]\nline-length = 110\n"}, 110, "black"),
    ({"ruff.toml": "line-length = 79\n", "pyproject.toml": "[tool.black]\nline-length = 110\n"}, 79, "ruff"),
    ({".ruff.toml": "line-length = 99\n"}, 99, "ruff"),
    ({".pre-commit-config.yaml": "repos:\n- repo: https://github.com/psf/black\n  hooks:\n  - id: black\n"},
     DEFAULT_LINE_LENGTH, "black"),
    ({".pre-commit-config.yaml": "repos:\n- repo: https://github.com/astral-sh/ruff-pre-commit\n  hooks:\n"
                                 "  - id: ruff-format\n"}, DEFAULT_LINE_LENGTH, "ruff"),
    ({"pyproject.toml": "[project]\nname = 'x'\n"}, DEFAULT_LINE_LENGTH, None),
])
def test_project_style(tmp_path, files, length, formatter):
    root = _project(tmp_path, files)
    style = project_style([root / "pkg" / "m.py"])
    assert (style.line_length, style.formatter) == (length, formatter)
    assert load_settings([root / "pkg"]).options().line_length == length


def test_the_cli_keeps_changed_lines_within_the_project_line_length(tmp_path, cli_env):
    call = "    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank], output_device=rank)\n"
    root = _project(tmp_path, {"pyproject.toml": "[tool.black]\nline-length = 100\n"})
    (root / "pkg" / "m.py").write_text("import torch\n\n\ndef f(model, rank):\n" + call + "    return model\n")
    out = run_cli([root / "pkg", "--diff"], env=cli_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    added = [line[1:] for line in out.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert added and max(map(len, added)) <= 100
    assert "+    model = torch.nn.parallel.DistributedDataParallel(" in out.stdout
    (root / "pyproject.toml").write_text("[tool.black]\nline-length = 200\n")
    out = run_cli([root / "pkg", "--diff"], env=cli_env, cwd=tmp_path)
    assert "+    model = torch.nn.parallel.DistributedDataParallel(model, device_ids=" in out.stdout


# ---- --reformat: the project's formatter on the changed statements only -----------------------------

from torchdevice_migrate.formatting import changed_ranges, executable  # noqa: E402

BADLY_FORMATTED = (
    "import torch\n"
    "x = { 'a':1,'b' : 2 }\n"
    "def  train( model,batch ):\n"
    "    y=batch.cuda( non_blocking = True )\n"
    "    z = [1,2,\n"
    "      3]\n"
    "    torch.cuda.synchronize( )\n"
    "    return model( y )\n"
)


def test_changed_ranges():
    assert changed_ranges("a\nb\nc\n", "a\nB\nc\nd\n") == [(2, 2), (4, 4)]
    assert changed_ranges("a\nb\n", "a\nx\ny\nb\n") == [(2, 3)]
    assert changed_ranges("a\nb\n", "a\n") == []


def _reformat_project(tmp_path: Path, config: dict) -> Path:
    root = _project(tmp_path, config)
    (root / "pkg" / "m.py").write_text(BADLY_FORMATTED)
    return root


def _unchanged_lines_kept(original: str, new: str) -> None:
    """Every line of the original the port did not change is still there, byte for byte, in order."""
    import difflib

    a, b = original.splitlines(), new.splitlines()
    kept = [line for tag, i1, i2, _j1, _j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
            if tag == "equal" for line in a[i1:i2]]
    for needed in ("x = { 'a':1,'b' : 2 }", "def  train( model,batch ):", "    z = [1,2,", "      3]",
                   "    return model( y )"):
        assert needed in kept, (needed, new)


@pytest.mark.skipif(executable("ruff") is None, reason="ruff is not installed")
def test_reformat_with_ruff_formats_only_the_changed_statements(tmp_path, cli_env):
    root = _reformat_project(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 88\n"})
    # Without --reformat the changed statements keep the original's spacing.
    plain = run_cli([root / "pkg", "--diff"], env=cli_env, cwd=tmp_path)
    assert "+    y=runtime_shim.to_device( batch, non_blocking = True )" in plain.stdout
    out = run_cli([root / "pkg", "--reformat"], env=cli_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    new = (root / "pkg" / "m.py").read_text()
    assert "    y = runtime_shim.to_device(batch, non_blocking=True)\n" in new  # formatted
    assert "    runtime_shim.synchronize()\n" in new
    _unchanged_lines_kept(BADLY_FORMATTED, new)
    again = run_cli([root / "pkg", "--reformat", "--check"], env=cli_env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # the port of the port changes nothing


@pytest.mark.skipif(executable("black") is None, reason="black is not installed")
def test_reformat_with_black_formats_only_the_changed_statements(tmp_path, cli_env):
    root = _reformat_project(tmp_path, {"pyproject.toml": "[tool.black]\nline-length = 88\n"})
    out = run_cli([root / "pkg", "--reformat"], env=cli_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    new = (root / "pkg" / "m.py").read_text()
    assert "    y = runtime_shim.to_device(batch, non_blocking=True)\n" in new
    _unchanged_lines_kept(BADLY_FORMATTED, new)


def test_reformat_without_a_configured_formatter_is_a_usage_error(tmp_path, cli_env):
    root = _reformat_project(tmp_path, {})
    out = run_cli([root / "pkg", "--reformat"], env=cli_env, cwd=tmp_path)
    assert out.returncode == 2 and "no formatter" in out.stderr
    assert (root / "pkg" / "m.py").read_text() == BADLY_FORMATTED


@pytest.mark.skipif(executable("black") is not None, reason="black is installed")
def test_reformat_with_the_formatter_not_installed_is_a_usage_error(tmp_path, cli_env):
    root = _reformat_project(tmp_path, {"pyproject.toml": "[tool.black]\n"})
    out = run_cli([root / "pkg", "--reformat"], env=cli_env, cwd=tmp_path)
    assert out.returncode == 2 and "black, which is not installed" in out.stderr
    assert (root / "pkg" / "m.py").read_text() == BADLY_FORMATTED


# ---- the shim import at its isort place --------------------------------------------------------------

def _placed(source: str) -> str:
    return migrate_source(source.encode(), options=Options(layout=True)).new.decode()


@pytest.mark.parametrize("before,after", [
    # sorted among the third-party plain imports: right before torch
    ("import os\n\nimport numpy as np\nimport torch\nfrom torch import nn\n\nx = torch.zeros(1).cuda()\n",
     "import os\n\nimport numpy as np\nimport runtime_shim\nimport torch\nfrom torch import nn\n\n"
     "x = runtime_shim.to_device(torch.zeros(1))\n"),
    # first in its section: the blank line above the section stays above it
    ("import os\n\nimport torch\n\nx = torch.zeros(1).cuda()\n",
     "import os\n\nimport runtime_shim\nimport torch\n\nx = runtime_shim.to_device(torch.zeros(1))\n"),
    # the environment set before torch's import is still set before it
    ('import os\nos.environ["A"] = "1"\nimport torch\n\nx = torch.zeros(1).cuda()\n',
     'import os\nos.environ["A"] = "1"\nimport runtime_shim\nimport torch\n\nx = runtime_shim.to_device(torch.zeros(1))\n'),
    # a module the original imports before torch sorts after runtime_shim: torch must not move above it
    ("import scipy\nimport torch\n\nx = torch.zeros(1).cuda()\n",
     "import scipy\nimport torch\nimport runtime_shim\n\nx = runtime_shim.to_device(torch.zeros(1))\n"),
])
def test_the_shim_import_goes_to_its_isort_place_without_moving_torch(before, after):
    assert _placed(before) == after
    assert _placed(after) == after


def test_an_existing_shim_import_is_never_moved():
    source = "import torch\nimport runtime_shim\n\nx = torch.zeros(1).cuda()\n"
    assert _placed(source).startswith("import torch\nimport runtime_shim\n\n")


def _i001(text: str, cwd: Path) -> bool:
    import subprocess

    done = subprocess.run([*executable("ruff"), "check", "--isolated", "--select", "I", "--target-version", "py39",
                           "--stdin-filename", "m.py", "-"], input=text, capture_output=True, text=True, cwd=cwd)
    return done.returncode != 0


def test_every_fixture_at_a_tiny_line_length_is_still_the_same_program():
    """Stress: at 30 columns nearly every changed line is wrapped, several levels deep."""
    for case in ALL:
        source = case.read_bytes()
        plain = migrate_source(source, str(case), Options())
        options = Options(layout=True, line_length=30)
        tiny = migrate_source(source, str(case), options)  # a port that does not compile raises
        assert _same_program(plain.new, tiny.new), case
        assert migrate_source(tiny.new, str(case), options).new == tiny.new, case


@pytest.mark.skipif(executable("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("target", ["shim", "torch"])
def test_ports_add_no_import_order_violation(target, tmp_path):
    """``ruff check --select I`` (isort) on every fixture's port: no I001 added to a file that had none,
    except where the added import follows an import of the original that it sorts before (moving
    it up would import torch before that module: the original's order wins)."""
    ported = 0
    for case in ALL:
        source = case.read_text()
        new = migrate_source(source.encode(), str(case), Options(target=target, layout=True)).new.decode()
        if new == source or _i001(source, tmp_path):
            continue
        ported += 1
        if not _i001(new, tmp_path):
            continue
        old_lines = set(source.splitlines())
        lines = new.splitlines()
        added = [i for i, line in enumerate(lines) if line.startswith("import ") and line not in old_lines]
        assert len(added) == 1, (case, added)
        previous = lines[added[0] - 1]
        assert previous in old_lines and previous.startswith(("import ", "from ")), (case, previous)
        name = lines[added[0]].split()[1].lower()
        assert previous.split()[1].lower() > name or previous.startswith("from "), (case, previous)
    assert ported > 50


def test_collections_and_parenthesized_expressions_split_inside_their_brackets():
    port = ('    state = {"model": model.state_dict(), "rng": runtime_shim.get_rng_state(), "step": cfg["steps"], "x": 1}\n'
            '    on_gpu = not (isinstance(x, torch.Tensor) and x.dtype == torch.float16 and runtime_shim.is_accelerator(x))\n')
    out = wrap("x = 1\n", "def f():\n" + port)
    assert out == (
        "def f():\n"
        "    state = {\n"
        '        "model": model.state_dict(),\n'
        '        "rng": runtime_shim.get_rng_state(),\n'
        '        "step": cfg["steps"],\n'
        '        "x": 1,\n'
        "    }\n"
        "    on_gpu = not (\n"
        "        isinstance(x, torch.Tensor)\n"
        "        and x.dtype == torch.float16\n"
        "        and runtime_shim.is_accelerator(x)\n"
        "    )\n")
    assert wrap("x = 1\n", out) == out


def test_the_readme_diffs_are_the_tools_output():
    """README "Upstreaming a port": the two diffs are what the tool writes (layout on, as the CLI)."""
    import difflib
    import re

    readme = (FIXTURES.parent / "README.md").read_text()
    section = readme[readme.index("## Upstreaming a port"):]
    source = re.search(r"This training function.*?```python\n(.*?)```", section, re.S).group(1)
    diffs = re.findall(r"```diff\n(.*?)```", section, re.S)
    assert len(diffs) == 2
    for target, shown in zip(("shim", "torch"), diffs):
        new = migrate_source(source.encode(), "train.py", Options(target=target, layout=True)).new.decode()
        lines = [line.rstrip("\n") for line in difflib.unified_diff(
            source.splitlines(keepends=True), new.splitlines(keepends=True))]
        body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
        assert [line.rstrip() for line in body] == [line.rstrip() for line in shown.splitlines()], target


def test_a_node_placed_twice_is_wrapped_as_in_a_copy():
    """The layout pass reads positions without copying the module; a node object that a port placed in
    two places (one position for two places) must give what a copy of the module gives."""
    original = "x = 1\n"
    call = cst.parse_statement("y = some_function(argument_number_one, argument_number_two, argument_three)\n")
    shared = cst.parse_module(original).with_changes(body=[call, cst.parse_statement("z = 2\n"), call])
    copied = shared.deep_clone()
    wrapped = wrap_long_lines(shared, original, 40).code
    assert wrapped == wrap_long_lines(copied, original, 40).code
    assert wrapped.count("some_function(\n") == 2


def _whole_text_blocks(original, new):
    """The blocks that differ, from a diff of the whole texts (the reference)."""
    import difflib

    matcher = difflib.SequenceMatcher(None, list(original), list(new), autojunk=False)
    return [(i1, i2, j1, j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def test_long_changed_lines_diffs_only_between_the_common_head_and_tail(monkeypatch):
    import torchdevice_migrate.layout as layout

    root = Path(__file__).resolve().parent.parent / "fixtures"
    pairs = []
    for expected in sorted(root.rglob("*.expected.py")):
        source = expected.with_name(expected.name.replace(".expected.py", ".py"))
        if source.exists():
            pairs.append((expected.name, source.read_text().splitlines(), expected.read_text().splitlines()))
    assert len(pairs) > 50
    cases = [(name, a, b, limit, compare) for name, a, b in pairs for limit in (20, 60) for compare in (True, False)]
    trimmed = [long_changed_lines(a, b, limit, compare) for _, a, b, limit, compare in cases]
    monkeypatch.setattr(layout, "_changed_blocks", _whole_text_blocks)
    for (name, a, b, limit, compare), got in zip(cases, trimmed):
        assert got == long_changed_lines(a, b, limit, compare), (name, limit, compare)


_ODD_LAYOUTS = [
    "import torch\n# a header comment\n\nx = 1; y = torch.cuda.device_count() + torch.cuda.device_count() + 1000000 + 2000000\n",
    "import torch\n\ndef f(model):\n    model.cuda()\n    # a comment that closes the block\n\n"
    "x = torch.cuda.current_device() + torch.cuda.current_device() + 1000000000 + 2000000000\n",
    "import torch\n\n@torch.no_grad()\ndef f():\n    return torch.cuda.memory_allocated() + torch.cuda.memory_reserved() + 10000000\n",
    "import torch\nx = torch.cuda.current_device() + torch.cuda.current_device() + 1000000000 + 2000000000",
    "import torch\nif a:\n    x = 1\nelse:\n    y = torch.cuda.device_count() + torch.cuda.device_count() + 100000000000\n# footer\n",
]


def test_wrapping_the_statements_around_the_lines_equals_wrapping_the_module(monkeypatch):
    """``wrap_port`` wraps only the module-level statements that hold the long lines (``_statements_around``)
    and splices their code in; the result is the whole module's wrap, on every fixture and odd layout."""
    odd = [(f"odd{i}.py", s.encode(), target) for i, s in enumerate(_ODD_LAYOUTS) for target in ("shim", "torch")]
    runs = [(str(c), c.read_bytes(), "shim", 30) for c in ALL] + [(n, s, t, limit) for n, s, t in odd for limit in (30, 88)]
    import torchdevice_migrate.layout as layout

    taken = []
    real = layout._statements_around

    def counting(*args):
        part = real(*args)
        taken.append(part is not None)
        return part

    monkeypatch.setattr(layout, "_statements_around", counting)
    parts = [migrate_source(source, name, Options(target=target, layout=True, line_length=limit)).new
             for name, source, target, limit in runs]
    assert sum(taken) > 50 and not all(taken)  # the path is taken (and sometimes not: a footer comment, no final newline)
    monkeypatch.setattr(layout, "_statements_around", lambda *args: None)
    for (name, source, target, limit), part in zip(runs, parts):
        whole = migrate_source(source, name, Options(target=target, layout=True, line_length=limit)).new
        assert part == whole, (name, target, limit)
