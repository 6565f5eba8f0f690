"""Keep the lines a port changed within the project's line length (issue 11 item 3: readable diffs).

A post-pass on the migrated module, after every rule ran. A line the port changed (a line of the port
that is not a line of the original) that is longer than ``Options.line_length`` and longer than the
original line(s) it replaces (the port is never worse than the original, and never touches what the
author already kept long) is wrapped the way black and ``ruff format`` wrap a call:

* the outermost call on that line that the port rewrote (its text is not in the original lines it
  replaces; else the outermost call on the line) gets its arguments inside its own parentheses,
  on one indented line when they fit::

      x = runtime_shim.something(
          argument_a, argument_b
      )

* else one argument per line, with a trailing comma (black's "magic trailing comma")::

      x = runtime_shim.something(
          argument_a,
          argument_b,
      )

The indentation is the line's own plus four spaces (the closing parenthesis at the line's own). A line
with no call that has arguments, a call inside an f-string, or a call that spans several lines is left
as it is: nothing else is reformatted (``--reformat`` runs the project's own formatter on the changed
statements). Unchanged lines are never touched, and a second run changes nothing: the port of a port
changes no line, so no line is a changed line.

The layout is LibCST node replacement (``ParenthesizedWhitespace`` after the opening parenthesis and
after each comma), so it cannot break the syntax of the statement.
"""

from __future__ import annotations

import difflib
from typing import Dict, List, Optional, Sequence, Tuple

import libcst as cst
from libcst.metadata import CodeRange, PositionProvider

DEFAULT_LINE_LENGTH = 88
_STEP = "    "


def long_changed_lines(original: Sequence[str], new: Sequence[str], limit: int,
                       compare_lengths: bool = True) -> Dict[int, str]:
    """``{line number in new (1-based): the original text it replaces}`` for each changed line of
    ``new`` longer than ``limit`` and (``compare_lengths``) longer than the original line it replaces
    (the line at the same place of a replaced block of the same size, else the most similar one)."""
    old_set = set(original)
    if not any(len(line) > limit and line not in old_set for line in new):
        return {}  # the usual case: no diff to compute
    out: Dict[int, str] = {}
    matcher = difflib.SequenceMatcher(None, list(original), list(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old_block = list(original[i1:i2])
        for j in range(j1, j2):
            line = new[j]
            if len(line) <= limit:
                continue
            if not old_block:
                counterpart = ""
            elif i2 - i1 == j2 - j1:
                counterpart = old_block[j - j1]
            else:
                counterpart = max(old_block, key=lambda o: difflib.SequenceMatcher(None, o, line).ratio())
            if not compare_lengths or len(line) > len(counterpart):
                out[j + 1] = "\n".join(old_block)
    return out


#: Passes: a wrapped call whose argument line is still too long is wrapped again inside it (as black
#: recurses into the lines it made), a few levels at most.
_PASSES = 4


def wrap_port(module: cst.Module, new: bytes, original_code: str, limit: int) -> bytes:
    """``new`` (``module.bytes``, the port of ``original_code``) with its long changed lines wrapped.

    The transform's hook: no second code generation of the module unless a line is to be wrapped."""
    if limit <= 0:
        return new
    new_code = new.decode(module.encoding)
    if not long_changed_lines(original_code.splitlines(), new_code.splitlines(), limit):
        return new
    return wrap_long_lines(module, original_code, limit, new_code).bytes


def wrap_long_lines(module: cst.Module, original_code: str, limit: int = DEFAULT_LINE_LENGTH,
                    code: Optional[str] = None) -> cst.Module:
    """``module`` (the port of ``original_code``) with its long changed lines wrapped (see the module doc)."""
    if limit <= 0:
        return module
    before, compare = original_code, True
    for _ in range(_PASSES):
        new_code = code if code is not None else module.code
        code = None
        targets = long_changed_lines(before.splitlines(), new_code.splitlines(), limit, compare)
        if not targets:
            break
        wrapper = cst.MetadataWrapper(module)
        finder = _CallFinder(targets, new_code.splitlines(), limit)
        wrapper.visit(finder)
        plans = finder.plans()
        if not plans:
            break
        module = wrapper.module.visit(_Exploder(plans))
        # Next pass: only the lines this pass made, whatever their original was.
        before, compare = new_code, False
    return module


class _CallFinder(cst.CSTVisitor):
    """The call to wrap on each target line: as black's right-hand split, the call that closes last
    on the line whose head (the line up to its opening parenthesis) fits; else the outermost one."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, targets: Dict[int, str], lines: Sequence[str], limit: int) -> None:
        super().__init__()
        self.targets = targets
        self.lines = lines
        self.limit = limit
        self.in_fstring = 0
        #: line -> [(call, range)] of one-line calls with arguments, outer calls before inner ones
        self.calls: Dict[int, List[Tuple[cst.Call, CodeRange]]] = {}

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self.in_fstring += 1

    def leave_FormattedString(self, original_node: cst.FormattedString) -> None:
        self.in_fstring -= 1

    def visit_Call(self, node: cst.Call) -> None:
        if self.in_fstring or not node.args:
            return
        where = self.get_metadata(PositionProvider, node)
        line = where.start.line
        if where.end.line == line and line in self.targets:
            self.calls.setdefault(line, []).append((node, where))

    def plans(self) -> Dict[cst.Call, Tuple[str, int]]:
        out: Dict[cst.Call, Tuple[str, int]] = {}
        for line, calls in self.calls.items():
            text = self.lines[line - 1]
            indent = text[: len(text) - len(text.lstrip())]
            pick = None
            # The call that closes last first (an outer call closes after the calls inside it).
            for call, where in sorted(calls, key=lambda c: -c[1].end.column):
                head = where.start.column + len(_code(call.func)) + len(_code(call.whitespace_after_func)) + 1
                if head <= self.limit:
                    pick = call
                    break
            if pick is None:
                pick = min(calls, key=lambda c: c[1].start.column)[0]
            out[pick] = (indent, self.limit)
        return out


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _newline(indent: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), empty_lines=[], indent=False,
                                       last_line=cst.SimpleWhitespace(indent))


class _Exploder(cst.CSTTransformer):
    def __init__(self, plans: Dict[cst.Call, Tuple[str, int]]) -> None:
        super().__init__()
        self.plans = plans

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        plan = self.plans.get(original_node)
        if plan is None:
            return updated_node
        indent, limit = plan
        inner = indent + _STEP
        args = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace(""))
                for a in updated_node.args]
        # Black's first choice: the arguments on one line of their own when that line fits (always for
        # one argument: no comma to split at; and ``f(x for x in y)`` takes no trailing comma).
        hugged = ", ".join(_code(a) for a in args)
        if len(args) == 1 or len(inner) + len(hugged) <= limit:
            new_args = [a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                        for a in args[:-1]]
            new_args.append(args[-1].with_changes(whitespace_after_arg=_newline(indent)))
        else:  # one argument per line, with a trailing comma
            new_args = [a.with_changes(comma=cst.Comma(whitespace_after=_newline(inner))) for a in args[:-1]]
            new_args.append(args[-1].with_changes(comma=cst.Comma(whitespace_after=_newline(indent))))
        return updated_node.with_changes(whitespace_before_args=_newline(inner), args=new_args)


__all__ = ["DEFAULT_LINE_LENGTH", "long_changed_lines", "wrap_long_lines", "wrap_port"]
