"""Jupyter notebooks: port the code cells of an ``.ipynb`` file one by one.

The notebook is read with :mod:`json` and written back in the style it was read in (indent,
key order, ``ensure_ascii``, line endings, trailing newline), so a notebook with nothing to port
is returned byte for byte and a ported one differs only in the ``source`` of the cells that
changed. Outputs, metadata, execution counts and cell ids are kept.

The code cells are migrated together, as one module in notebook order (with a sentinel
statement between cells), so that ``import torch`` in cell 2 is known in cell 5, as when the notebook
is run top to bottom; then the module is split back into its cells. The shim import the port needs
is put once, at the top of the first code cell that uses the shim (every later cell can use it;
running a cell before it after a restart fails exactly as it would for ``import torch``). Findings
carry ``Finding.cell``, the 1-based position of the cell in the notebook (markdown cells count, as
in Jupyter's and VS Code's numbering), and line numbers within the cell. A cell that does not
parse is left alone if it mentions nothing CUDA-like; otherwise the notebook is an error and is
left untouched, like a ``.py`` file that does not parse.

IPython syntax is kept exactly: in a cell that does not parse as Python, lines that start with
``%``, ``!``, ``?`` (or ``x = !cmd``, ``x = %magic``) and help lines ending with ``?`` are replaced
by ``pass`` placeholders of the same indentation, the cell is migrated, and the lines are put back.
A cell magic ``%%time``/``%%timeit``/``%%capture``/``%%prun`` keeps its first line and the rest is
ported; a cell under any other cell magic (``%%bash``, ``%%writefile``, ...) is left alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import libcst as cst

from .findings import FileResult, FileState, Finding
from .transform import TRIGGER, Options, SourceError, migrate_source, parse

# Cell magics whose body is Python run in the kernel.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}

_LINE_MAGIC = re.compile(r"^[ \t]*(?:%|!|\?{1,2}[\w.])")  # %magic, %%magic, !shell, ?obj
_HELP = re.compile(r"^[ \t]*[\w.\[\]()'\"]+\?{1,2}[ \t]*$")  # obj? / obj??
_ASSIGN_MAGIC = re.compile(r"^[ \t]*[\w.\[\]'\", ]+=[ \t]*[%!]")  # files = !ls, t = %timeit -o f()
# %time/%timeit/%prun STATEMENT: the statement is Python (group 1: the magic and its options).
_PYTHON_LINE_MAGIC = re.compile(r"^([ \t]*%(?:time|timeit|prun)[ \t]+(?:-\w+(?:[ \t]+\d+)?[ \t]+)*)(.*)$")
_CELL_MAGIC = re.compile(r"^%%(\w+)")


class NotebookError(Exception):
    def __init__(self, cell: Optional[int], line: int, reason: str) -> None:
        super().__init__(reason)
        self.cell, self.line, self.reason = cell, line, reason


def migrate_notebook(source: bytes, display: str, options: Options) -> FileResult:
    """Migrate the code cells of one notebook; never raises for a bad notebook, never writes."""
    try:
        new, findings = _migrate(source, display, options)
    except NotebookError as e:
        return FileResult.failed(display, e.line, e.reason, original=source, cell=e.cell)
    state = FileState.CHANGED if new != source else FileState.UNCHANGED
    return FileResult(display, state, original=source, new=new, findings=findings)


def _migrate(source: bytes, display: str, options: Options) -> Tuple[bytes, List[Finding]]:
    if not TRIGGER.search(source):
        return source, []  # nothing CUDA-like anywhere: not even worth decoding
    try:
        text = source.decode("utf-8")
        nb = json.loads(text)
    except UnicodeDecodeError as e:
        raise NotebookError(None, 1, f"cannot decode notebook as UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise NotebookError(None, e.lineno, f"not a valid notebook (JSON error: {e.msg})") from None
    except RecursionError:
        raise NotebookError(None, 1, "cannot read notebook: its JSON is nested too deeply") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        if isinstance(nb, dict) and "worksheets" in nb:
            raise NotebookError(None, 1, "nbformat 3 notebooks are not supported; convert it first with "
                                         "`jupyter nbconvert --to notebook --nbformat 4`")
        raise NotebookError(None, 1, "not a notebook: no list of cells")
    if not _is_python(nb):
        return source, []

    maybe_cells = [_Cell.of(index + 1, cell) for index, cell in enumerate(nb["cells"])]
    cells = [c for c in maybe_cells if c is not None]
    new_code, findings = _migrate_cells(cells, display, options)
    changed = False
    for cell, code in zip(cells, new_code):
        if code != cell.code:
            raw = nb["cells"][cell.number - 1]["source"]
            nb["cells"][cell.number - 1]["source"] = split_source(code) if isinstance(raw, list) else code
            changed = True
    if not changed:
        return source, findings
    return dumps_like(text, nb).encode("utf-8"), findings


@dataclasses.dataclass
class _Cell:
    """A code cell's Python: ``head`` (a kept ``%%time``-like line) and the ``body`` to migrate."""

    number: int
    code: str
    head: str
    body: str
    restore: Optional[Callable[[str], str]] = None

    @property
    def offset(self) -> int:  # lines of the cell before the body
        return 1 if self.head else 0

    @classmethod
    def of(cls, number: int, cell: Any) -> Optional[_Cell]:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            return None
        raw = cell.get("source", "")
        code = "".join(raw) if isinstance(raw, list) and all(isinstance(x, str) for x in raw) else raw
        if not isinstance(code, str):
            return None
        head, body = "", code
        m = _CELL_MAGIC.match(code.lstrip(" \t"))
        if m:
            if m.group(1) not in PYTHON_CELL_MAGICS or "\n" not in code:
                return None  # %%bash, %%writefile, ...: not Python run in the kernel
            first, body = code.split("\n", 1)
            head = first + "\n"
        masked, restore = mask_ipython(body)
        if restore is not None and _parses(body):
            masked, restore = body, None  # e.g. a continuation line starting with '%' (modulo)
        elif restore is not None and not _parses(masked):
            masked, restore = mask_ipython(body, python_magics=False)
        return cls(number, code, head, masked, restore)


