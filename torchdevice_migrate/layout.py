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

* the same for the brackets of a list, set, dict or tuple literal (elements one per line when they do
  not fit on one), and for an expression in parentheses (split at its operators when it does not fit);

* the right-hand side of an assignment or ``return``, or an ``if``/``while`` test, that black puts in
  parentheses of its own (a tuple, a conditional expression, two or more operators of one kind, or one
  operator not ending with a call) gets them: on one line inside when it fits, else split at its
  delimiters (a tuple's commas with a trailing comma, ``if``/``else``, the operators leading).

The result is what ``ruff format`` writes for those statements (tests/test_layout.py, fixtures/layout).
The indentation is the line's own plus four spaces (the closing parenthesis at the line's own). A line
with nothing of the above, a call inside an f-string, or a call that spans several lines is left
as it is: nothing else is reformatted (``--reformat`` runs the project's own formatter on the changed
statements). Unchanged lines are never touched, and a second run changes nothing: the port of a port
changes no line, so no line is a changed line.

The layout is LibCST node replacement (``ParenthesizedWhitespace`` after the opening parenthesis and
after each comma), so it cannot break the syntax of the statement.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import CodeRange, PositionProvider

from .rules.base import NodeVisitor, _Positions, _PositionState, walk

if TYPE_CHECKING:  # pragma: no cover
    from .options import Options

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
    for i1, i2, j1, j2 in _changed_blocks(original, new):
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


