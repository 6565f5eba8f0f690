"""One file's source in, migrated source and findings out: all rules in one LibCST pass.

No file system here (see ``engine.py``); the same function serves files, notebook cells and tests.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, cast

import libcst as cst
from libcst.metadata import Assignment

from .findings import Finding

# The byte pre-filter (a file it does not match is never parsed) and the options live in light
# modules that do not import LibCST; re-exported here (the ``noqa: F401`` lines).
from .options import DEFAULT_SHIM_MODULE, Options, SourceError  # noqa: F401
from .rules import ALL_RULES, Rule
from .rules.base import RuleContext, StatementTexts, _field_order, positions_and_code, resolve_scopes
from .rules.review import report_leftover_device_strings
from .targets import insert_binding, pending_binding
from .trigger import TRIGGER, collector_paused, is_candidate  # noqa: F401


@dataclass
class Migration:
    new: bytes
    findings: List[Finding]

    def changed_from(self, source: bytes) -> bool:
        return self.new != source


class _Migrator(cst.CSTTransformer):
    """Dispatches each node, on leave, to every rule's ``leave_<NodeType>`` in rule order."""

    def __init__(self, ctx: RuleContext, rules: Sequence[Rule], skip: AbstractSet[int] = frozenset()) -> None:
        super().__init__()
        self.ctx = ctx
        self.skip = skip  # ids of statements nothing in which a rule acts on (slicing.Slice.skipped)
        self.handlers: Dict[str, List[Callable]] = defaultdict(list)
        for rule in rules:
            for attr in dir(rule):
                if attr.startswith("leave_"):
                    self.handlers[attr[len("leave_"):]].append(getattr(rule, attr))

    # The rules are not visitors: no ``visit_<Node>`` or ``visit_<Node>_<attribute>`` hooks to look
    # up for every node and attribute (CSTTransformer's stubs all return None). LibCST's ``visit``
    # rebuilds every node it passes; here ``on_visit``, its entry (``module.visit(migrator)``), walks
    # the tree itself (``_transform``) and rebuilds only the nodes under which something changed:
    # the same ``leave`` calls, in the same order, on the same original nodes, with an ``updated``
    # node equal to LibCST's (the original itself where nothing below it changed).
    def on_visit(self, node):  # type: ignore[override]
        self._result = self._transform(node)
        return False

    def on_leave(self, original_node, updated_node):  # type: ignore[override]
        return self._result  # LibCST's, right after ``on_visit``: the walk is done

    def _transform(self, node: cst.CSTNode) -> cst.CSTNode:
        updated = node
        if id(node) not in self.skip:  # a skipped statement is left (and its own leave called) as it is
            changes: Dict[str, Any] = {}
            for name in _field_order(node):
                value = getattr(node, name)
                if isinstance(value, cst.CSTNode):
                    new = self._transform(value)
                    if new is not value:
                        changes[name] = new
                elif type(value) is tuple or type(value) is list:
                    items: Optional[List[cst.CSTNode]] = None
                    for i, child in enumerate(value):
                        new = self._transform(child)
                        if items is None and new is not child:
                            items = list(value[:i])
                        if items is not None:
                            items.append(new)
                    if items is not None:
                        changes[name] = tuple(items)
            if changes:
                updated = node.with_changes(**changes)
        return self._leave(node, updated)

    def _leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:
        handlers = self.handlers.get(type(original_node).__name__)
        if not handlers:
            return updated_node
        current = updated_node
        for handler in handlers:
            result = handler(self.ctx, original_node, current)
            if result is not None:
                current = result
                if type(current) is not type(original_node):
                    break
        if not isinstance(current, cst.CSTNode):  # no rule removes or splits a node (RemovalSentinel, FlattenSentinel)
            raise TypeError(f"a rule's leave_{type(original_node).__name__} returned {type(current).__name__}")
        return current


def parse(source: bytes) -> cst.Module:
    try:
        with collector_paused():
            return cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        raise SourceError(e.raw_line, f"syntax error: {e.message}") from None
    except (UnicodeDecodeError, LookupError, SyntaxError) as e:
        raise SourceError(getattr(e, "lineno", None) or 1, f"cannot decode: {e}") from None
    except RecursionError:
        raise SourceError(1, "too deeply nested to parse") from None


