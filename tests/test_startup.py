"""What a command imports (issue 12: import only what a run needs). No timings here: the modules.

``--version`` and ``--help`` need neither LibCST, the rules, the configuration nor the project index
(nor pydantic, which recent typer versions load to coerce option values); a run that ports a file
needs LibCST but not ``libcst.codemod`` or ``libcst.matchers`` (~0.15 s: tests/test_add_imports.py).
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

HEAVY = ("libcst", "pydantic", "torchdevice_migrate.transform", "torchdevice_migrate.rules",
         "torchdevice_migrate.config", "torchdevice_migrate.project_index")

_PROBE = """\
import sys
sys.argv = ['torchdevice-migrate', *sys.argv[1:]]
from torchdevice_migrate.cli import main
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
print(repr(sorted(m for m in sys.modules if m.split('.')[0] in ('libcst', 'pydantic', 'torchdevice_migrate'))))
"""


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_heavy_module(flag):
    out = subprocess.run([sys.executable, "-c", _PROBE, flag], capture_output=True, text=True, check=True)
    loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert "torchdevice_migrate.cli" in loaded
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == [], heavy
