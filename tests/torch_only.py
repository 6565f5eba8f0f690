"""What a ``--target torch`` output may import: torch and the standard library, nothing else (issue 11)."""

from __future__ import annotations

import ast
import sys
from typing import List

ALLOWED_ROOTS = frozenset(sys.stdlib_module_names) | {"torch", "__future__"}


def foreign_imports(source: str) -> List[str]:
    """The modules ``source`` imports (anywhere, absolute imports) whose top package is not allowed.

    Relative imports (``from . import x``) are the project's own modules: the port adds none, so they
    are allowed as the input had them."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        out.extend(n for n in names if n.split(".")[0] not in ALLOWED_ROOTS)
    return out


def added_foreign_imports(before: str, after: str) -> List[str]:
    """Imports of ``after`` that are neither torch/stdlib nor already imported by ``before``."""
    had = set(foreign_imports(before))
    return [n for n in foreign_imports(after) if n not in had]