def _split_unroundtrippable_tail(source: bytes) -> tuple[bytes, bytes]:
    """LibCST drops some trailing whitespace-only lines; keep them aside and put them back."""
    stripped = source.rstrip(b" \t\f\r\n")
    # Keep the newline that ends the last code line with the body.
    rest = source[len(stripped):]
    newline = b"\r\n" if rest.startswith(b"\r\n") else rest[:1] if rest[:1] in (b"\n", b"\r") else b""
    return stripped + newline, rest[len(newline):]


#: ``migrate_source``'s ``piece`` when no slice was planned for the file yet.
UNPLANNED: Any = object()


def migrate_source(source: bytes, path: str = "<string>", options: Optional[Options] = None,
                   prefilter: bool = True, piece: Any = UNPLANNED) -> Migration:
    """Migrate one module's bytes. Raises ``SourceError`` if it cannot be handled faithfully.

    A file the pre-filter (``trigger.py``) does not match is returned as it is, unparsed: no rule
    could change it or report anything in it, and whether it parses is not this tool's business.
    ``prefilter=False`` runs the rules on every file (the reference the tests compare with).
    A large file is ported sliced (``slicing.py``): only what can matter is parsed by LibCST.
    ``piece``: ``slicing.plan(source, options)`` when the caller has it (the parallel scan)."""
    options = options or Options()
    if prefilter and not is_candidate(source, options.project):
        return Migration(source, [])
    if options.slice_min_bytes is not None:
        sliced = _migrate_sliced(source, path, options, piece)
        if sliced is not None:
            return sliced
    return _migrate_whole(source, path, options)


def _migrate_sliced(source: bytes, path: str, options: Options, piece: Any = UNPLANNED) -> Optional[Migration]:
    """The port of ``source`` made from the port of its reduced module; None: port it whole."""
    if piece is UNPLANNED:
        from .slicing import plan

        piece = plan(source, options)
    if piece is None:
        return None
    try:
        reduced = _migrate_whole(piece.reduced, path, options, piece, check=False)
    except SourceError:
        return None  # the whole file's port says where and why
    new = piece.restore(reduced.new)
    if new is None or piece.uses_any(piece.removed_names):
        return None  # a placeholder moved, or an import the port removes may be used by a body set aside
    if new != source and not _compiles(new, path):
        return None
    findings = [dataclasses.replace(f, line=piece.original_line(f.line),
                                    end_line=piece.original_line(f.end_line) if f.end_line else f.end_line)
                for f in reduced.findings]
    return Migration(new, findings)


def _migrate_whole(source: bytes, path: str, options: Options, piece=None, check: bool = True) -> Migration:
    module = parse(source)
    tail = b""
    exact = True
    # Generated once, with every node's position: the round-trip check, the rules' source lines and
    # the positions of what they rewrite or report.
    texts = StatementTexts()  # each statement's code, for the port's code (most statements are unchanged)
    positions, code = positions_and_code(module, texts)
    if code.encode(module.encoding) != source:
        body, tail = _split_unroundtrippable_tail(source)
        module = parse(body)
        texts = StatementTexts()
        positions, code = positions_and_code(module, texts)
        exact = code.encode(module.encoding) == body
    new_module, findings = _migrate_module(module, path, options, code, piece, positions, texts)
    if new_module is None:
        return Migration(source, findings)  # nothing to write: a file LibCST cannot reproduce is fine
    if not exact:
        raise SourceError(1, "LibCST cannot reproduce this file byte for byte; left untouched")
    new = texts.code(new_module).encode(new_module.encoding)
    if options.layout:  # the project's line length and import order (layout.py)
        from .layout import lay_out

        new = lay_out(new_module, new, code, options)
    new += tail
    if not check:
        return Migration(new, findings)
    # No second LibCST parse of the port (as costly as the first): the compile() below refuses any
    # port that is not valid Python for this interpreter, a rule's bug included (issue 12).
    # LibCST accepts what this Python does not compile (newer syntax, null bytes, deep nesting):
    # a port that does not compile is never written, whether or not the original compiled.
    if not _compiles(new, path):
        if _compiles(source, path):
            raise SourceError(1, "internal error: the migrated file does not compile with this Python; left untouched")
        line, why = _compile_error(source, path)
        raise SourceError(line, f"the file does not compile with this Python ({why}); left untouched")
    return Migration(new, findings)