def _parses(code: str) -> bool:
    try:
        cst.parse_module(code)
        return True
    except Exception:
        return False


def _migrate_cells(cells: List[_Cell], display: str, options: Options) -> Tuple[List[str], List[Finding]]:
    """Migrate the cells as one module, in notebook order, so that names imported or defined in one
    cell are known in the cells after it; return each cell's new code and the findings."""
    included = [True] * len(cells)
    token = "__tdm_cell__"
    while any(token in c.body for c in cells):
        token = "_" + token
    while True:
        module, starts = _join(cells, included, token)
        try:
            result = migrate_source(module.encode("utf-8"), display, options)
            break
        except SourceError as e:
            # Find the broken cells by parsing each alone (an unclosed bracket is reported further on).
            broken = False
            for k, cell in enumerate(cells):
                if not included[k]:
                    continue
                try:
                    parse(cell.body.encode("utf-8"))
                except SourceError as ce:
                    if TRIGGER.search(cell.body.encode("utf-8")):
                        raise NotebookError(cell.number, max(ce.line, 1) + cell.offset, ce.reason) from None
                    included[k] = False  # a broken cell with nothing to port: leave it alone, port the rest
                    broken = True
            if not broken:
                at = _cell_at(starts, e.line)
                number = cells[at].number if at is not None else None
                line = max(e.line - dict(starts)[at] + 1, 1) + cells[at].offset if at is not None else 1
                raise NotebookError(number, line, e.reason) from None
    new_module = result.new.decode("utf-8")
    findings = []
    for f in result.findings:
        at = _cell_at(starts, f.line)
        if at is None:  # pragma: no cover - findings are on cell lines
            continue
        delta = cells[at].offset - dict(starts)[at] + 1
        findings.append(dataclasses.replace(f, path=display, cell=cells[at].number, line=f.line + delta,
                                            end_line=f.end_line + delta if f.end_line else f.end_line))
    if new_module == module:
        return [c.code for c in cells], findings
    return _split(new_module, cells, included, token), findings