def _changed_blocks(original: Sequence[str], new: Sequence[str]) -> Iterator[Tuple[int, int, int, int]]:
    """``(i1, i2, j1, j2)`` of each block that differs (``difflib``'s opcodes other than ``equal``).
    The lines both texts begin and end with are the same lines (a port changes a few lines here and
    there): only what lies between is diffed (a few ms instead of a second on a 200 KB file)."""
    head = 0
    while head < len(original) and head < len(new) and original[head] == new[head]:
        head += 1
    tail = 0
    while tail < len(original) - head and tail < len(new) - head and original[-1 - tail] == new[-1 - tail]:
        tail += 1
    matcher = difflib.SequenceMatcher(None, list(original[head:len(original) - tail]),
                                      list(new[head:len(new) - tail]), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            yield i1 + head, i2 + head, j1 + head, j2 + head


#: Passes: a wrapped call whose argument line is still too long is wrapped again inside it (as black
#: recurses into the lines it made), a few levels at most.
_PASSES = 4


def lay_out(module: cst.Module, new: bytes, original_code: str, options: Options) -> bytes:
    """The transform's hook (``Options.layout``): the added shim import at its isort place, then the
    long changed lines wrapped. ``new`` is ``module.bytes``; returned as it is when nothing moves."""
    placed = place_shim_import(module, original_code, options.shim_module)
    if placed is not module:
        new = _moved_bytes(module, placed, new)
        module = placed
    return wrap_port(module, new, original_code, options.line_length)


def _moved_bytes(old: cst.Module, new: cst.Module, old_bytes: bytes) -> bytes:
    """``new.bytes`` where ``new`` differs from ``old`` in its first statements only (the moved import):
    only those are generated again, the rest of ``old_bytes`` is kept (no second code generation of
    the whole module, as costly as the first)."""
    m = next((i for i, (a, b) in enumerate(zip(reversed(old.body), reversed(new.body))) if a is not b), None)
    if m is None or len(old.body) != len(new.body):
        return new.bytes
    cut = len(old.body) - m  # the statements from ``cut`` on are the same nodes in both
    old_head = old.with_changes(body=old.body[:cut], footer=()).bytes
    if not old_bytes.startswith(old_head) or cut >= len(old.body):
        return new.bytes
    return new.with_changes(body=new.body[:cut], footer=()).bytes + old_bytes[len(old_head):]


def wrap_port(module: cst.Module, new: bytes, original_code: str, limit: int) -> bytes:
    """``new`` (``module.bytes``, the port of ``original_code``) with its long changed lines wrapped.

    The transform's hook: no second code generation of the module unless a line is to be wrapped."""
    if limit <= 0:
        return new
    new_code = new.decode(module.encoding)
    targets = long_changed_lines(original_code.splitlines(), new_code.splitlines(), limit)
    if not targets:
        return new
    part = _statements_around(module, new_code, targets)
    if part is not None:  # only the module-level statements that hold the lines are generated again
        sub, first, last, lines = part
        _, code = _wrap(sub, original_code, limit, "".join(lines[first - 1:last]),
                        {line - first + 1: text for line, text in targets.items()})
        return ("".join(lines[:first - 1]) + code + "".join(lines[last:])).encode(module.encoding)
    wrapped, code = _wrap(module, original_code, limit, new_code, targets)
    return code.encode(wrapped.encoding)


def _statements_around(module: cst.Module, code: str, targets: Mapping[int, str]
                       ) -> Optional[Tuple[cst.Module, int, int, List[str]]]:
    """``(part, first, last, lines)``: ``part`` is ``module`` cut down to the run of its module-level
    statements that holds every line of ``targets``, whose code is lines ``first..last`` (1-based) of
    ``code`` (``lines``, line ends kept). The wrap of a statement depends on that statement alone, so
    wrapping ``part`` and putting its code in place of those lines is wrapping the module, without
    generating the rest of it (three times on a large file) again. None when the statements cannot be
    told apart exactly (the caller wraps the whole module)."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    body = module.body
    ends: List[int] = []  # the last line of each module-level statement of ``module``
    i = 0
    for statement in body:
        n = len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
        group = tree.body[i:i + n]
        if len(group) != n:
            return None
        ends.append(max(s.end_lineno or s.lineno for s in group))
        i += n
    if i != len(tree.body) or not body:
        return None
    starts = [len(module.header) + 1] + [e + 1 for e in ends[:-1]]  # each with its leading lines
    wanted = [k for k, (a, b) in enumerate(zip(starts, ends)) if any(a <= t <= b for t in targets)]
    if not wanted or not all(any(a <= t <= b for a, b in zip(starts, ends)) for t in targets):
        return None
    lo, hi = wanted[0], wanted[-1]
    part = module.with_changes(header=(), body=body[lo:hi + 1], footer=(), has_trailing_newline=True)
    lines = code.splitlines(keepends=True)
    first, last = starts[lo], ends[hi]
    if part.code != "".join(lines[first - 1:last]):
        return None  # a comment that LibCST counts with the previous statement, a line without its end...
    return part, first, last, lines


def wrap_long_lines(module: cst.Module, original_code: str, limit: int = DEFAULT_LINE_LENGTH,
                    code: Optional[str] = None) -> cst.Module:
    """``module`` (the port of ``original_code``) with its long changed lines wrapped (see the module doc)."""
    return _wrap(module, original_code, limit, code)[0]


def _wrap(module: cst.Module, original_code: str, limit: int, code: Optional[str] = None,
          first_targets: Optional[Dict[int, str]] = None) -> Tuple[cst.Module, str]:
    """``wrap_long_lines`` and the code of the module it returns. Each pass generates the code once, with
    the positions (``_positions_and_code``), instead of a copy of the module, positions and code apart.
    ``first_targets``: the first pass's ``long_changed_lines`` of ``code``, when the caller has them."""
    if limit <= 0:
        return module, module.code if code is None else code
    before, compare = original_code, True
    positions = None
    for _ in range(_PASSES):
        if code is None:  # the code alone first: usually no line is left to wrap, and no position needed
            code = module.code
        if first_targets is not None:
            targets, first_targets = first_targets, None
        else:
            targets = long_changed_lines(before.splitlines(), code.splitlines(), limit, compare)
        if not targets:
            return module, code
        if positions is None:
            module, positions, _ = _positions_and_code(module)
        finder = _CallFinder(targets, code.splitlines(), limit)
        finder.metadata = {PositionProvider: positions}  # type: ignore[dict-item]
        walk(finder, module)
        plans = finder.plans()
        if not plans:
            return module, code
        module = module.visit(_Exploder(plans, list(finder.values.values()), finder.keep))
        # Next pass: only the lines this pass made, whatever their original was.
        before, compare, code, positions = code, False, None, None
    return module, module.code


def _positions_and_code(module: cst.Module) -> Tuple[cst.Module, Mapping[cst.CSTNode, CodeRange], str]:
    """``(module, positions, code)``: what ``MetadataWrapper(module).resolve(PositionProvider)`` gives and
    ``module.code``, from one code generation and without the wrapper's copy of the module. A node
    object the port placed twice in the tree (one position for two places) is the one case that needs
    the copy: then the positions are those of a copy (``deep_clone``), which is returned."""
    for attempt in (0, 1):
        provider = PositionProvider()
        state = _TwiceState(default_indent=module.default_indent, default_newline=module.default_newline,
                            provider=provider)
        module._codegen(state)
        if not state.twice or attempt:
            return module, _Positions(provider._computed), "".join(state.tokens)  # type: ignore[arg-type]
        module = module.deep_clone()
    raise AssertionError("unreachable")


#: Leaves that rules share between places (a ``SimpleWhitespace("")``, a ``Dot``): their position is
#: never asked, no other node's position is taken from theirs, and nothing to wrap lies inside them.
_LEAVES = (cst.BaseParenthesizableWhitespace, cst.TrailingWhitespace, cst.Newline, cst.EmptyLine, cst.Comment,
           cst.Comma, cst.Dot, cst.AssignEqual, cst.Colon, cst.Semicolon, cst.LeftParen, cst.RightParen,
           cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace,
           cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp)


class _TwiceState(_PositionState):
    """``_PositionState`` (rules/base.py) that notes a node generated twice (a node object in two places),
    other than a shared leaf (``_LEAVES``)."""

    twice = False

    def before_codegen(self, node: cst.CSTNode) -> None:
        if node in self.provider._computed and not isinstance(node, _LEAVES):
            self.twice = True
        super().before_codegen(node)


class _CallFinder(NodeVisitor):
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
        #: line -> the right-hand side to put in parentheses of its own
        self.values: Dict[int, cst.BaseExpression] = {}
        #: the nodes from the module down to each node recorded above (what the layout transformer visits)
        self.keep: Set[cst.CSTNode] = set()
        self._path: List[cst.CSTNode] = []

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        self.in_fstring += 1

    def leave_FormattedString(self, original_node: cst.FormattedString) -> None:
        self.in_fstring -= 1

    def _value(self, value: Optional[cst.BaseExpression]) -> None:
        """The right-hand side of an assignment or ``return``, an ``if``/``while`` test: in parentheses
        of its own when black would put it there (a tuple, a conditional expression, a chain of two or more operators of
        one kind, or one operator that does not end with a call)."""
        if value is None or self.in_fstring or getattr(value, "lpar", None) or not _wants_parens(value):
            return
        where = self.get_metadata(PositionProvider, value)
        if where.start.line == where.end.line and where.start.line in self.targets:
            self.values[where.start.line] = value
            self.keep.update(self._path)
            self.keep.add(value)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._value(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._value(node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._value(node.value)

    def visit_Return(self, node: cst.Return) -> None:
        self._value(node.value)

    def visit_If(self, node: cst.If) -> None:
        self._value(node.test)

    def visit_While(self, node: cst.While) -> None:
        self._value(node.test)

    def visit_Call(self, node: cst.Call) -> None:
        if self.in_fstring or not node.args:
            return
        where = self.get_metadata(PositionProvider, node)
        line = where.start.line
        if where.end.line == line and line in self.targets:
            self.calls.setdefault(line, []).append((node, where))
            self.keep.update(self._path)

    def _bracket(self, node: cst.BaseExpression) -> None:
        """A collection literal, or an expression in parentheses: split inside its brackets as a call."""
        if self.in_fstring or isinstance(node, (cst.Call, cst.FormattedString)):
            return
        if isinstance(node, (cst.List, cst.Set, cst.Dict)) and not node.elements:
            return
        if not isinstance(node, (cst.List, cst.Set, cst.Dict)) and not getattr(node, "lpar", None):
            return
        where = self.get_metadata(PositionProvider, node)
        # (A node's position leaves out its own parentheses: they must be on the line too.)
        if where.start.line == where.end.line and where.start.line in self.targets and "\n" not in _code(node):
            self.calls.setdefault(where.start.line, []).append((node, where))  # type: ignore[arg-type]
            self.keep.update(self._path)
            self.keep.add(node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        self._path.append(node)
        if isinstance(node, cst.BaseExpression):
            self._bracket(node)
        visit_children = super().on_visit(node)
        # Only what spans a target line can hold a node to wrap: the rest is not walked (the work is
        # proportional to the statements on those lines, not to the module). (The position of a function
        # or class, and of a block, starts after the decorators of its first line: only the end counts.)
        where = self.get_metadata(PositionProvider, node, None)
        if where is not None:
            first = 1 if getattr(node, "decorators", None) or isinstance(node, cst.IndentedBlock) else where.start.line
            if not any(first <= t <= where.end.line for t in self.targets):
                return False
        return visit_children

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self._path.pop()

    def plans(self) -> Dict[cst.CSTNode, Tuple[str, int]]:
        out: Dict[cst.CSTNode, Tuple[str, int]] = {}
        for line, value in self.values.items():
            text = self.lines[line - 1]
            out[value] = (text[: len(text) - len(text.lstrip())], self.limit)
        for line, calls in self.calls.items():
            if line in self.values:
                continue
            text = self.lines[line - 1]
            indent = text[: len(text) - len(text.lstrip())]
            pick = None
            # The call that closes last first (an outer call closes after the calls inside it).
            for call, where in sorted(calls, key=lambda c: -c[1].end.column):
                head = where.start.column + 1
                if isinstance(call, cst.Call):
                    head += len(_code(call.func)) + len(_code(call.whitespace_after_func))
                if head <= self.limit:
                    pick = call
                    break
            if pick is None:
                pick = min(calls, key=lambda c: c[1].start.column)[0]
            out[pick] = (indent, self.limit)
        return out


def elements_last(node: cst.BaseExpression) -> cst.CSTNode:
    return node.elements[-1]  # type: ignore[attr-defined]


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _newline(indent: str) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(first_line=cst.TrailingWhitespace(), empty_lines=[], indent=False,
                                       last_line=cst.SimpleWhitespace(indent))


_GROUPS = ((cst.Add, cst.Subtract), (cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo, cst.MatrixMultiply),
           (cst.Power,), (cst.BitOr,), (cst.BitXor,), (cst.BitAnd,), (cst.LeftShift, cst.RightShift),
           (cst.And,), (cst.Or,))


def _same_group(a: cst.CSTNode, b: cst.CSTNode) -> bool:
    return any(isinstance(a, g) and isinstance(b, g) for g in _GROUPS)


def _spine(node: cst.BaseExpression) -> List[cst.BaseExpression]:
    """The operations of a left-nested chain of one operator group (``a + b - c``), outermost first."""
    out: List[cst.BaseExpression] = []
    current = node
    while isinstance(current, (cst.BinaryOperation, cst.BooleanOperation)) and not current.lpar:
        if out and not _same_group(current.operator, out[0].operator):  # type: ignore[attr-defined]
            break
        out.append(current)
        current = current.left
    return out


def _wants_parens(value: cst.BaseExpression) -> bool:
    if isinstance(value, (cst.Tuple, cst.IfExp)):
        return True
    # One operator: split at the call it ends with, unless it ends with no call or an empty one.
    ends_with_call = _code(value).endswith(")") and not _code(value).endswith("()")
    if isinstance(value, cst.Comparison):
        return len(value.comparisons) > 1 or not ends_with_call
    if isinstance(value, (cst.BinaryOperation, cst.BooleanOperation)):
        return len(_spine(value)) > 1 or not ends_with_call
    return False


def _parenthesized(value: cst.BaseExpression, indent: str, limit: int) -> cst.BaseExpression:
    """``value`` in parentheses of its own: on one line inside them when it fits, else split at its
    delimiters (a tuple's commas, with a trailing comma; ``if``/``else``; the chain's operators)."""
    inner = indent + _STEP
    if len(inner) + len(_code(value)) > limit:
        if isinstance(value, cst.Tuple) and value.elements:
            elements = list(value.elements)
            value = value.with_changes(elements=[
                e.with_changes(comma=cst.Comma(whitespace_after=_newline(inner) if i < len(elements) - 1
                                               else cst.SimpleWhitespace("")))
                for i, e in enumerate(elements)])
        elif isinstance(value, cst.IfExp):
            value = value.with_changes(whitespace_before_if=_newline(inner), whitespace_before_else=_newline(inner))
        elif isinstance(value, cst.Comparison):
            value = value.with_changes(comparisons=[
                c.with_changes(operator=c.operator.with_changes(whitespace_before=_newline(inner)))
                for c in value.comparisons])
        elif isinstance(value, (cst.BinaryOperation, cst.BooleanOperation)):
            value = _split_spine(value, len(_spine(value)), inner)
    return value.with_changes(lpar=[cst.LeftParen(whitespace_after=_newline(inner))],
                              rpar=[cst.RightParen(whitespace_before=_newline(indent))])


def _split_spine(node: cst.BaseExpression, depth: int, inner: str) -> cst.BaseExpression:
    if depth == 0 or not isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
        return node
    operator = node.operator.with_changes(whitespace_before=_newline(inner))
    return node.with_changes(left=_split_spine(node.left, depth - 1, inner), operator=operator)


class _Exploder(cst.CSTTransformer):
    def __init__(self, plans: Dict[cst.CSTNode, Tuple[str, int]], values: Sequence[cst.CSTNode] = (),
                 keep: Optional[Set[cst.CSTNode]] = None) -> None:
        super().__init__()
        self.plans = plans
        self.values = set(values)
        self.keep = keep  # the nodes on the way to the planned ones (None: every node)

    def on_visit(self, node: cst.CSTNode) -> bool:
        visit_children = super().on_visit(node)
        return visit_children and (self.keep is None or node in self.keep)

    def on_leave(self, original_node, updated_node):  # type: ignore[override]
        updated = super().on_leave(original_node, updated_node)
        plan = self.plans.get(original_node)
        if plan is not None and not isinstance(original_node, cst.Call):
            if original_node in self.values:
                return _parenthesized(updated, *plan)
            return self._collection(updated, *plan)
        return updated

    def _collection(self, node: cst.BaseExpression, indent: str, limit: int) -> cst.BaseExpression:
        """A collection literal or parenthesized expression split inside its brackets, as a call is."""
        if not isinstance(node, (cst.List, cst.Set, cst.Dict, cst.Tuple)):  # (expression): as a right-hand side
            return _parenthesized(node.with_changes(lpar=[], rpar=[]), indent, limit)
        inner = indent + _STEP
        elements = list(getattr(node, "elements", ()) or ())
        single = isinstance(node, cst.Tuple) and len(elements) == 1  # (x,) keeps its comma
        body = _code(node.with_changes(lpar=[], rpar=[]) if not isinstance(node, (cst.List, cst.Set, cst.Dict))
                     else node)[0 if not isinstance(node, (cst.List, cst.Set, cst.Dict)) else 1:]
        if isinstance(node, (cst.List, cst.Set, cst.Dict)):
            body = body[:-1]
        if elements and not single and len(inner) + len(body.strip()) > limit:  # one element per line
            elements = [e.with_changes(comma=cst.Comma(whitespace_after=_newline(inner))) for e in elements[:-1]]
            elements.append(elements_last(node).with_changes(comma=cst.Comma()))
            node = node.with_changes(elements=elements)
        if isinstance(node, cst.List):
            return node.with_changes(lbracket=node.lbracket.with_changes(whitespace_after=_newline(inner)),
                                     rbracket=node.rbracket.with_changes(whitespace_before=_newline(indent)))
        if isinstance(node, (cst.Set, cst.Dict)):
            return node.with_changes(lbrace=node.lbrace.with_changes(whitespace_after=_newline(inner)),
                                     rbrace=node.rbrace.with_changes(whitespace_before=_newline(indent)))
        lpar, rpar = list(node.lpar), list(node.rpar)  # type: ignore[attr-defined]
        lpar[0] = lpar[0].with_changes(whitespace_after=_newline(inner))
        rpar[-1] = rpar[-1].with_changes(whitespace_before=_newline(indent))
        return node.with_changes(lpar=lpar, rpar=rpar)

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


# ---- the shim import at its isort place ----------------------------------------------------------------
#
# isort and ruff's ``I`` rules sort each section of an import block (sections are separated by blank
# lines; ``import x`` lines before ``from x import y`` lines, by module name, case-insensitively).
# ``runtime_shim`` is a third-party module, like torch: its place is in the section of the file's first
# torch import, among the plain ``import`` lines, in alphabetical order - usually right before
# ``import torch``. But ``import runtime_shim`` imports torch: placed above a module the original
# imported before torch (``import scipy``, ``import tensorflow``: they sort between ``runtime_shim`` and
# ``torch``), torch would be imported before that module, which can change what runs (library load
# order, environment read at import). So the shim import goes to its sorted place only when no import
# sits between that place and the first torch import; it then imports torch exactly where the original
# did. Otherwise it stays right after the first torch import (and ruff may report I001 there, as the
# price of not reordering the original's imports). A shim imported from the project (``--vendor``,
# ``from pkg._vendor import runtime_shim``) is left where the transform put it (after the import-path
# set-up it needs).


def _import_names(statement: cst.CSTNode) -> Optional[Tuple[bool, str]]:
    """``(is_from, module)`` of a one-import line, else None."""
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return None
    node = statement.body[0]
    if isinstance(node, cst.Import):
        return False, cst.helpers.get_full_name_for_node(node.names[0].name) or ""
    if isinstance(node, cst.ImportFrom):
        name = (cst.helpers.get_full_name_for_node(node.module) or "") if node.module is not None else ""
        return True, "." * len(node.relative) + name
    return None


def _is_torch(names: Optional[Tuple[bool, str]], statement: cst.CSTNode) -> bool:
    if names is None:
        return False
    node = statement.body[0]  # type: ignore[attr-defined]
    if isinstance(node, cst.Import):
        return any((cst.helpers.get_full_name_for_node(a.name) or "").split(".")[0] == "torch" for a in node.names)
    return names[1].split(".")[0] == "torch"


def _starts_section(statement: cst.CSTNode) -> bool:
    return any(line.comment is None for line in getattr(statement, "leading_lines", ()))


def place_shim_import(module: cst.Module, original_code: str, shim_module: str) -> cst.Module:
    """``module`` with the ``import <shim_module>`` the port added moved to its isort place (see above)."""
    if "." in shim_module:
        return module
    body = list(module.body)
    added = [i for i, st in enumerate(body)
             if _import_names(st) == (False, shim_module) and len(st.body[0].names) == 1]  # type: ignore[attr-defined,index,union-attr]
    if len(added) != 1 or re.search(rf"^\s*import\s+{re.escape(shim_module)}\b", original_code, re.MULTILINE):
        return module  # none added, or the original imports it already: the author's lines stay
    k = added[0]
    torch_at = next((i for i, st in enumerate(body) if _is_torch(_import_names(st), st)), None)
    if torch_at is None or torch_at > k:
        return module
    # The section of the first torch import: its import lines, up to a blank line or another statement.
    start = torch_at
    while start > 0 and not _starts_section(body[start]) and _import_names(body[start - 1]) is not None:
        start -= 1
    end = torch_at + 1
    while end < len(body) and _import_names(body[end]) is not None and not _starts_section(body[end]):
        end += 1
    key = shim_module.lower()
    place = None
    for i in range(start, end):
        names = _import_names(body[i])
        if i == k or names is None:
            continue
        if names[0] or names[1].lower() > key:  # a ``from`` line, or the first plain import after it
            place = i
            break
    if place is None:
        place = end
    if place < torch_at:  # imports between its sorted place and torch's: torch would move above them
        place = torch_at + 1
    if place in (k, k + 1):
        return module
    statement = body[k]
    if k + 1 < len(body) and statement.leading_lines and not body[k + 1].leading_lines:
        body[k + 1] = body[k + 1].with_changes(leading_lines=statement.leading_lines)
    statement = statement.with_changes(leading_lines=())
    if place < len(body) and place == start and body[place].leading_lines:
        statement = statement.with_changes(leading_lines=body[place].leading_lines)
        body[place] = body[place].with_changes(leading_lines=())
    body.insert(place, statement)
    del body[k + 1 if place < k else k]
    return module.with_changes(body=body)


__all__ = ["DEFAULT_LINE_LENGTH", "lay_out", "long_changed_lines", "place_shim_import", "wrap_long_lines",
           "wrap_port"]