def _compiles(source: bytes, path: str) -> bool:
    try:
        compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _compile_error(source: bytes, path: str) -> tuple[int, str]:
    """``(line, reason)`` of why ``source`` does not compile (a null byte: the line that holds it)."""
    null_line = source[:source.index(b"\0")].count(b"\n") + 1 if b"\0" in source else 1
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as e:
        return e.lineno or null_line, str(e.msg)
    except ValueError as e:  # null bytes (before 3.12)
        return null_line, str(e)
    except (RecursionError, MemoryError) as e:
        return 1, str(e) or type(e).__name__
    return 1, "compiles"


@dataclass(frozen=True)
class FileFacts:
    """What the rules together establish about a whole file, decided once after they all ran (the
    typed post-pass of issue 13: a rule reads these facts instead of other rules' shared state).

    ``uses_cuda``: some CUDA use in the file is ported (a rewrite made with ``alone=True``). A rewrite
    made with ``alone=False`` (``torch.load`` gaining ``map_location``) is kept only in such a file.
    The fact belongs to the file, not to the rules or codes a run selects: a run restricted to some
    rules (``Options.rules``, each rule's examples) or codes (``--select``/``--ignore``) asks every
    rule, with no selection, whether the file uses CUDA."""

    uses_cuda: bool


def _run_rules(module: cst.Module, path: str, options: Options, code: str, piece=None, positions=None):
    # ``module`` was just parsed and nothing else holds it: no node occurs twice in it, so the
    # deep copy MetadataWrapper makes by default to guarantee that would buy nothing.
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    shim_last = options.shim_module.rpartition(".")[2]
    # Statements nothing in which a rule acts on, or the review pass lists, or any of those asks
    # about (slicing.Slice.skipped): the passes do not go into them.
    skip, review_skip, scope_skip = piece.skipped(wrapper.module) if piece is not None else (set(), set(), set())
    scopes = resolve_scopes(wrapper.module, scope_skip)
    alias = _free_alias(scopes, shim_last, options.shim_module)
    ctx = RuleContext(wrapper, path, alias, code.splitlines(), options.select, options.ignore, scopes=scopes,
                      target=options.target)
    if positions is not None:
        ctx._positions = positions
    # ``source_text``: the whole file, for what the rules ask of it as a whole (its project facts, ``jit``
    # anywhere, the review precheck); a sliced module's text has bodies set aside (slicing.py).
    full = code if piece is None else piece.full_text(code)
    ctx.project_base, ctx.source_text = options.project, full  # type: ignore[attr-defined]  # project_of(ctx)
    ctx.piece = piece  # type: ignore[attr-defined]  # targets._all_names asks it for the names set aside
    rules = [r() for r in (options.rules if options.rules is not None else ALL_RULES)]
    ctx.review_skip, ctx._parent_skip = review_skip, scope_skip  # type: ignore[attr-defined]
    new_module = wrapper.module.visit(_Migrator(ctx, rules, skip))
    report_leftover_device_strings(ctx)
    return ctx, new_module, alias


def _restricted(options: Options) -> bool:
    """The run asks some rules or codes only, so its own rewrites may not show the file's facts."""
    return ((options.rules is not None and set(options.rules) != set(ALL_RULES))
            or options.select is not None or bool(options.ignore))


def file_facts(ctx: RuleContext, module: cst.Module, path: str, options: Options, code: str) -> FileFacts:
    if any(r.alone for r in ctx.rewrites):
        return FileFacts(uses_cuda=True)
    if not ctx.rewrites or not _restricted(options):
        return FileFacts(uses_cuda=False)
    # Only dependent rewrites, in a restricted run: ask every rule, with no selection.
    full = dataclasses.replace(options, rules=None, select=None, ignore=set())
    every, _, _ = _run_rules(module, path, full, code, getattr(ctx, "piece", None), getattr(ctx, "_positions", None))
    try:
        return FileFacts(uses_cuda=any(r.alone for r in every.rewrites))
    finally:
        every.release()


def _migrate_module(module: cst.Module, path: str, options: Options, code: Optional[str] = None, piece=None,
                    positions=None, texts: Optional[StatementTexts] = None):
    if code is None:
        code = module.code
    ctx, new_module, alias = _run_rules(module, path, options, code, piece, positions)
    try:
        return _finish_module(ctx, new_module, alias, module, path, options, code, piece, texts)
    finally:
        ctx.release()  # the tree is freed when the caller drops it, not when a collector walks it