def _join(cells: List[_Cell], included: List[bool], token: str):
    parts, starts, line = [], [], 1
    for k, cell in enumerate(cells):
        if not included[k]:
            continue
        body = cell.body if cell.body.endswith("\n") or not cell.body else cell.body + "\n"
        parts.append(f"pass  # {token}{k}\n{body}")
        starts.append((k, line + 1))
        line += 1 + body.count("\n")
    return "".join(parts), starts


def _cell_at(starts, line: int) -> Optional[int]:
    found = None
    for k, start in starts:
        if start - 1 <= line:
            found = k
    return found


def _split(module: str, cells: List[_Cell], included: List[bool], token: str) -> List[str]:
    sentinel = re.compile(r"^pass  # " + re.escape(token) + r"(\d+)\r?\n?$")
    prefix: List[str] = []
    segments: Dict[int, List[str]] = {}
    current: Optional[int] = None
    for line in module.splitlines(keepends=True):
        m = sentinel.match(line)
        if m:
            current = int(m.group(1))
            segments[current] = []
        elif current is None:
            prefix.append(line)
        else:
            segments[current].append(line)
    if sorted(segments) != [k for k in range(len(cells)) if included[k]]:
        raise NotebookError(None, 1, "internal error: cells could not be told apart after porting; left untouched")
    out = []
    for k, cell in enumerate(cells):
        if not included[k]:
            out.append(cell.code)
            continue
        body = "".join(segments[k])
        if not cell.body.endswith("\n") and body.endswith("\n"):
            body = body[:-1]
        if cell.restore is not None:
            body = cell.restore(body)
        out.append(cell.head + body)
    added = "".join(prefix)
    if added.strip():
        # Imports the port added (the shim's): into the first cell that uses them.
        names = re.findall(r"(?:^import [\w.]+ as (\w+)|^import (\w+)|^from [\w.]+ import (?:\w+ as )?(\w+))$",
                           added, re.MULTILINE)
        names = [n for group in names for n in group if n]
        for k, cell in enumerate(cells):
            if included[k] and any(re.search(rf"\b{re.escape(n)}\b", out[k]) for n in names):
                out[k] = cell.head + added + out[k][len(cell.head):]
                break
        else:
            k = included.index(True)
            out[k] = cells[k].head + added + out[k][len(cells[k].head):]
    return out


