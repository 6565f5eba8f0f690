"""Scheduled imports added exactly where and how LibCST's ``AddImportsVisitor`` adds them.

``libcst.codemod`` imports ``libcst.matchers`` (~0.15 s, and each visitor instance inspects the
annotations of its methods, ~0.03 s more): most of what one staged file costs (issue 12). What the
visitor does to a module is small and local, so it is done here on plain LibCST nodes:

* it reads only the module's first statements: an optional docstring or ``__strict__ = ...`` flag,
  then the import lines that follow it (one ``import``/``from ... import`` per line, the "top
  imports");
* a scheduled ``from M import x`` whose module a top ``from M import ...`` already names is merged
  into the first such line (new names first, sorted); an import the top imports already do is
  dropped;
* the rest is parsed from text and put after the top imports (``__future__`` ones before them), in
  the visitor's order, and the first statement after them gets an empty line above it if it has
  none (or a comment first).

``tests/test_add_imports.py`` holds this to ``AddImportsVisitor`` on the head of every fixture (input
and expected output), example and rule example with the import sets the tool schedules and more.
Anything outside what is mirrored here (a context with a package name, relative imports) runs the
visitor itself.

``remove_unused_imports`` does the same for ``RemoveImportsVisitor`` where no scope analysis is
needed to know that a name is unused (its text appears nowhere it could be used); elsewhere it runs
the visitor.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple, Union, cast

import libcst as cst

#: The key of the scheduled imports in ``context.scratch``, as in ``AddImportsVisitor.CONTEXT_KEY``.
CONTEXT_KEY = "AddImportsVisitor"


class ImportItem(NamedTuple):
    """One scheduled import; the fields of ``libcst.codemod.visitors.ImportItem``."""

    module_name: str
    obj_name: Optional[str] = None
    alias: Optional[str] = None
    relative: int = 0


class ImportContext:
    """The part of ``libcst.codemod.CodemodContext`` the import helpers use (no ``libcst.codemod``)."""

    full_package_name: Optional[str] = None

    def __init__(self) -> None:
        self.scratch: Dict[str, Any] = {}

    def add_needed_import(self, module: str, obj: Optional[str] = None, asname: Optional[str] = None) -> None:
        """``AddImportsVisitor.add_needed_import(self, module, obj, asname)``."""
        if module == "__future__" and obj is None:
            raise ValueError("Cannot import __future__ directly!")
        self.scratch.setdefault(CONTEXT_KEY, []).append(ImportItem(module, obj, asname))


def add_scheduled_imports(context: Any, module: cst.Module) -> cst.Module:
    """``AddImportsVisitor(context).transform_module(module).code`` equals ``...(context, module).code``.

    ``context`` is an ``ImportContext`` or a ``libcst.codemod.CodemodContext``."""
    items = context.scratch.get(CONTEXT_KEY, [])
    if getattr(context, "full_package_name", None) is not None or any(
            imp.relative or (imp.module_name or "").startswith(".") for imp in items):
        from libcst.codemod import CodemodContext
        from libcst.codemod.visitors import AddImportsVisitor

        if not isinstance(context, CodemodContext):
            real = CodemodContext()
            for imp in items:
                AddImportsVisitor.add_needed_import(real, imp.module_name, imp.obj_name, imp.alias, imp.relative)
            context = real
        return AddImportsVisitor(context).transform_module(module)
    return _add(module, items)


def _is_import_line(statement: cst.CSTNode) -> bool:
    return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
            and isinstance(statement.body[0], (cst.Import, cst.ImportFrom)))


def _skip_first(module: cst.Module) -> bool:
    """A ``__strict__ = ...`` flag or a docstring (a plain string) first: the imports go after it."""
    if not module.body:
        return False
    first = module.body[0]
    if not isinstance(first, cst.SimpleStatementLine) or len(first.body) != 1:
        return False
    small = first.body[0]
    if isinstance(small, cst.Assign):
        return (len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)
                and small.targets[0].target.value == "__strict__")
    return isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString)


def _top_import(statement: cst.BaseStatement) -> Union[cst.Import, cst.ImportFrom]:
    """The import of an import line (``_is_import_line``)."""
    return cast(Union[cst.Import, cst.ImportFrom], cast(cst.SimpleStatementLine, statement).body[0])


def _from_module(node: cst.ImportFrom) -> Optional[str]:
    """``get_absolute_module_from_package_for_import(None, node)``: None for a relative import."""
    if node.relative:
        return None
    return cst.helpers.get_full_name_for_node(node.module) if node.module is not None else None


def _add(module: cst.Module, items: Sequence[Any]) -> cst.Module:
    for imp in items:
        if imp.module_name == "__future__" and imp.obj_name is None:
            raise ValueError("Cannot import __future__ directly!")
        if imp.module_name == "__future__" and imp.alias is not None:
            raise ValueError("Cannot import __future__ objects with aliases!")
    # What is asked for (AddImportsVisitor.__init__).
    module_imports: Set[str] = {imp.module_name for imp in items if imp.obj_name is None and imp.alias is None}
    from_imports = {imp.module_name for imp in items if imp.obj_name is not None and imp.alias is None}
    module_mapping: Dict[str, Set[str]] = {
        name: {imp.obj_name for imp in items if imp.module_name == name and imp.obj_name is not None
               and imp.alias is None}
        for name in sorted(from_imports)}
    module_aliases: Dict[str, str] = {imp.module_name: imp.alias for imp in items
                                      if imp.obj_name is None and imp.alias is not None}
    from_aliases = {imp.module_name for imp in items if imp.obj_name is not None and imp.alias is not None}
    alias_mapping: Dict[str, List[Tuple[str, str]]] = {
        name: [(imp.obj_name, imp.alias) for imp in items if imp.module_name == name
               and imp.obj_name is not None and imp.alias is not None]
        for name in sorted(from_aliases)}

    # The top imports (_GatherTopImportsBeforeStatements) and what they already do.
    body = module.body
    start = 1 if _skip_first(module) else 0
    end = start
    while end < len(body) and _is_import_line(body[end]):
        end += 1
    have_modules: Set[str] = set()
    have_objects: Dict[str, Set[str]] = {}
    have_module_aliases: Dict[str, str] = {}
    have_aliases: Dict[str, List[Tuple[str, Optional[str]]]] = {}
    for i in range(start, end):
        node = _top_import(body[i])
        if isinstance(node, cst.Import):
            for ia in node.names:
                alias = ia.evaluated_alias
                if alias is not None:
                    have_module_aliases[ia.evaluated_name] = alias
                else:
                    have_modules.add(ia.evaluated_name)
            continue
        source = _from_module(node)
        if source is None:
            continue
        if isinstance(node.names, cst.ImportStar):
            have_objects[source] = {"*"}
            continue
        new_aliases = [(a.evaluated_name, a.evaluated_alias) for a in node.names if a.asname is not None]
        if new_aliases:
            have_aliases.setdefault(source, []).extend(new_aliases)
        new_objects = {a.evaluated_name for a in node.names if a.asname is None}
        if new_objects:
            have_objects.setdefault(source, set())
            if "*" in have_objects[source]:
                have_objects[source] = {"*"}
                continue
            have_objects[source].update(new_objects)

    # AddImportsVisitor.visit_Module: forget what is there.
    module_imports -= have_modules
    for name, alias in have_module_aliases.items():
        if name in module_aliases and module_aliases[name] == alias:
            del module_aliases[name]
    for name, pairs in have_aliases.items():
        for pair in pairs:
            if name in alias_mapping and pair in alias_mapping[name]:
                alias_mapping[name].remove(pair)  # type: ignore[arg-type]
                if not alias_mapping[name]:
                    del alias_mapping[name]
    for name, objects in have_objects.items():
        if name not in module_mapping:
            continue
        if "*" in objects:
            del module_mapping[name]
        else:
            module_mapping[name] = module_mapping[name] - objects
            if not module_mapping[name]:
                del module_mapping[name]

    # AddImportsVisitor.leave_ImportFrom on each top ``from`` import, in order: merge into it.
    new_body = list(body)
    for i in range(start, end):
        node = _top_import(body[i])
        if not isinstance(node, cst.ImportFrom) or isinstance(node.names, cst.ImportStar):
            continue
        source = _from_module(node)
        if source is None or source not in module_mapping and source not in alias_mapping:
            continue
        objects = module_mapping.pop(source, set())
        aliased = alias_mapping.pop(source, [])
        names = [*(cst.ImportAlias(name=cst.Name(obj)) for obj in sorted(objects)),
                 *(cst.ImportAlias(name=cst.Name(obj), asname=cst.AsName(name=cst.Name(alias)))
                   for obj, alias in sorted(aliased)),
                 *node.names]
        new_body[i] = body[i].with_changes(body=[node.with_changes(names=names)])

    # AddImportsVisitor.leave_Module: the new import lines after the top imports.
    if not (module_imports or module_mapping or module_aliases or alias_mapping):
        return module.with_changes(body=new_body) if new_body != list(body) else module
    before, until, after = new_body[:start], new_body[start:end], new_body[end:]
    if after:
        first = after[0]
        if not first.leading_lines:
            after[0] = first.with_changes(leading_lines=(cst.EmptyLine(),))
        elif first.leading_lines[0].comment is not None:
            after[0] = first.with_changes(leading_lines=(cst.EmptyLine(), *first.leading_lines))
    merged: Dict[str, List[Tuple[str, Optional[str]]]] = {}
    for source, aliases in alias_mapping.items():
        merged.setdefault(source, []).extend(aliases)
    for source, objects in module_mapping.items():
        merged.setdefault(source, []).extend((obj, None) for obj in objects)
    ordered = {name: sorted(pairs) for name, pairs in merged.items()}  # type: ignore[type-var]
    config = module.config_for_parsing

    def statement(text: str) -> cst.BaseStatement:
        return cst.parse_statement(text, config=config)

    def from_line(name: str, pairs: List[Tuple[str, Optional[str]]]) -> cst.BaseStatement:
        return statement(f"from {name} import "
                         + ", ".join(obj if alias is None else f"{obj} as {alias}" for obj, alias in pairs))

    return module.with_changes(body=(
        *before,
        *[from_line(name, pairs) for name, pairs in ordered.items() if name == "__future__"],
        *until,
        *[statement(f"import {name}") for name in sorted(module_imports)],
        *[statement(f"import {name} as {alias}") for name, alias in module_aliases.items()],
        *[from_line(name, pairs) for name, pairs in ordered.items() if name != "__future__"],
        *after,
    ))


# ---- imports left unused: RemoveImportsVisitor's result, without it where that is provably simple ----

Removal = Tuple[str, Optional[str], Optional[str]]


def remove_unused_imports(module: cst.Module, removals: Sequence[Removal],
                          text_of: Optional[Callable[[cst.Module, cst.CSTNode], str]] = None) -> cst.Module:
    """``RemoveImportsVisitor`` with ``removals`` scheduled in this order (``remove_unused_import``).

    Where every scheduled name (its alias, else the imported name) appears in the module's code only
    in module-level lines of one import each or after a dot (an attribute), and in no string's value,
    nothing refers to it, exports it in ``__all__`` or names it in a string annotation: the visitor
    removes exactly the aliases that match, and that is done here. Otherwise LibCST's visitor decides
    (``libcst.codemod``, ~0.15 s of imports, and a scope analysis of the module). ``text_of``:
    ``module.code_for_node`` for a module-level statement, when the caller has their code at hand."""
    result = _remove_unreferenced(module, removals, text_of)
    if result is not None:
        return result
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import RemoveImportsVisitor

    context = CodemodContext()
    for module_name, obj, asname in removals:
        RemoveImportsVisitor.remove_unused_import(context, module_name, obj, asname)
    return RemoveImportsVisitor(context).transform_module(module)


def _remove_unreferenced(module: cst.Module, removals: Sequence[Removal],
                         text_of: Optional[Callable[[cst.Module, cst.CSTNode], str]] = None) -> Optional[cst.Module]:
    # RemoveImportsVisitor.__init__ (a module's alias: the last one scheduled).
    unused_modules: Dict[str, Optional[str]] = {name: alias for name, obj, alias in removals if obj is None}
    unused_objects: Dict[str, Set[Tuple[str, Optional[str]]]] = {}
    for name, obj, alias in removals:
        if obj is not None:
            unused_objects.setdefault(name, set()).add((obj, alias))
    local_names: Set[str] = set()
    for name, obj, alias in removals:
        if name == "__future__" or (obj is None and alias is None):
            return None  # never removed / a dotted module name: the visitor decides
        local_names.add(cast(str, alias or obj))
    if not local_names:
        return module
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(local_names)) + r")\b")
    body = module.body
    for statement in body:
        if _is_import_line(statement):
            continue
        text = text_of(module, statement) if text_of is not None else module.code_for_node(statement)
        for match in pattern.finditer(text):
            if not _after_dot(text, match.start()):
                return None  # a possible use: the visitor's scope analysis decides
    if _in_a_string(module, pattern):
        return None  # a string annotation may name it (escapes and implicit concatenation included)
    new_body: List[cst.BaseStatement] = []
    for statement in body:
        if not _is_import_line(statement):
            new_body.append(statement)
            continue
        node = _top_import(statement)
        if isinstance(node, cst.Import):
            new_node: Optional[cst.BaseSmallStatement] = _without_module_aliases(node, unused_modules)
        elif isinstance(node.names, cst.ImportStar) or _from_module(node) not in unused_objects:
            new_node = node
        else:
            new_node = _without_objects(node, unused_objects[_from_module(node) or ""])
        if new_node is None:
            continue  # nothing left: the line goes, with the comments above it (as LibCST removes it)
        new_body.append(statement if new_node is node
                        else cast(cst.SimpleStatementLine, statement).with_changes(body=[new_node]))
    return module.with_changes(body=new_body)


def _after_dot(text: str, at: int) -> bool:
    """The name at ``at`` follows a dot: an attribute (``torch.autocast``), never a use of the name, and
    not a name a string annotation gives (LibCST counts ``"torch.autocast"`` as ``torch``)."""
    i = at - 1
    while i >= 0 and text[i] in " \t\f\r\n\\":
        i -= 1
    return i >= 0 and text[i] == "."


def _in_a_string(module: cst.Module, pattern: re.Pattern) -> bool:
    """Whether the value of a string literal (as Python evaluates it) holds one of the names; or the
    module does not parse with ``ast`` (then nothing is assumed)."""
    import ast

    try:
        tree = ast.parse(module.code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            value = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if pattern.search(value):
                return True
    return False


def _without_module_aliases(node: cst.Import, unused: Dict[str, Optional[str]]) -> Optional[cst.Import]:
    """``RemoveImportsVisitor.leave_Import``, every candidate alias being unused."""
    keep = [a for a in node.names if a.evaluated_name not in unused or a.evaluated_alias != unused[a.evaluated_name]]
    if len(keep) == len(node.names):
        return node
    if not keep:
        return None
    if keep[-1] is not node.names[-1]:
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return node.with_changes(names=keep)


def _without_objects(node: cst.ImportFrom, unused: Set[Tuple[str, Optional[str]]]) -> Optional[cst.ImportFrom]:
    """``RemoveImportsVisitor.leave_ImportFrom`` (``_process_importfrom_aliases``), every candidate unused."""
    names = cast(Sequence[cst.ImportAlias], node.names)
    changes: Dict[str, Any] = {}
    keep: List[cst.ImportAlias] = []
    for alias in names:
        if (alias.evaluated_name, alias.evaluated_alias) not in unused:
            keep.append(alias)
            continue
        comma = alias.comma
        if isinstance(comma, cst.Comma):  # its trailing comments go to the previous name
            if keep:
                prev = keep[-1]
                if isinstance(prev.comma, cst.Comma):
                    prev = prev.with_deep_changes(prev.comma, whitespace_after=_merge_whitespace_after(
                        prev.comma.whitespace_after, comma.whitespace_after))
                else:
                    prev = prev.with_changes(comma=comma)
                keep[-1] = prev
            elif isinstance(node.lpar, cst.LeftParen):
                changes["lpar"] = node.lpar.with_changes(
                    whitespace_after=_merge_whitespace_after(node.lpar.whitespace_after, comma.whitespace_after))
    if len(keep) == len(names) and all(a is b for a, b in zip(keep, names)):
        return node
    if not keep:
        return None
    if keep[-1] is not names[-1]:
        keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    changes["names"] = keep
    return node.with_changes(**changes)


def _merge_whitespace_after(left: cst.BaseParenthesizableWhitespace,
                            right: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
    """LibCST's ``_remove_imports._merge_whitespace_after``."""
    if not isinstance(right, cst.ParenthesizedWhitespace):
        return left
    if not isinstance(left, cst.ParenthesizedWhitespace):
        return right
    return left.with_changes(empty_lines=tuple(line for line in right.empty_lines if line.comment is not None))