def _finish_module(ctx: RuleContext, new_module: cst.Module, alias: str, module: cst.Module, path: str,
                   options: Options, code: str, piece, texts: Optional[StatementTexts]):
    """``_migrate_module`` once the rules ran: the file's facts, its findings, the imports."""
    shim_parent, _, shim_last = options.shim_module.rpartition(".")
    if not file_facts(ctx, module, path, options, code).uses_cuda:
        ctx.rewrites = []  # only rewrites that do not make a file CUDA-using: leave it byte-identical
    findings = ctx.findings()
    if not ctx.rewrites:
        return None, findings
    # Imports are added as LibCST's AddImportsVisitor adds them, without importing libcst.codemod
    # (add_imports.py: ~0.15 s of imports through libcst.matchers, the most of a staged file's run).
    from .add_imports import ImportContext

    context = ImportContext()
    for module_name, obj in sorted(ctx.imports, key=str):
        context.add_needed_import(module_name, obj)
    if ctx.shim_used:
        if shim_parent:
            context.add_needed_import(shim_parent, shim_last, asname=None if alias == shim_last else alias)
        else:
            context.add_needed_import(shim_last, asname=None if alias == shim_last else alias)
    if ctx.shim_used or ctx.imports:
        new_module = _add_imports(context, new_module, alias, vendored=bool(shim_parent), texts=texts)
    if ctx.removed_from_imports:  # imports left unused, as LibCST's RemoveImportsVisitor removes them
        from .add_imports import remove_unused_imports

        if piece is not None:  # a name a body set aside may still use: _migrate_sliced checks
            piece.removed_names = {asname or obj for _, obj, asname in ctx.removed_from_imports if asname or obj}

        new_module = remove_unused_imports(new_module, sorted(ctx.removed_from_imports, key=str),
                                           texts.of if texts is not None else None)
    binding = pending_binding(ctx)  # --target torch: the one module-level device value
    if binding is not None:
        new_module = insert_binding(new_module, binding)
    return new_module, findings


def _is_import_line(statement: cst.CSTNode) -> bool:
    return (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
            and isinstance(statement.body[0], (cst.Import, cst.ImportFrom)))


def _imports_torch(statement: cst.CSTNode) -> bool:
    """``import torch``, ``import torch.nn as nn``, ``import numpy, torch``, ``from torch... import ...``."""
    if not _is_import_line(statement):
        return False
    node = statement.body[0]  # type: ignore[attr-defined]
    if isinstance(node, cst.Import):
        return any((cst.helpers.get_full_name_for_node(a.name) or "").split(".")[0] == "torch" for a in node.names)
    return (not node.relative and node.module is not None
            and (cst.helpers.get_full_name_for_node(node.module) or "").split(".")[0] == "torch")


# Module-level statements that prepare the import of what follows: the import path and the environment.
import re as _re  # noqa: E402  (here: only the import placement below needs it)

_PATH_RE = _re.compile(r"\b(?:sys\.path|site\.addsitedir)\b")
_ENV_RE = _re.compile(r"\b(?:os\.environ|os\.putenv|environ|putenv)\b")


def _earliest_import_position(module: cst.Module, alias: str, vendored: bool = False,
                              texts: Optional[StatementTexts] = None) -> int:
    """The first index of ``module.body`` where the shim import may go without changing what runs.

    ``import runtime_shim`` imports torch, and a vendored ``from pkg._vendor import runtime_shim``
    needs the import path the file sets up. So the import goes no earlier than just after the
    file's first module-level torch import (so after the environment that import saw), and, for
    a vendored shim, after every module-level import-path setup (``sys.path.insert(...)``) that
    precedes the first use of the shim; in a file with no torch import, after the last
    module-level import, path or environment setup (``os.environ[...] = ...``) before that first use."""
    body = module.body
    use = f"{alias}."
    torch_at: Optional[int] = None
    last_import = last_path = last_env = -1
    for i, statement in enumerate(body):
        if _is_import_line(statement):
            if torch_at is None and _imports_torch(statement):
                torch_at = i
            last_import = i
            continue
        code = texts.of(module, statement) if texts is not None else module.code_for_node(statement)
        if use in code:
            break  # the first use: what follows it cannot matter to it
        if _PATH_RE.search(code):
            last_path = i
        if _ENV_RE.search(code):
            last_env = i
    if torch_at is not None:
        return max(torch_at, last_path if vendored else -1) + 1
    return max(last_import, last_path, last_env) + 1