def split_source(code: str) -> List[str]:
    """A cell's text as nbformat's list of lines (split after each ``\\n`` only)."""
    lines = [line + "\n" for line in code.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _is_python(nb: dict) -> bool:
    meta: dict = nb["metadata"] if isinstance(nb.get("metadata"), dict) else {}
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        value = meta.get(key, {}).get(field) if isinstance(meta.get(key), dict) else None
        if isinstance(value, str) and value.lower() not in ("python", "python3", "ipython", "ipython3"):
            return False
    return True


def mask_ipython(code: str, python_magics: bool = True):
    """Replace IPython-only lines by ``pass`` placeholders; return (masked, restore) or (code, None).

    With ``python_magics``, ``%time``/``%timeit``/``%prun`` lines keep their Python statement (so it
    is ported too) and only the magic prefix is set aside.
    """
    lines = code.splitlines(keepends=True)
    token = "__tdm_ipython__"
    while token in code:
        token = "_" + token
    kept = {}
    out = []
    continued = False
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        end = line[len(body):]
        key = f"{token}{i}"
        m = _PYTHON_LINE_MAGIC.match(body) if python_magics and not continued else None
        if m and m.group(2).strip() and not body.endswith("\\"):
            indent = body[: len(body) - len(body.lstrip())]
            kept[key] = m.group(1)
            out.append(f"{indent}{m.group(2)}  # {key}{end}")
        elif continued or _LINE_MAGIC.match(body) or _HELP.match(body) or _ASSIGN_MAGIC.match(body):
            indent = body[: len(body) - len(body.lstrip())]
            kept[key] = body
            out.append(f"{indent}pass  # {key}{end}")
            continued = body.endswith("\\")
        else:
            out.append(line)
    if not kept:
        return code, None
    placeholder = re.compile(r"^[ \t]*pass  # (" + re.escape(token) + r"\d+)$")
    statement = re.compile(r"^([ \t]*)(.*)  # (" + re.escape(token) + r"\d+)$")

    def restore(new: str) -> str:
        restored = []
        for line in new.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            m = placeholder.match(body)
            if m:
                restored.append(kept[m.group(1)] + line[len(body):])
                continue
            m = statement.match(body)
            if m and m.group(3) in kept:
                restored.append(kept[m.group(3)] + m.group(2) + line[len(body):])
                continue
            restored.append(line)
        return "".join(restored)

    return "".join(out), restore


# ---------------------------------------------------------------------------
# JSON written back in the notebook's own style
# ---------------------------------------------------------------------------

def detect_style(text: str) -> dict:
    """``json.dumps`` arguments (and line ending, trailing text) that reproduce ``text``."""
    body = text.rstrip("\r\n \t")
    trailing = text[len(body):]
    newline = "\r\n" if "\r\n" in body else "\n"
    second = body.split("\n", 2)[1] if body.count("\n") >= 1 else ""
    detected = len(second) - len(second.lstrip(" ")) if second.strip() else None
    non_ascii = any(ord(c) > 127 for c in body)
    return {"indent": detected if detected else (None if "\n" not in body else 0),
            "ensure_ascii": not non_ascii and bool(re.search(r"\\u[0-9a-fA-F]{4}", body)),
            "newline": newline, "trailing": trailing}


def _dumps(obj: Any, style: dict) -> str:
    out = json.dumps(obj, indent=style["indent"], ensure_ascii=style["ensure_ascii"])
    if style["newline"] != "\n":
        out = out.replace("\n", style["newline"])  # newlines in strings are escaped: only layout changes
    return out + style["trailing"]


def dumps_like(original: str, obj: Any) -> str:
    """Serialize ``obj`` in the style of ``original`` (the same notebook before the change).

    The style is the first of the likely ones (detected indent, then 1, 2, 4 spaces, compact;
    ``ensure_ascii`` off then on) under which the original reproduces itself exactly; if none
    does (a hand-formatted file), the detected indent and ``ensure_ascii`` are used.
    """
    base = detect_style(original)
    try:
        before = json.loads(original)
    except ValueError:  # pragma: no cover - callers pass a file that loaded
        before = None
    if before is not None:
        for indent in dict.fromkeys([base["indent"], 1, 2, 4, None]):
            for ensure_ascii in (base["ensure_ascii"], not base["ensure_ascii"]):
                style = dict(base, indent=indent, ensure_ascii=ensure_ascii)
                if _dumps(before, style) == original:
                    return _dumps(obj, style)
    return _dumps(obj, base)


# ---------------------------------------------------------------------------
# Diffs by cell
# ---------------------------------------------------------------------------

def _cell_sources(data: bytes) -> List[Optional[str]]:
    try:
        cells = json.loads(data.decode("utf-8")).get("cells", [])
    except (ValueError, AttributeError, RecursionError):
        return []
    sources = []
    for cell in cells:
        raw = cell.get("source", "") if isinstance(cell, dict) else ""
        sources.append("".join(raw) if isinstance(raw, list) else raw)
    return sources


def cell_diff(path: str, original: bytes, new: bytes) -> str:
    """A unified diff of the cells that changed, one section per cell, named ``path[cell N]``."""
    old_cells, new_cells = _cell_sources(original), _cell_sources(new)
    out: List[str] = []
    for i, (old, now) in enumerate(zip(old_cells, new_cells)):
        if old == now:
            continue
        name = f"{path.lstrip('/')}[cell {i + 1}]"
        # A cell's last line has no newline as a rule: no "No newline at end" marker for that.
        old_lines = [x if x.endswith("\n") else x + "\n" for x in (old or "").splitlines(keepends=True)]
        new_lines = [x if x.endswith("\n") else x + "\n" for x in (now or "").splitlines(keepends=True)]
        out.extend(difflib.unified_diff(old_lines, new_lines, fromfile=f"a/{name}", tofile=f"b/{name}"))
    return "".join(out)
