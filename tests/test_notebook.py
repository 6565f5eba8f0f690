"""Notebooks: code cells ported, everything else (outputs, ids, metadata, JSON layout) kept."""

import json
import subprocess
import sys
import textwrap

import pytest

from torchdevice_migrate.engine import discover, migrate_bytes
from torchdevice_migrate.findings import FileState
from torchdevice_migrate.notebook import dumps_like
from torchdevice_migrate.transform import Options

from .conftest import FIXTURES, run_cli

NB = FIXTURES / "notebooks"


def port(data: bytes, name: str = "nb.ipynb", options=None):
    return migrate_bytes(data, name, options or Options())


def notebook(*cells, indent=1, sort_keys=True, metadata=None, newline=True):
    nb = {"cells": [], "metadata": metadata if metadata is not None else
          {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    for i, c in enumerate(cells):
        kind, src = ("markdown", c[1:]) if c.startswith("#md ") else ("code", c)
        lines = [x + "\n" for x in src.split("\n")]
        lines[-1] = lines[-1][:-1]
        cell = {"cell_type": kind, "id": f"id{i}", "metadata": {}, "source": lines}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        nb["cells"].append(cell)
    text = json.dumps(nb, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + ("\n" if newline else "")
    return text.encode("utf-8")


def sources(data: bytes):
    return ["".join(c["source"]) for c in json.loads(data)["cells"]]


def test_fixture_ports_to_expected_and_is_idempotent():
    result = port((NB / "cuda_train.ipynb").read_bytes(), "cuda_train.ipynb")
    assert result.state is FileState.CHANGED, result.error
    assert result.new == (NB / "cuda_train.expected.ipynb").read_bytes()
    again = port(result.new, "cuda_train.ipynb")
    assert again.state is FileState.UNCHANGED and again.new == result.new


def test_only_sources_change_and_the_notebook_stays_valid():
    before = json.loads((NB / "cuda_train.ipynb").read_bytes())
    after = json.loads((NB / "cuda_train.expected.ipynb").read_bytes())
    assert len(before["cells"]) == len(after["cells"])
    for old, new in zip(before["cells"], after["cells"]):
        assert list(old) == list(new)  # same keys, same order
        assert {k: v for k, v in old.items() if k != "source"} == {k: v for k, v in new.items() if k != "source"}
    assert before["metadata"] == after["metadata"]
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads((NB / "cuda_train.expected.ipynb").read_text(encoding="utf-8"), as_version=4))


def test_magics_shell_and_help_lines_are_kept_exactly():
    after = sources((NB / "cuda_train.expected.ipynb").read_bytes())
    assert after[1] == "import torch\nimport torch.nn as nn\n!nvidia-smi -L\n%env CUDA_LAUNCH_BLOCKING=1"
    assert after[3].startswith("%%time\n")  # the cell magic stays the first line; the body is ported
    assert ".cuda()" not in after[3]
    assert after[4] == '%%bash\necho "cuda devices: $CUDA_VISIBLE_DEVICES"'  # not Python: untouched
    assert "        %time runtime_shim.synchronize()\n" in after[5]  # %time's statement is ported
    assert after[6] == "torch.cuda.synchronize?"  # help line: untouched


def test_shim_import_goes_to_the_first_cell_that_uses_it_and_names_resolve_across_cells():
    after = sources((NB / "cuda_train.expected.ipynb").read_bytes())
    # `import torch` is in cell 2, used in cell 3: the availability idiom is still recognised
    assert after[2].startswith("import runtime_shim\n\ndevice = runtime_shim.device()\n")
    assert sum(s.count("import runtime_shim") for s in after) == 1


@pytest.mark.parametrize("name", ["portable.ipynb", "r_kernel.ipynb"])
def test_notebooks_without_anything_to_port_are_byte_identical(name):
    data = (NB / name).read_bytes()
    result = port(data, name)
    assert result.state is FileState.UNCHANGED, result.error
    assert result.new == data


@pytest.mark.parametrize("indent", [1, 2, 4])
@pytest.mark.parametrize("sort_keys", [True, False])
@pytest.mark.parametrize("crlf", [False, True])
def test_json_layout_is_kept(indent, sort_keys, crlf):
    data = notebook("#md # Résumé ✓", "import torch\nx = torch.ones(1).cuda()", indent=indent, sort_keys=sort_keys)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    result = port(data)
    assert result.state is FileState.CHANGED
    new = json.loads(result.new)
    assert "runtime_shim.to_device(" in "".join(new["cells"][1]["source"])
    # the same layout: what json.dumps writes with the original's indent, key order and line ending
    expected = json.dumps(new, indent=indent, ensure_ascii=False) + "\n"
    assert result.new == (expected.replace("\n", "\r\n") if crlf else expected).encode("utf-8")
    assert list(new) == list(json.loads(data)) and list(new["cells"][1]) == list(json.loads(data)["cells"][1])
    assert "Résumé ✓".encode() in result.new  # ensure_ascii as in the original
    assert result.new.endswith(b"\r\n" if crlf else b"\n")


def test_dumps_like_keeps_escaped_unicode_and_missing_final_newline():
    nb = {"cells": [], "metadata": {"title": "é"}}
    original = json.dumps(nb, indent=1, ensure_ascii=True)
    assert dumps_like(original, nb) == original
    assert "\\u00e9" in dumps_like(original, nb)


def test_findings_carry_the_cell_and_lines_within_it():
    data = notebook("#md intro", "import torch", "%%time\nimport os\nx = torch.ones(1).cuda()")
    result = port(data)
    (f,) = [f for f in result.findings if f.api == "torch.Tensor.cuda"]
    assert (f.cell, f.line) == (3, 3)
    assert f.location() == "nb.ipynb[cell 3]:3:" + str(f.column)


@pytest.mark.parametrize("cell,kept", [
    ("%matplotlib inline\nx = torch.ones(1).cuda()", "%matplotlib inline\n"),
    ("files = !ls\nx = torch.ones(1).cuda()", "files = !ls\n"),
    ("for i in range(2):\n    !echo cuda\n    x = torch.ones(1).cuda()", "    !echo cuda\n"),
    ("%timeit -n 1 -r 2 torch.ones(1).cuda()", "%timeit -n 1 -r 2 runtime_shim.to_device(torch.ones(1))"),
    ("torch.cuda.is_available??\nx = torch.ones(1).cuda()", "torch.cuda.is_available??\n"),
    ("%%timeit\nx = torch.ones(1).cuda()", "%%timeit\n"),
])
def test_ipython_lines(cell, kept):
    data = notebook("import torch", cell)
    result = port(data)
    assert result.state is FileState.CHANGED, result.error
    new = sources(result.new)[1]
    assert kept in new
    assert ".cuda()" not in new.replace("is_available", "")


def test_modulo_on_a_continuation_line_is_python_not_a_magic():
    cell = 'msg = ("%d"\n       % 3)\nx = torch.ones(1).cuda()'
    result = port(notebook("import torch", cell))
    new = sources(result.new)[1]
    assert 'msg = ("%d"\n       % 3)\n' in new and ".cuda()" not in new


def test_other_cell_magics_are_left_alone():
    data = notebook("%%bash\nnvidia-smi\npython -c 'import torch; torch.ones(1).cuda()'",
                    "%%writefile t.py\nimport torch\nx = torch.ones(1).cuda()")
    result = port(data)
    assert result.state is FileState.UNCHANGED and result.new == data


def test_a_broken_cell_with_cuda_is_an_error_and_nothing_is_written():
    result = port(notebook("import torch", "x = torch.ones(1).cuda(", "y = torch.ones(1).cuda()"))
    assert result.state is FileState.ERROR
    assert result.error.startswith("nb.ipynb[cell 2]:1: ")


def test_a_broken_cell_without_cuda_is_left_alone_and_the_rest_is_ported():
    data = notebook("import torch", "def broken(:\n    pass", "y = torch.ones(1).cuda()")
    result = port(data)
    assert result.state is FileState.CHANGED, result.error
    assert sources(result.new)[1] == "def broken(:\n    pass"
    assert "runtime_shim.to_device(" in sources(result.new)[2]


@pytest.mark.parametrize("data,message", [
    (b'{"cells": [cuda', "not a valid notebook"),
    (b'{"worksheets": [], "nbformat": 3, "x": "cuda"}', "nbformat 3"),
])
def test_bad_notebooks_are_errors(data, message):
    result = port(data)
    assert result.state is FileState.ERROR and message in result.error


def test_discovery_includes_notebooks(tmp_path):
    (tmp_path / "a.ipynb").write_bytes(notebook("x = 1"))
    (tmp_path / "b.py").write_text("x = 1\n")
    assert sorted(p.name for p in discover([tmp_path])) == ["a.ipynb", "b.py"]


def test_cli_diff_and_report_show_cell_numbers(tmp_path, cli_env):
    target = tmp_path / "train.ipynb"
    target.write_bytes((NB / "cuda_train.ipynb").read_bytes())
    r = run_cli([target, "--diff"], env=cli_env)
    assert r.returncode == 0, r.stderr
    name = str(target).lstrip("/")
    assert f"--- a/{name}[cell 3]" in r.stdout and f"+++ b/{name}[cell 4]" in r.stdout
    assert '-model = nn.Linear(4, 2).cuda()' in r.stdout
    r = run_cli([target, "--report"], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "[cell 4]3:" in r.stdout
    assert target.read_bytes() == (NB / "cuda_train.ipynb").read_bytes()
    r = run_cli([target], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == (NB / "cuda_train.expected.ipynb").read_bytes()


RUN_CELLS = textwrap.dedent(r'''
    import json, re, sys
    nb = json.load(open(sys.argv[1], encoding="utf-8"))
    ns = {"__name__": "__main__"}
    for n, cell in enumerate(nb["cells"], 1):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        if src.startswith("%%"):
            if not re.match(r"%%(time|timeit)\b", src):
                continue  # %%bash and friends: not Python
            src = src.split("\n", 1)[1]
        lines = []
        for line in src.split("\n"):
            m = re.match(r"^(\s*)%(?:time|timeit)\s+(.*)$", line)
            if m:
                line = m.group(1) + m.group(2)  # run the timed statement itself
            elif re.match(r"^\s*[%!]", line) or line.rstrip().endswith("?"):
                line = re.match(r"^\s*", line).group(0) + "pass"  # shell, other magics, help
            lines.append(line)
        print(f"--- cell {n}", flush=True)
        exec(compile("\n".join(lines), f"<cell {n}>", "exec"), ns)
    print("ALL CELLS RAN")
''')


def _run_cells(path, env):
    return subprocess.run([sys.executable, "-c", RUN_CELLS, str(path)], env=env, capture_output=True, text=True,
                          timeout=300)


def test_ported_notebook_runs_on_cpu(cli_env):
    torch = pytest.importorskip("torch")
    r = _run_cells(NB / "cuda_train.expected.ipynb", cli_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALL CELLS RAN" in r.stdout and "fini ✓" in r.stdout
    if not torch.cuda.is_available():
        r = _run_cells(NB / "cuda_train.ipynb", cli_env)
        assert r.returncode != 0 and "ALL CELLS RAN" not in r.stdout