def _add_imports(context: Any, module: cst.Module, alias: str = DEFAULT_SHIM_MODULE,
                 vendored: bool = False, texts: Optional[StatementTexts] = None) -> cst.Module:
    """Add the scheduled imports where they change nothing (``_earliest_import_position``).

    Where the file's leading import block already ends at or after that position, LibCST's
    ``AddImportsVisitor`` places them as usual (at the end of that block). Otherwise the visitor runs
    on the part of the module from that position on, so the imports go right after the torch import
    or the path setup they need (after the imports that directly follow it, in the file's own
    section), and the statements before it are kept as they are."""
    body = module.body
    cut = 1
    while cut < len(body) and _is_import_line(body[cut]):
        cut += 1
    earliest = _earliest_import_position(module, alias, vendored, texts)
    if earliest <= cut or earliest >= len(body):
        return _add_imports_at_top(context, module)
    # The statements from ``earliest`` on, as a module of their own; existing imports of the same
    # names before them are still found (the visitor would otherwise add a duplicate).
    head = body[:earliest]
    tail = module.with_changes(body=body[earliest:], header=())
    for statement in head:
        if _is_import_line(statement):
            _drop_present(context, cast(cst.SimpleStatementLine, statement).body[0])
    new_tail = _add_imports_at_top(context, tail)
    return module.with_changes(body=(*head, *new_tail.body))


def _drop_present(context: Any, node: cst.CSTNode) -> None:
    """Forget scheduled imports that ``node`` (an import before the insertion point) already does."""
    from .add_imports import CONTEXT_KEY as key

    needed = context.scratch.get(key, [])
    present: Set[Tuple[Optional[str], Optional[str], Optional[str]]] = set()
    if isinstance(node, cst.Import):
        for a in node.names:
            name = cst.helpers.get_full_name_for_node(a.name)
            asname = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else None
            present.add((name, None, asname))
    elif isinstance(node, cst.ImportFrom) and node.module is not None and not isinstance(node.names, cst.ImportStar):
        module = cst.helpers.get_full_name_for_node(node.module)
        for a in node.names:
            asname = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else None
            present.add((module, cst.helpers.get_full_name_for_node(a.name), asname))
    context.scratch[key] = [imp for imp in needed
                            if (imp.module_name, imp.obj_name, imp.alias) not in present]


def _add_imports_at_top(context: Any, module: cst.Module) -> cst.Module:
    """``AddImportsVisitor(context).transform_module(module)``, without ``libcst.codemod``.

    ``add_imports.py`` does what the visitor does to the module's first statements (the only ones it
    reads or changes: no pass over the whole tree, no deep copy); ``context`` is an
    ``add_imports.ImportContext`` or a ``CodemodContext``."""
    from .add_imports import add_scheduled_imports

    return add_scheduled_imports(context, module)


def _free_alias(scope_map: Mapping[cst.CSTNode, Any], wanted: str, shim_module: str) -> str:
    """``wanted`` unless the module binds that name to something other than the shim import."""
    scopes = set(scope_map.values())
    bound: Dict[str, bool] = {}
    for scope in scopes:
        if scope is None:
            continue
        for assignment in scope.assignments:
            name = assignment.name
            is_shim = isinstance(assignment, Assignment) and _imports_shim(assignment.node, name, shim_module)
            bound[name] = bound.get(name, True) and is_shim
    candidate, n = wanted, 0
    while candidate in bound and not bound[candidate]:
        n += 1
        candidate = f"_{wanted}" if n == 1 else f"_{wanted}_{n}"
    return candidate


def _imports_shim(node: cst.CSTNode, local: str, shim_module: str) -> bool:
    parent, _, last = shim_module.rpartition(".")
    if isinstance(node, cst.Import):
        for a in node.names:
            name = cst.helpers.get_full_name_for_node(a.name)
            asname = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else None
            if name == shim_module and (asname or name) == local:
                return True
    if isinstance(node, cst.ImportFrom) and node.module is not None and not isinstance(node.names, cst.ImportStar):
        if cst.helpers.get_full_name_for_node(node.module) == parent:
            for a in node.names:
                asname = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else None
                if a.name.value == last and (asname or last) == local:
                    return True
    return False


def migrate_text(code: str, options: Optional[Options] = None) -> str:
    """Convenience for tests and docs: migrate a UTF-8 string."""
    return migrate_source(code.encode("utf-8"), "<string>", options).new.decode("utf-8")
